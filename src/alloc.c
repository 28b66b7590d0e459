/* The API layer: the one size router (which tier serves a request), the
 * hak_* functions, and the less common paths of free, realloc, calloc and
 * aligned allocation.  heap.c knows slabs, large.c spans, big.c mappings;
 * only this file decides between them. */
#include <errno.h>
#include <string.h>

#include "fastpath.h"
#include "msg.h"
#include "os.h"
#include "policy.h"
#include "secure.h"
#include "site.h"
#include "learn/control.h"
#include "learn/sites.h"

/* The entry points that do not go through a heap (Large, Big, explicit
 * call-site calls) make sure the process is initialised: the options and
 * the policy are read there.  Tiny/Mid requests initialise where a thread
 * gets its heap. */
hak_inline void hak_ensure_init(void) {
  if (hak_unlikely(atomic_load_explicit(&hak_init_state, memory_order_acquire) != 2))
    hak_process_init();
}

/* The profile's view of a block: its site when it is recorded (the
 * process profiles, or learns per-site decisions), else NULL. */
hak_inline void *site_if_profiled(void *site) { return hak_sites_on || hak_sites_learning ? site : NULL; }

/* The allocation at a call-site profiler's sample point (heap.c finds it
 * at a cut in a slab's free list): served as a Large span aligned like the
 * class's blocks, so that its free, lifetime and leaks are seen.  It
 * stands for more bytes than its size (see hak_site_weight). */
void *hak_alloc_sampled(hak_heap_t *h, unsigned cls, void *site) {
  size_t size = hak_class_size(cls);
  size_t align = size & (0 - size);
  void *p = hak_large_alloc(size, align > HAK_PAGE ? align : 0, false, site, hak_site_weight(size), 0);
  hak_heap_sample_done(h, cls);
  return p;
}

/* Learning alone (no profile) records a random one Large block in
 * HAK_SITE_LEARN_EVERY, standing for that many (*weight): its decisions
 * read means and ratios, and recording every block (a site lookup, two
 * clock reads) cost a third of a 64 KiB malloc+free.  Random, not every
 * 8th: of two sites that take turns, one would never be seen. */
hak_inline bool learn_pick(hak_heap_t *h, size_t *weight) {
  if (h == &hak_heap_empty) { /* nowhere to count: every block */
    *weight = 1;
    return true;
  }
  if (h->site_skip) {
    h->site_skip--;
    return false;
  }
  h->site_skip = (uint32_t)((hak_xorshift(&h->rng) >> 32) % (2 * HAK_SITE_LEARN_EVERY - 1)); /* mean EVERY - 1 */
  *weight = HAK_SITE_LEARN_EVERY;
  return true;
}

/* Large or Big, by size and alignment: the one place that chooses between
 * them.  site: the call site, whose per-site decision (if the policy has
 * any) is looked up here; record: the profile records the block even when
 * profiling is off (an explicit call-site call).  n and align are already
 * checked against HAK_MAX_REQUEST. */
hak_front void *hak_alloc_large_or_big(size_t n, size_t align, bool zero, void *site, bool record) {
  hak_ensure_init();
  hak_control_tick(0);
  hak_heap_fold_due(hak_tls_heap);
  const hak_policy_t *pol = hak_policy();
  unsigned how = hak_site_lookup(pol->sites, site);
  void *rec = record ? site : site_if_profiled(site);
  size_t extra = align > HAK_PAGE ? align : 0;
  /* Unaligned, anything under the threshold (at most 2 MiB, options.def)
   * fits a Large segment; an aligned request needs room to align in. */
  if (n + extra < pol->big_threshold && (!extra || hak_large_fits(n, align))) {
    size_t weight = 0; /* explicit calls and the profile: every block, exactly */
    if (rec && !record && !hak_sites_on && !learn_pick(hak_tls_heap, &weight)) rec = NULL;
    return hak_large_alloc(n, align, zero, rec, weight, how);
  }
  return hak_big_alloc(n, align, zero, rec, how);
}

/* malloc of more than 64 KiB once the thread's own span cache had nothing
 * (hak_large_malloc, large.c, looks there first). */
hak_front void *hak_malloc_large_full(size_t n, void *site) {
  if (hak_unlikely(n > HAK_MAX_REQUEST)) {
    errno = ENOMEM;
    return NULL;
  }
  return hak_alloc_large_or_big(n, 0, false, site, false);
}

/* The router behind every allocation that missed the inline fast path. */
void *hak_alloc_routed(size_t n, size_t align, bool zero, void *site) {
  if (hak_secure) return hak_secure_alloc(n, align, zero, site);
  if (align <= 16) {
    if (n <= HAK_MID_MAX) {
      void *p = n <= HAK_TINY_MAX ? hak_alloc_fast(n) : hak_malloc_slow(n, site);
      if (p && zero) memset(p, 0, n);
      return p;
    }
    align = 0;
  } else if (n <= HAK_MID_MAX && align <= HAK_MID_MAX) {
    /* Slab starts are aligned to >= 8 KiB (Tiny) and 64 KiB (Mid): a class
     * whose size is a multiple of `align` gives aligned blocks.  The power
     * of two >= align is such a class, so the search ends. */
    unsigned c = hak_class_of(n > align ? n : align);
    while (hak_class_size(c) % align) c++;
    void *p = hak_heap_alloc_class(hak_tls_heap, c, site);
    if (p && zero) memset(p, 0, n);
    return p;
  }
  if (hak_unlikely(n > HAK_MAX_REQUEST || align > HAK_MAX_REQUEST)) {
    errno = ENOMEM;
    return NULL;
  }
  return hak_alloc_large_or_big(n, align, zero, site, false);
}

/* The class of a Mid size n, at [(n - 1) >> 7]: above 1 KiB every class
 * size is a multiple of 128, so one byte per 128 B tells it (hak_class_of
 * is 8 instructions more, and 1 malloc in 5 is Mid in random-mixed).
 * Entries below 8 (n <= 1 KiB) are not used. */
#define MID_BSR(i) ((i) >= 256 ? 8 : (i) >= 128 ? 7 : (i) >= 64 ? 6 : (i) >= 32 ? 5 : (i) >= 16 ? 4 : 3)
#define MID_CLASS(i) ((i) < 8 ? 0 : 16 + (MID_BSR(i) - 1) * 8 + (((i) >> (MID_BSR(i) - 3)) & 7))
#define MID_CLASS8(i) MID_CLASS(i), MID_CLASS(i + 1), MID_CLASS(i + 2), MID_CLASS(i + 3), \
                      MID_CLASS(i + 4), MID_CLASS(i + 5), MID_CLASS(i + 6), MID_CLASS(i + 7)
#define MID_CLASS64(i) MID_CLASS8(i), MID_CLASS8(i + 8), MID_CLASS8(i + 16), MID_CLASS8(i + 24), \
                       MID_CLASS8(i + 32), MID_CLASS8(i + 40), MID_CLASS8(i + 48), MID_CLASS8(i + 56)
static const uint8_t mid_class[HAK_MID_MAX >> 7] = {
    MID_CLASS64(0),   MID_CLASS64(64),  MID_CLASS64(128), MID_CLASS64(192),
    MID_CLASS64(256), MID_CLASS64(320), MID_CLASS64(384), MID_CLASS64(448)};
_Static_assert(HAK_MID_MAX == 65536 && HAK_TINY_MAX == 1024 && HAK_NCLASS == 80, "mid_class covers Mid");

/* malloc's slow path (the inline fast path missed, or n > 1 KiB). */
hak_front void *hak_malloc_slow(size_t n, void *site) {
  if (hak_secure) return hak_secure_malloc(n, site);
  if (hak_likely(n <= HAK_MID_MAX)) {
    /* Mid sizes (and Tiny misses) try the class's current slab first. */
    unsigned cls = n <= HAK_TINY_MAX ? hak_class_of(n) : mid_class[(n - 1) >> 7];
    hak_slab_t *s = hak_tls_heap->cur[cls];
    hak_block_t *b = s->free;
    if (hak_likely(b != NULL)) {
      hak_block_t *next = hak_link_get(s, b);
      s->free = next;
      s->used++;
      __builtin_prefetch(next, 1); /* as in hak_alloc_fast */
      return b;
    }
    return hak_heap_alloc_class(hak_tls_heap, cls, site);
  }
  return hak_large_malloc(n, site);
}

/* ---- free ------------------------------------------------------------- */

/* The owner's free when `used` reached its floor (already decremented;
 * the current slab's floor is below 0, so its emptying stays on the fast
 * path; a full, sampled or unused slab's is HAK_FLOOR_SLOW) or the block
 * is the head of `free`. */
hak_front void hak_free_owner_slow(hak_heap_t *h, hak_slab_t *s, hak_block_t *b) {
  uintptr_t o = atomic_load_explicit(&s->owner, memory_order_relaxed);
  if ((o & ~HAK_SLAB_TAGS) != (uintptr_t)h) { /* a slab not in use: no block of it is live */
    s->used++;
    hak_report_misuse("invalid free", b, false);
    return;
  }
  if (o & HAK_SLAB_FULL) { /* our own full slab (random-mixed: 1 free in 14) */
    s->used++; /* counted again there */
    hak_heap_free_full(h, s, b);
    return;
  }
  if ((int32_t)s->used < 0 || b == s->local_free || b == s->free) {
    s->used++; /* undo: this free does not count */
    bool twice = hak_slab_owns_block(s, b);
    hak_report_misuse(twice ? "double free" : "invalid free", b, twice);
    return;
  }
  /* Sampling, or where the owner's frees wait there anyway. */
  hak_link_set(b, s->local_free);
  s->local_free = b;
  if (s->used == 0) hak_heap_retire(h, s);
}

hak_front void hak_free_nonowner(void *p, hak_segment_t *seg, hak_slab_t *s) {
  switch (seg->kind) {
    case HAK_SEG_LARGE: hak_large_free(seg, p); return;
    case HAK_SEG_BIG: hak_big_free(seg, p); return;
    case HAK_SEG_TINY:
    case HAK_SEG_MID: {
      /* Another thread's segment (or an abandoned one: hak_free_fast took
       * our own, and only this thread makes a segment ours): the slab's
       * second line alone, as the fast path left it. */
      hak_heap_t *h = hak_tls_heap;
      if (hak_slab_owns_block(s, p)) {
        if (h != &hak_heap_empty) HAK_STAT_ADD(h->stats.cls[s->blk_cls].remote_frees, 1);
        hak_slab_free_remote(s, p);
        return;
      }
      break;
    }
  }
  hak_report_misuse("invalid free", p, false);
}

hak_front void hak_free_special(void *p) {
  if (!p) return;
  hak_segment_t *seg = hak_segmap_lookup(p);
  if (seg && seg->kind == HAK_SEG_BIG) {
    hak_big_free(seg, p);
    return;
  }
  hak_report_misuse("invalid free (not allocated by hakmem)", p, false);
}

/* Usable size of a block hakmem handed out, 0 for a pointer that is not
 * the start of one (foreign: no segment, interior, or a freed Large/Big
 * block; a freed Tiny/Mid block cannot be told from a live one without a
 * walk). */
static size_t usable_size_in(hak_segment_t *seg, const void *p) {
  if (!seg) return 0;
  switch (seg->kind) {
    case HAK_SEG_TINY:
    case HAK_SEG_MID: {
      hak_slab_t *s = &seg->slabs[((uintptr_t)p - (uintptr_t)seg) >> seg->slab_shift];
      return hak_slab_owns_block(s, p) ? s->block_size : 0;
    }
    case HAK_SEG_LARGE: return hak_large_usable(seg, p);
    case HAK_SEG_BIG: return hak_big_usable(seg, p);
  }
  return 0;
}
static size_t usable_size(const void *p) {
  if (hak_secure) return hak_secure_usable(p); /* the requested size */
  return usable_size_in(hak_segmap_lookup(p), p);
}

HAK_EXPORT void *hak_malloc(size_t n) { return hak_alloc_fast(n); }
HAK_EXPORT void hak_free(void *p) { hak_free_fast(p); }
HAK_EXPORT size_t hak_usable_size(const void *p) { return p ? usable_size(p) : 0; }
HAK_EXPORT int hak_owns(const void *p) { return hak_segmap_lookup(p) != NULL; }

hak_front void *hak_calloc_impl(size_t count, size_t size, void *site) {
  size_t n;
  if (__builtin_mul_overflow(count, size, &n)) {
    errno = ENOMEM;
    return NULL;
  }
  return hak_alloc_routed(n, 0, true, site); /* Large/Big skip zeroing fresh pages */
}

hak_front void *hak_realloc_impl(void *p, size_t n, void *site) {
  if (hak_secure) return hak_secure_realloc(p, n, site);
  if (!p) return n <= HAK_TINY_MAX ? hak_alloc_fast(n) : hak_malloc_slow(n, site);
  if (n == 0) { /* glibc: frees and returns NULL */
    hak_free_fast(p);
    return NULL;
  }
  hak_segment_t *seg = hak_segmap_lookup(p); /* (the secure library returned above) */
  size_t old = usable_size_in(seg, p);
  if (!old) {
    hak_report_misuse("invalid realloc", p, false);
    errno = EINVAL;
    return NULL;
  }
  if (n <= old && n >= old / 2) return p; /* fits, and not too wasteful */
  if (n > HAK_MAX_REQUEST) {
    errno = ENOMEM;
    return NULL;
  }
  const hak_policy_t *pol = hak_policy();
  bool tiered = seg->kind == HAK_SEG_LARGE || seg->kind == HAK_SEG_BIG;
  if (hak_sites_learning && n > old && tiered) hak_site_grow(site); /* for per-site headroom */
  if (seg->kind == HAK_SEG_LARGE && n > old && n < pol->big_threshold &&
      hak_large_grow(seg, p, n, site_if_profiled(site)))
    return p;
  if (seg->kind == HAK_SEG_BIG && n >= pol->big_threshold) {
    void *q = hak_big_realloc(seg, p, n, site_if_profiled(site));
    if (q) return q;
  }
  /* A Large block that must move while growing gets some more room
   * (policy: a quarter): buffers grown step by step then copy O(1) times
   * per byte.  A site the per-site decisions looked at gets it only if it
   * keeps growing its blocks; one they do not know gets the default (it
   * lost it before 2026-11-30: a policy file from another run made
   * realloc-grow 1.27 x slower, its buffers moving 1.5 x as often). */
  size_t want = n;
  if (n > old && seg->kind == HAK_SEG_LARGE) {
    size_t slack = n >> pol->realloc_slack_shift;
    unsigned grows = hak_site_lookup(pol->sites, site);
    if ((grows & HAK_SITE_DECIDED) && !(grows & HAK_SITE_GROW)) slack = 0;
    if (n + slack < pol->big_threshold) want = n + slack;
  }
  void *q = want <= HAK_TINY_MAX ? hak_alloc_fast(want) : hak_malloc_slow(want, site);
  if (!q) return NULL;
  size_t copied = old < n ? old : n;
  memcpy(q, p, copied);
  HAK_HEAP_STAT(hak_tls_heap, realloc_copied, copied); /* the learner prices copies */
  hak_heap_fold_due(hak_tls_heap);
  if (seg->kind == HAK_SEG_LARGE && n > old) hak_large_free_moved(seg, p);
  else hak_free_fast(p);
  return q;
}

HAK_EXPORT void *hak_calloc(size_t count, size_t size) { return hak_calloc_impl(count, size, HAK_RA()); }
HAK_EXPORT void *hak_realloc(void *p, size_t n) { return hak_realloc_impl(p, n, HAK_RA()); }

void *hak_aligned_impl(size_t align, size_t n, void *site) {
  if (!hak_is_pow2(align)) {
    errno = EINVAL;
    return NULL;
  }
  return hak_alloc_routed(n, align, false, site);
}

HAK_EXPORT void *hak_aligned_alloc(size_t align, size_t n) { return hak_aligned_impl(align, n, HAK_RA()); }

/* memalign is glibc's lenient one: an alignment of 16 or less (0 too) is
 * malloc's, and one that is not a power of two is rounded up to one. */
void *hak_memalign_impl(size_t align, size_t n, void *site) {
  if (align > HAK_MAX_REQUEST) {
    errno = EINVAL;
    return NULL;
  }
  if (align && !hak_is_pow2(align)) align = (size_t)1 << (hak_bsr(align) + 1);
  return hak_alloc_routed(n, align, false, site);
}

HAK_EXPORT int hak_trim(void) {
  size_t before = atomic_load(&hak_os.committed);
  hak_heap_park_tick(0, true); /* exited threads' heaps: their memory is idle */
  hak_heap_t *h = hak_tls_heap;
  if (h != &hak_heap_empty) {
    if (hak_secure) hak_secure_flush(h);
    hak_large_flush_thread(h);
    hak_segment_adopt_all(h);
    hak_heap_collect(h, true, true);
  }
  hak_large_trim(true);
  hak_big_trim(true);
  hak_segment_cache_trim();
  return atomic_load(&hak_os.committed) < before;
}

/* ---- explicit call-site API ------------------------------------------- */

/* Counts are exact for every call: Large/Big blocks are recorded to their
 * free; Tiny/Mid ones are counted here (and followed to their free only
 * when the process profile samples them).  An explicit call turns nothing
 * on for the rest of the process. */
HAK_EXPORT void *hak_alloc_at(size_t n, const void *site) {
  void *s = (void *)site;
  if (!hak_stats_on) return hak_malloc_slow(n, s);
  if (n > HAK_MID_MAX) {
    if (n > HAK_MAX_REQUEST) {
      errno = ENOMEM;
      return NULL;
    }
    if (hak_secure) return hak_secure_alloc(n, 0, false, s);
    return hak_alloc_large_or_big(n, 0, false, s, true); /* recorded there */
  }
  hak_heap_t *h = hak_heap_get();
  hak_site_count(s, n); /* after init: the site table is ready */
  if (h == &hak_heap_empty) return hak_malloc_slow(n, s);
  h->sample_off = true; /* counted exactly here: no sample as well */
  void *p = hak_malloc_slow(n, s);
  h->sample_off = false;
  return p;
}

HAK_EXPORT void *hak_alloc_cs(size_t n) { return hak_alloc_at(n, HAK_RA()); }
HAK_EXPORT void hak_free_cs(void *p) { hak_free_fast(p); }

HAK_EXPORT int hak_profile_write(const char *path) {
  if (!path) {
    errno = EINVAL;
    return -1;
  }
  return hak_site_write(path);
}
