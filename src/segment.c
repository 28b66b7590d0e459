/* Segments (SuperSlabs): 4 MiB, aligned to their size, owned by one thread's
 * heap and cut into slabs.  Also the process-wide lists: empty segments kept
 * for reuse, and segments abandoned by exited threads until someone adopts
 * them. */
#include <string.h>

#include "check.h"
#include "internal.h"
#include "policy.h"
#include "os.h"

hak_big_bss _Atomic(uint8_t) hak_segmap[(size_t)1 << (HAK_MAP_BITS - HAK_SEG_SHIFT)];

static hak_lock_t seg_cache_lock = HAK_LOCK_INIT;
static hak_segment_t *seg_cache_first; /* empty segments; dirty slabs purged after the delay */
static size_t seg_cache_count;
static _Atomic uint64_t seg_cache_next_purge; /* ms, 0: nothing to purge */
static hak_lock_t seg_abandoned_lock = HAK_LOCK_INIT;
static hak_segment_t *seg_abandoned[2]; /* by kind: Tiny, Mid */
static _Atomic size_t seg_abandoned_count;

#define SEG_HEADER_BYTES HAK_TINY_SLAB0_OFFSET
/* When a heap last took a segment from the cache (ms): the Large tier
 * takes cached segments only from a cache the heaps have stopped using. */
static _Atomic uint64_t seg_cache_wanted;
/* Segments in the cache that their heap gave up for the Large tier
 * (hak_heap_release_idle); whoever takes one from the cache takes one of
 * these off (under the cache's lock). */
static size_t seg_cache_given;

static void given_take(void) {
  if (seg_cache_given) seg_cache_given--;
}

void hak_segment_cache_given(size_t n) {
  hak_lock(&seg_cache_lock);
  seg_cache_given += n;
  hak_unlock(&seg_cache_lock);
}

hak_front void hak_segmap_set(void *base, size_t size, bool on) {
  uintptr_t u = (uintptr_t)base >> HAK_SEG_SHIFT;
  size_t n = (size + HAK_SEG_MASK) >> HAK_SEG_SHIFT;
  for (size_t i = 0; i < n; i++) {
    uint8_t v = 0;
    if (on) v = (uint8_t)(i == 0 ? 1 : (i < 254 ? i + 1 : 255));
    atomic_store_explicit(&hak_segmap[u + i], v, memory_order_relaxed);
  }
}

hak_front hak_segment_t *hak_segmap_lookup(const void *p) {
  uintptr_t a = (uintptr_t)p;
  uint8_t v = hak_segmap_get(a);
  if (!v) return NULL;
  uintptr_t u = a >> HAK_SEG_SHIFT;
  while (v > 1) {
    u -= (uintptr_t)(v - 1);
    v = atomic_load_explicit(&hak_segmap[u], memory_order_relaxed);
  }
  return v ? (hak_segment_t *)(u << HAK_SEG_SHIFT) : NULL;
}

static inline int seg_kind_index(unsigned kind) { return kind == HAK_SEG_TINY ? 0 : 1; }

/* The heap's earliest purge time: its owner's slow path and the controller
 * look at it without the lock. */
static inline void heap_purge_at(hak_heap_t *h, uint64_t at) {
  uint64_t cur = atomic_load_explicit(&h->next_purge, memory_order_relaxed);
  if (!cur || at < cur) atomic_store_explicit(&h->next_purge, at, memory_order_relaxed);
}

/* The slabs in use, one bit each. */
static inline uint64_t seg_used_mask(const hak_segment_t *seg) {
  uint64_t all = seg->nslabs == 64 ? ~0ull : (1ull << seg->nslabs) - 1;
  return ~seg->free_mask & all;
}

static void slab_range(hak_segment_t *seg, unsigned i, uint8_t **lo, size_t *len) {
  size_t sb = (size_t)1 << seg->slab_shift;
  uint8_t *b = (uint8_t *)seg + (size_t)i * sb;
  uint8_t *s = i ? b : (uint8_t *)seg + SEG_HEADER_BYTES; /* keep the header */
  *lo = s;
  *len = (size_t)(b + sb - s);
}

static void seg_list_push(hak_segment_t **head, hak_segment_t *seg) {
  seg->prev = NULL;
  seg->next = *head;
  if (*head) (*head)->prev = seg;
  *head = seg;
}

static void seg_list_remove(hak_segment_t **head, hak_segment_t *seg) {
  if (seg->prev) seg->prev->next = seg->next;
  else *head = seg->next;
  if (seg->next) seg->next->prev = seg->prev;
  seg->next = seg->prev = NULL;
}

/* keep_dirty: the segment comes from the cache with the same slab size, so
 * its resident free slabs stay known (and counted) as such, and keep their
 * purge deadline. */
static void seg_init(hak_segment_t *seg, unsigned kind, bool keep_dirty) {
  unsigned shift = kind == HAK_SEG_TINY ? HAK_TINY_SLAB_SHIFT : HAK_MID_SLAB_SHIFT;
  unsigned n = (unsigned)(HAK_SEG_SIZE >> shift);
  seg->slab_shift = shift;
  seg->kind = (uint8_t)kind;
  seg->nslabs = (uint8_t)n;
  seg->free_mask = n == 64 ? ~0ull : (1ull << n) - 1;
  if (!keep_dirty) {
    seg->dirty_mask = seg->young_mask = 0;
    seg->purge_at = 0;
  }
  seg->used_slabs = 0;
  seg->map_size = HAK_SEG_SIZE;
  /* A slab's header is written when the slab is first taken (slab_acquire,
   * hak_slab_init), not here: a Tiny segment's 64 headers span three pages,
   * and a thread that uses a few slabs touches only the first.  A free
   * slab's header reads block size 0, blk_reserved 0 (a remote free's
   * check) and owner 0: zero from the kernel, or as slab_release left it. */
}

static void seg_purge_one(hak_segment_t *seg);

/* Huge pages for Tiny segments, by the Large tier's rule (large.c): a fault
 * costs about as much for 2 MiB as for 4 KiB, and TLB misses fall (jq,
 * 90 MiB of small objects: 25k faults against 2.4k; the Python workload
 * 20k against 7k).  But a partly used slab of each size class would hold
 * a whole 2 MiB half, so a fresh segment is asked for them only when its
 * heap's Tiny segments already have SEG_HUGE_USED slabs in use (3 MiB: the
 * growing front then wastes at most a half against that; a thread's first
 * segment never asks, nor does a heap holding sparse segments it adopted
 * or took back from the cache), and never Mid ones: a 512 KiB slab per
 * class, partly touched, held 7 MiB more in git pack-objects (73 MiB
 * against 66) for no time.  Asked before the header is written: advice
 * cannot merge pages already there.  A purge takes the request back from
 * the halves it touches (khugepaged would fill them in again to 2 MiB),
 * and so does a heap that would not have asked when it takes the segment
 * from the cache.  The committed count stays in 4 KiB pages: a huge half
 * holds more than it says. */
#define SEG_HUGE_USED 48
#define SEG_HALF (HAK_SEG_SIZE / 2)
#define SEG_HALVES_ALL ((uint8_t)((1u << (HAK_SEG_SIZE / SEG_HALF)) - 1))

static inline bool seg_huge_now(const hak_heap_t *h, unsigned kind) {
  if (kind != HAK_SEG_TINY || hak_secure || !hak_policy()->thp) return false;
  unsigned used = 0, n = 0; /* a few segments are enough to see it */
  for (const hak_segment_t *s = h->segs[seg_kind_index(kind)]; s && n < 16 && used < SEG_HUGE_USED; s = s->next, n++)
    used += s->used_slabs;
  return used >= SEG_HUGE_USED && hak_os_huge_pays(); /* the verdict last: a small process never asks it */
}

/* Takes the request back from the halves that [lo, lo+len) touches. */
static void seg_huge_off(hak_segment_t *seg, const uint8_t *lo, size_t len) {
  size_t off = (size_t)(lo - (uint8_t *)seg);
  for (size_t r = off / SEG_HALF; r <= (off + len - 1) / SEG_HALF; r++)
    if (seg->huge & (1u << r)) {
      hak_os_hugepage((uint8_t *)seg + r * SEG_HALF, SEG_HALF, false);
      seg->huge &= (uint8_t)~(1u << r);
    }
}

/* Slab i's pages (slab_range), as a first page and a count. */
static void slab_pages(hak_segment_t *seg, unsigned i, unsigned *first, unsigned *n) {
  uint8_t *lo;
  size_t len;
  slab_range(seg, i, &lo, &len);
  *first = (unsigned)((size_t)(lo - (uint8_t *)seg) >> HAK_PAGE_SHIFT);
  *n = (unsigned)(len >> HAK_PAGE_SHIFT);
}

/* The pages of an empty segment that may be resident, a bit each: its
 * header and its dirty free slabs (exactly what it counts as committed). */
static void seg_resident(hak_segment_t *seg, uint64_t *resident) {
  memset(resident, 0, HAK_SEG_PAGE_WORDS * sizeof *resident);
  hak_bits_set(resident, 0, SEG_HEADER_BYTES >> HAK_PAGE_SHIFT, true);
  for (uint64_t m = seg->dirty_mask; m; m &= m - 1) {
    unsigned first, n;
    slab_pages(seg, (unsigned)__builtin_ctzll(m), &first, &n);
    hak_bits_set(resident, first, n, true);
  }
}

/* An empty segment of another kind (the Large tier's, or the other slab
 * size's) whose `resident` pages are what it counts as committed becomes
 * one of `kind`: a slab any of whose pages may be resident is a dirty free
 * slab (counted whole as committed), purged on the usual delay.  Its header
 * is cleared: free slabs must read block size 0 and owner 0. */
static void seg_from_resident(hak_segment_t *seg, unsigned kind, const uint64_t *resident) {
  memset(seg, 0, SEG_HEADER_BYTES);
  seg_init(seg, kind, false);
  unsigned was = hak_bits_count(resident, 0, HAK_SEG_PAGES), now = SEG_HEADER_BYTES >> HAK_PAGE_SHIFT;
  for (unsigned i = 0; i < seg->nslabs; i++) {
    unsigned first, n;
    slab_pages(seg, i, &first, &n);
    if (!hak_bits_count(resident, first, n)) continue;
    seg->dirty_mask |= 1ull << i;
    now += n;
  }
  seg->young_mask = seg->dirty_mask; /* idle from now */
  if (seg->dirty_mask) seg->purge_at = hak_os_now_ms() + hak_purge_tick_ms();
  hak_os_commit_account(((ptrdiff_t)now - (ptrdiff_t)was) * (ptrdiff_t)HAK_PAGE);
}

hak_front hak_segment_t *hak_segment_cache_take(uint64_t *resident) {
  if (hak_secure) return NULL; /* its free slabs may keep guard pages */
  /* Only from a cache no heap has taken a segment from for a purge tick:
   * while the heaps cycle segments through it (Python: small objects and
   * a Large block now and then), they would map and fault in new ones for
   * what the Large tier took, and the Large tier would hand the pages back
   * to the OS as they grew (hak_large_release): the Python workload took
   * 21.2k page faults against 19.7k, 20.2k with this rule.  But segments
   * a heap gave up for the Large tier (seg_cache_given) it takes at once.
   * Then the newest, most likely still resident. */
  uint64_t wanted = atomic_load_explicit(&seg_cache_wanted, memory_order_relaxed);
  bool cycling = wanted && hak_os_now_ms() - wanted < hak_purge_tick_ms();
  hak_lock(&seg_cache_lock);
  hak_segment_t *seg = seg_cache_first;
  if (cycling && !seg_cache_given) seg = NULL;
  if (seg) {
    seg_list_remove(&seg_cache_first, seg);
    seg_cache_count--;
    given_take();
  }
  hak_unlock(&seg_cache_lock);
  if (seg) {
    seg_resident(seg, resident);
    seg_huge_off(seg, (uint8_t *)seg, HAK_SEG_SIZE); /* the Large tier keeps its own */
  }
  return seg;
}

/* A cached segment (one with the same slab size if there is one: its
 * resident slabs are reused as they are), an empty one of the Large tier
 * (its resident pages reused too), or a fresh mapping. */
static hak_segment_t *seg_obtain(hak_heap_t *h, unsigned kind) {
  hak_segment_t *seg = NULL;
  hak_lock(&seg_cache_lock);
  for (hak_segment_t *c = seg_cache_first; c; c = c->next)
    if (!seg || c->kind == kind) {
      seg = c;
      if (c->kind == kind) break;
    }
  if (seg) {
    seg_list_remove(&seg_cache_first, seg);
    seg_cache_count--;
    given_take();
  }
  hak_unlock(&seg_cache_lock);
  if (seg) atomic_store_explicit(&seg_cache_wanted, hak_os_now_ms(), memory_order_relaxed);
  bool keep = false;
  uint64_t resident[HAK_SEG_PAGE_WORDS];
  if (!seg && (seg = hak_large_take_empty(resident)) != NULL) {
    seg_from_resident(seg, kind, resident); /* the Large tier took its advice back */
    keep = true;
  } else if (!seg) {
    seg = hak_os_map_aligned(HAK_SEG_SIZE, HAK_SEG_SIZE);
    if (!seg) return NULL;
    seg->huge = seg_huge_now(h, kind) && hak_os_hugepage_fresh(seg, HAK_SEG_SIZE) ? SEG_HALVES_ALL : 0;
    hak_os_commit_account((ptrdiff_t)SEG_HEADER_BYTES);
    hak_segmap_set(seg, HAK_SEG_SIZE, true);
  } else if (seg->kind == kind) {
    if (seg->huge && !seg_huge_now(h, kind)) /* a sparse heap's now */
      seg_huge_off(seg, (uint8_t *)seg, HAK_SEG_SIZE);
    keep = true;
  } else if (hak_secure) {
    seg_purge_one(seg); /* the dirty mask would mean other slabs; guard pages stay known */
  } else {
    /* The other slab size: its resident slabs become this size's dirty
     * ones (a Mid slab covers eight Tiny ones), not purged and faulted in
     * again. */
    seg_huge_off(seg, (uint8_t *)seg, HAK_SEG_SIZE); /* only Tiny segments ask */
    seg_resident(seg, resident);
    seg_from_resident(seg, kind, resident);
    keep = true;
  }
  seg_init(seg, kind, keep);
  /* Resident free slabs kept from the cache still go back on their
   * deadline: the new owner's purge must know it. */
  if (seg->dirty_mask) heap_purge_at(h, seg->purge_at);
  atomic_store_explicit(&seg->heap, h, memory_order_relaxed);
  seg_list_push(&h->segs[seg_kind_index(kind)], seg);
  return seg;
}

static void seg_purge_one(hak_segment_t *seg) {
  uint64_t m = seg->dirty_mask;
  /* Batch runs of adjacent dirty slabs into one madvise. */
  while (m) {
    unsigned i = (unsigned)__builtin_ctzll(m);
    unsigned j = i;
    while (j + 1 < seg->nslabs && (m & (1ull << (j + 1)))) j++;
    uint8_t *lo, *hi_lo;
    size_t len, hi_len;
    slab_range(seg, i, &lo, &len);
    slab_range(seg, j, &hi_lo, &hi_len);
    seg_huge_off(seg, lo, (size_t)(hi_lo + hi_len - lo));
    hak_os_decommit(lo, (size_t)(hi_lo + hi_len - lo));
    for (unsigned k = i; k <= j; k++) m &= ~(1ull << k);
  }
  seg->dirty_mask = seg->young_mask = 0;
}

/* A purge tick (every half delay while slabs are dirty): the slabs that
 * were already free at the previous tick go back to the OS, those freed
 * since wait for the next one.  So a free slab stays resident between half
 * the delay and the delay: a program that frees and reuses its memory
 * within that time never faults it in again, and nothing is kept longer. */
static void seg_purge_tick(hak_segment_t *seg, uint64_t now, bool force) {
  uint64_t delay = hak_policy()->purge_delay_ms;
  uint64_t young = force || !delay ? 0 : seg->young_mask;
  seg->dirty_mask &= ~young;
  seg_purge_one(seg);
  seg->dirty_mask = young;
  seg->purge_at = young ? now + hak_purge_tick_ms() : 0;
}

static void seg_unmap(hak_segment_t *seg) {
  seg_purge_one(seg); /* keeps the committed count right */
  hak_segmap_set(seg, HAK_SEG_SIZE, false);
  hak_os_commit_account(-(ptrdiff_t)SEG_HEADER_BYTES);
  hak_os_unmap(seg, HAK_SEG_SIZE);
}

/* How long a segment has been in the cache, in ms. */
static inline uint64_t seg_cached_for(const hak_segment_t *c, uint64_t now) {
  return (uint32_t)((uint32_t)now - c->cached_ms);
}

/* Has a cached segment waited out the purge delay (its slabs then purged)? */
static inline bool seg_cache_stale(const hak_segment_t *c, uint64_t now, uint64_t delay) {
  return seg_cached_for(c, now) >= delay;
}

/* When the next cached segment will have waited out the delay (0: none
 * is waiting): the tick that may trim a cache over its size. */
static uint64_t seg_cache_next_stale(uint64_t now, uint64_t delay) {
  uint64_t due = 0;
  for (hak_segment_t *c = seg_cache_first; c; c = c->next) {
    uint64_t age = seg_cached_for(c, now);
    if (age < delay && (!due || now + delay - age < due)) due = now + delay - age;
  }
  return due;
}

/* The cache's coldest segment that has waited out the delay (fewest
 * resident slabs, the oldest of those), taken off the list; NULL if none. */
static hak_segment_t *seg_cache_evict(uint64_t now, uint64_t delay) {
  hak_segment_t *out = NULL;
  int least = 65;
  for (hak_segment_t *c = seg_cache_first; c; c = c->next) {
    int n = (int)hak_popcount(c->dirty_mask);
    if (n <= least && seg_cache_stale(c, now, delay)) out = c, least = n; /* the list runs newest first */
  }
  if (out) {
    seg_list_remove(&seg_cache_first, out);
    seg_cache_count--;
  }
  return out;
}

/* An empty segment goes to the process-wide cache as it is (a thread that
 * exits and the next that starts reuse it without page faults); its
 * resident slabs are purged after the delay.  Past HAKMEM_SEGMENT_CACHE
 * segments the cache gives up its coldest one, but only one that has
 * waited out the purge delay: the segments that come back together (the
 * threads of a round exit, then the blocks they left are freed) would
 * otherwise be unmapped all but a few, and the next round's threads fault
 * fresh ones in (thread-churn at 32 threads: 586 segments mapped against
 * 34).  So the cache holds more than its size for at most the delay, the
 * time any free slab stays resident; the purge tick trims it back. */
hak_front static void seg_to_cache(hak_segment_t *seg, uint64_t idle_since) {
  const hak_policy_t *pol = hak_policy();
  uint64_t now = hak_os_now_ms(), delay = pol->purge_delay_ms;
  atomic_store_explicit(&seg->heap, NULL, memory_order_relaxed);
  if (!seg->dirty_mask) seg->purge_at = 0;
  else if (!seg->purge_at) seg->purge_at = now + hak_purge_tick_ms();
  seg->cached_ms = (uint32_t)(idle_since && idle_since < now ? idle_since : now);
  size_t cap = pol->segment_cache;
  if (cap == 0) {
    seg_unmap(seg);
    return;
  }
  hak_lock(&seg_cache_lock);
  hak_segment_t *out = seg_cache_count >= cap ? seg_cache_evict(now, delay) : NULL;
  seg_list_push(&seg_cache_first, seg);
  seg_cache_count++;
  /* The next tick: this segment's purge, or the trim of the excess. */
  uint64_t due = seg->dirty_mask ? seg->purge_at : 0;
  if (seg_cache_count > cap) {
    uint64_t trim = seg_cache_next_stale(now, delay);
    if (trim && (!due || trim < due)) due = trim;
  }
  uint64_t next = atomic_load_explicit(&seg_cache_next_purge, memory_order_relaxed);
  if (due && (!next || due < next)) atomic_store_explicit(&seg_cache_next_purge, due, memory_order_relaxed);
  hak_unlock(&seg_cache_lock);
  if (out) seg_unmap(out);
}

static void seg_release(hak_heap_t *h, hak_segment_t *seg) {
  seg_list_remove(&h->segs[seg_kind_index(seg->kind)], seg);
  seg_to_cache(seg, 0);
}

/* Purges the free slabs of cached and abandoned segments (no thread owns
 * them) once their delay has passed; any thread's slow path may do it. */
static void purge_list(hak_segment_t *list, uint64_t now, bool force, uint64_t *next) {
  for (hak_segment_t *c = list; c; c = c->next) {
    if (hak_debug) hak_check_segment(c);
    if (!c->dirty_mask) continue;
    if (force || now >= c->purge_at) seg_purge_tick(c, now, force);
    if (c->purge_at && (!*next || c->purge_at < *next)) *next = c->purge_at;
  }
}

hak_front void hak_segment_cache_tick(uint64_t now, bool force) {
  uint64_t next = atomic_load_explicit(&seg_cache_next_purge, memory_order_relaxed);
  if (!next || (!force && now < next)) return;
  next = 0;
  const hak_policy_t *pol = hak_policy();
  uint64_t delay = force ? 0 : pol->purge_delay_ms;
  hak_segment_t *trimmed = NULL;
  hak_lock(&seg_cache_lock);
  purge_list(seg_cache_first, now, force, &next);
  /* More segments than the cache's size: those that waited out the delay go. */
  while (seg_cache_count > pol->segment_cache) {
    hak_segment_t *out = seg_cache_evict(now, delay);
    if (!out) break;
    out->next = trimmed;
    trimmed = out;
  }
  if (seg_cache_count > pol->segment_cache) {
    uint64_t trim = seg_cache_next_stale(now, delay);
    if (trim && (!next || trim < next)) next = trim;
  }
  hak_unlock(&seg_cache_lock);
  while (trimmed) {
    hak_segment_t *n = trimmed->next;
    seg_unmap(trimmed);
    trimmed = n;
  }
  hak_lock(&seg_abandoned_lock);
  for (int k = 0; k < 2; k++) purge_list(seg_abandoned[k], now, force, &next);
  hak_unlock(&seg_abandoned_lock);
  atomic_store_explicit(&seg_cache_next_purge, next, memory_order_relaxed);
}

size_t hak_segment_cache_trim(void) {
  size_t n = 0;
  hak_lock(&seg_cache_lock);
  hak_segment_t *list = seg_cache_first;
  seg_cache_first = NULL;
  seg_cache_count = 0;
  atomic_store_explicit(&seg_cache_next_purge, 0, memory_order_relaxed);
  hak_unlock(&seg_cache_lock);
  while (list) {
    hak_segment_t *next = list->next;
    seg_unmap(list);
    n += HAK_SEG_SIZE;
    list = next;
  }
  return n;
}

static hak_segment_t *adopt_one(hak_heap_t *h, unsigned kind);

static hak_slab_t *slab_acquire(hak_heap_t *h, unsigned cls) {
  unsigned kind = cls < HAK_NTINY ? HAK_SEG_TINY : HAK_SEG_MID;
  hak_segment_t *seg = h->segs[seg_kind_index(kind)];
  while (seg && !seg->free_mask) seg = seg->next;
  /* An exited thread's segment with a free slab before a fresh one. */
  while (!seg && (seg = adopt_one(h, kind)) != NULL && !seg->free_mask) seg = NULL;
  if (!seg) seg = seg_obtain(h, kind);
  if (!seg) return NULL;
  /* Prefer a free slab that is still resident: no page faults, no syscall. */
  uint64_t pick = seg->free_mask & seg->dirty_mask;
  if (!pick) pick = seg->free_mask;
  unsigned i = (unsigned)__builtin_ctzll(pick);
  uint64_t bit = 1ull << i;
  hak_slab_t *slab = &seg->slabs[i];
  bool fresh = !(seg->dirty_mask & bit);
  if (fresh) {
    uint8_t *lo;
    size_t len;
    slab_range(seg, i, &lo, &len);
    /* Growing: as much of the Large tier's idle resident pages goes back
     * first, so that the resident set follows a program that moves from
     * Large blocks to small ones instead of holding both until the purge. */
    hak_large_release(len);
    hak_os_commit_account((ptrdiff_t)len);
  }
  seg->free_mask &= ~bit;
  seg->dirty_mask &= ~bit;
  seg->young_mask &= ~bit;
  seg->used_slabs++;
  slab->index = (uint8_t)i;
  hak_slab_init(slab, seg, cls);
  hak_slab_set_owner(slab, h, false);
  if (hak_debug) hak_check_segment(seg);
  return slab;
}

static void slab_release(hak_heap_t *h, hak_slab_t *slab) {
  hak_segment_t *seg = hak_seg_of(slab);
  uint64_t bit = 1ull << slab->index;
  hak_slab_set_owner(slab, NULL, false);
  slab->block_size = 0;
  slab->blk_reserved = 0;
  seg->free_mask |= bit;
  seg->dirty_mask |= bit;
  seg->young_mask |= bit;
  seg->used_slabs--;
  if (seg->used_slabs == 0 && (seg->prev || seg->next)) {
    seg_release(h, seg); /* keep the heap's last segment of a kind as a spare */
    return;
  }
  if (!seg->purge_at) seg->purge_at = hak_os_now_ms() + hak_purge_tick_ms();
  heap_purge_at(h, seg->purge_at);
  if (hak_debug) hak_check_segment(seg);
}

static void segments_purge(hak_heap_t *h, uint64_t now, bool force) {
  uint64_t next = 0;
  for (int k = 0; k < 2; k++)
    for (hak_segment_t *seg = h->segs[k]; seg; seg = seg->next) {
      if (hak_debug) hak_check_segment(seg);
      if (!seg->dirty_mask) continue;
      if (force || now >= seg->purge_at) seg_purge_tick(seg, now, force);
      if (seg->purge_at && (!next || seg->purge_at < next)) next = seg->purge_at;
    }
  atomic_store_explicit(&h->next_purge, next, memory_order_relaxed);
}

/* An idle heap (its thread exited; idle since `idle_since`, ms) hands every
 * segment to the abandoned lists, or the cache if it is empty.  The caller
 * has already taken the slabs out of the heap's queues. */
static void abandon_all(hak_heap_t *h, uint64_t idle_since) {
  for (int k = 0; k < 2; k++) {
    while (h->segs[k]) {
      hak_segment_t *seg = h->segs[k];
      seg_list_remove(&h->segs[k], seg);
      if (seg->used_slabs == 0) {
        seg_to_cache(seg, idle_since);
        continue;
      }
      atomic_store_explicit(&seg->heap, NULL, memory_order_relaxed);
      for (uint64_t m = seg_used_mask(seg); m; m &= m - 1)
        hak_slab_set_owner(&seg->slabs[__builtin_ctzll(m)], NULL, false);
      if (seg->dirty_mask && !seg->purge_at)
        seg->purge_at = hak_os_now_ms() + hak_purge_tick_ms();
      /* Read before publishing: once in the list, the segment is not ours. */
      uint64_t due = seg->dirty_mask ? seg->purge_at : 0;
      hak_lock(&seg_abandoned_lock);
      seg_list_push(&seg_abandoned[k], seg);
      atomic_fetch_add_explicit(&seg_abandoned_count, 1, memory_order_relaxed);
      hak_unlock(&seg_abandoned_lock);
      if (due) {
        uint64_t next = atomic_load_explicit(&seg_cache_next_purge, memory_order_relaxed);
        if (!next || due < next) atomic_store_explicit(&seg_cache_next_purge, due, memory_order_relaxed);
      }
    }
  }
}

/* Takes one abandoned segment of `kind`: its live slabs join h's queues,
 * its empty ones are released. */
hak_front static hak_segment_t *adopt_one(hak_heap_t *h, unsigned kind) {
  int k = seg_kind_index(kind);
  if (!atomic_load_explicit(&seg_abandoned_count, memory_order_relaxed)) return NULL;
  hak_lock(&seg_abandoned_lock);
  hak_segment_t *seg = seg_abandoned[k];
  if (seg) {
    seg_list_remove(&seg_abandoned[k], seg);
    atomic_fetch_sub_explicit(&seg_abandoned_count, 1, memory_order_relaxed);
  }
  hak_unlock(&seg_abandoned_lock);
  if (!seg) return NULL;
  atomic_store_explicit(&seg->heap, h, memory_order_relaxed);
  seg_list_push(&h->segs[k], seg);
  for (uint64_t m = seg_used_mask(seg); m; m &= m - 1) {
    unsigned i = (unsigned)__builtin_ctzll(m);
    uint64_t bit = 1ull << i;
    hak_slab_t *slab = &seg->slabs[i];
    if (hak_heap_adopt_slab(h, slab)) {
      hak_slab_set_owner(slab, NULL, false);
      slab->block_size = 0;
      slab->blk_reserved = 0;
      seg->free_mask |= bit;
      seg->dirty_mask |= bit;
      seg->young_mask |= bit;
      seg->used_slabs--;
    }
  }
  HAK_STAT_INC(hak_gstats.segments_adopted);
  if (seg->dirty_mask && !seg->purge_at) seg->purge_at = hak_os_now_ms() + hak_purge_tick_ms();
  if (seg->dirty_mask) heap_purge_at(h, seg->purge_at);
  if (hak_debug) hak_check_segment(seg);
  return seg;
}

/* ---- what the heap calls: each under the heap's segment lock -------------
 * A heap's segments, their slab masks and purge times change only under
 * h->seg_lock: the owner takes it on these (rare) slow paths, and the
 * controller thread takes it to purge an idle thread's free slabs. */

hak_front hak_slab_t *hak_segment_slab_acquire(hak_heap_t *h, unsigned cls) {
  hak_lock(&h->seg_lock);
  hak_slab_t *s = slab_acquire(h, cls);
  hak_unlock(&h->seg_lock);
  return s;
}

hak_front void hak_segment_slab_release(hak_heap_t *h, hak_slab_t *slab) {
  hak_lock(&h->seg_lock);
  slab_release(h, slab);
  hak_unlock(&h->seg_lock);
}

void hak_segment_purge(hak_heap_t *h, uint64_t now, bool force) {
  hak_lock(&h->seg_lock);
  segments_purge(h, now, force);
  hak_unlock(&h->seg_lock);
}

bool hak_segment_purge_try(hak_heap_t *h, uint64_t now, bool force) {
  uint64_t due = atomic_load_explicit(&h->next_purge, memory_order_relaxed);
  if (!due || (!force && now < due) || !hak_lock_try(&h->seg_lock)) return false;
  segments_purge(h, now, force);
  hak_unlock(&h->seg_lock);
  return true;
}

void hak_segment_abandon_all(hak_heap_t *h, uint64_t idle_since) {
  hak_lock(&h->seg_lock);
  abandon_all(h, idle_since);
  hak_unlock(&h->seg_lock);
}

/* The owner, without the lock (only the owner changes its segment list
 * and their free masks): does a segment of ours have a free slab for `cls`? */
hak_front bool hak_segment_has_free_slab(hak_heap_t *h, unsigned cls) {
  for (hak_segment_t *seg = h->segs[seg_kind_index(cls < HAK_NTINY ? HAK_SEG_TINY : HAK_SEG_MID)]; seg; seg = seg->next)
    if (seg->free_mask) return true;
  return false;
}

/* The owner: do `n` slabs hold its segment, and does the heap have another
 * of its kind (the last one stays as a spare: slab_release)? */
bool hak_segment_held_by(hak_heap_t *h, const hak_segment_t *seg, unsigned n) {
  hak_lock(&h->seg_lock);
  bool yes = seg->used_slabs == n && (seg->prev || seg->next);
  hak_unlock(&h->seg_lock);
  return yes;
}

hak_front bool hak_segment_adopt(hak_heap_t *h, unsigned cls) {
  hak_lock(&h->seg_lock);
  bool ok = adopt_one(h, cls < HAK_NTINY ? HAK_SEG_TINY : HAK_SEG_MID) != NULL;
  hak_unlock(&h->seg_lock);
  return ok;
}

/* Adopts every abandoned segment (malloc_trim): their empty slabs go back. */
void hak_segment_adopt_all(hak_heap_t *h) {
  hak_lock(&h->seg_lock);
  while (adopt_one(h, HAK_SEG_TINY) || adopt_one(h, HAK_SEG_MID)) {
  }
  hak_unlock(&h->seg_lock);
}

void hak_segment_lock_all(void) {
  hak_lock(&seg_cache_lock);
  hak_lock(&seg_abandoned_lock);
}

void hak_segment_unlock_all(bool child) {
  hak_lock_after_fork(&seg_abandoned_lock, child);
  hak_lock_after_fork(&seg_cache_lock, child);
}
