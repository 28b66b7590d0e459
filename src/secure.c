/* The secure library (libhakmem-secure.so, built with HAKMEM_SECURE=1):
 * every allocation and free of it goes through this file, which owns the
 * checks; the tiers below keep their own logic with `if (hak_secure)`
 * touches (encoded links in secure.h, guard pages in slab.c, large.c,
 * big.c).  Compiled into the normal library too, where nothing calls it.
 *
 * - Free-list links are encoded with a per-process secret and their own
 *   address, and checked when decoded (secure.h).
 * - A request gets 8 bytes more than asked.  A slab block's last word is
 *   its record, keyed by a secret and the block address: the requested
 *   size when allocated, a "free" mark when not.  A double free, a free of
 *   an interior or unaligned pointer, a forged link to a live block, is
 *   known at once; malloc_usable_size is the requested size.
 * - Canaries: the 8 bytes after the request (up to the record), and the
 *   record itself; both checked on free, and the record of the block
 *   before (an underflow) too.  Large and Big blocks keep their requested
 *   size in their tier's header and a canary after it.
 * - A freed block is patterned and waits in a per-thread, per-class
 *   quarantine; when it leaves, the pattern is checked (writes after free).
 * - Fresh slabs hand their blocks out in a random order; slabs, Large spans
 *   and Big blocks end with a guard page.
 * Errors are reported with the call site, then HAKMEM_ON_ERROR (abort by
 * default here) decides; a corrupted free list always stops the process. */
#define _GNU_SOURCE
#include "secure.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "fastpath.h"
#include "msg.h"
#include "options.h"
#include "os.h"
#include "policy.h"
#include "site.h"

uintptr_t hak_sec_key = 0x9E3779B97F4A7C15u; /* replaced at start */
static uint64_t sec_canary_key = 0xD6E8FEB86659FD93u | 0x8080808080808080u;
static unsigned sec_qmask = 15, sec_large_qlen = 4; /* ring length - 1 (0: no quarantine) */
unsigned hak_sec_big_delay = 1;
static bool sec_zero;
static uint64_t sec_fill_mask = ~0ull; /* the quarantine pattern: w & this (0 with HAKMEM_ZERO_FREE) */
static int sec_fill;
static _Atomic uint64_t sec_rng_shared;

/* Quarantine: a ring of freed slab blocks per thread, and a short one of
 * Large spans. */
#define SEC_QMAX 256
#define SEC_LQMAX 4
typedef struct { void *p, *site; } sec_qent_t;
typedef struct {
  uint64_t rng;
  unsigned pos, lpos;
  sec_qent_t q[SEC_QMAX];
  sec_qent_t lq[SEC_LQMAX];
} sec_heap_t;

/* The state lives right after the heap (heap.c allocates room for it). */
static inline sec_heap_t *sec_of(hak_heap_t *h) { return (sec_heap_t *)(h + 1); }
size_t hak_sec_heap_bytes(void) { return sizeof(sec_heap_t); }

/* A Large span in quarantine keeps its requested size with this bit set. */
#define SEC_LQ 0x80000000u

void hak_secure_init(void) {
  uint64_t r[2] = {0, 0};
  hak_os_random(r, sizeof r);
  if (r[0]) hak_sec_key = (uintptr_t)r[0];
  if (r[1]) sec_canary_key = r[1];
  sec_canary_key |= 0x8080808080808080u;
  atomic_store(&sec_rng_shared, r[0] ^ r[1]);
  unsigned q = (unsigned)HAK_OPT(QUARANTINE), len = 1;
  while (len < q) len <<= 1; /* a power of two: the ring wraps with a mask */
  sec_qmask = q ? len - 1 : 0;
  sec_large_qlen = q < SEC_LQMAX ? q : SEC_LQMAX; /* spans are large: fewer wait */
  hak_sec_big_delay = q < 1 ? q : 1; /* more costs big-buffers 4x its page faults */
  sec_zero = HAK_OPT(ZERO_FREE) != 0;
  sec_fill_mask = sec_zero ? 0 : ~0ull;
  sec_fill = (int)HAK_OPT(FILL);
}

/* ---- patterns ------------------------------------------------------------ */

/* The canary and free pattern of the block at b: byte j of the block is
 * byte j % 8 of this word.  Every byte >= 0x80, so that ASCII text and
 * zeros written over it are always seen. */
static inline uint64_t sec_word(const void *b) {
  return sec_canary_key ^ (((uint64_t)(uintptr_t)b >> 3) & 0x7f7f7f7f7f7f7f7fu); /* the key has them set */
}

/* The 8 pattern bytes that start at block offset `off`. */
static inline uint64_t sec_word_at(uint64_t w, size_t off) {
  unsigned r = (unsigned)(off & 7) * 8;
  return (w >> r) | (w << ((64 - r) & 63));
}

static inline uint64_t load8(const void *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}
static inline void store8(void *p, uint64_t v) { memcpy(p, &v, 8); }

/* A slab block's record, its last word: W ^ ((n + 1) << 24) when it holds
 * n requested bytes, W when it is free.  Any byte of it changed by an
 * overflow (its low bytes) or an underflow from the next block (its high
 * bytes) breaks the zero bytes around the size. */
#define SEC_SIZE_BITS (0xffffull << 24)
static inline uint64_t sec_record(size_t n, uint64_t w) { return w ^ ((uint64_t)(n + 1) << 24); }

/* The record of slab block b: n + 1 if it holds n bytes, 0 if free, -1 if
 * overwritten. */
static inline long sec_record_get(const uint8_t *b, size_t bs, uint64_t w) {
  uint64_t x = load8(b + bs - 8) ^ w;
  size_t e = (size_t)(x >> 24);
  if ((x & ~SEC_SIZE_BITS) || e > bs - 7) return -1;
  return (long)e;
}

/* The 8 pattern bytes after the request, then the record (stored last: the
 * two overlap when the slack is under 16). */
static inline void sec_canary_set(uint8_t *b, size_t n, size_t bs, uint64_t w) {
  store8(b + n, sec_word_at(w, n));
  store8(b + bs - 8, sec_record(n, w));
}

/* The pattern bytes after n, up to the record: intact? */
static inline bool sec_head_ok8(const uint8_t *b, size_t n, size_t bs, uint64_t w) {
  size_t k = bs - 8 - n; /* pattern bytes before the record */
  uint64_t diff = load8(b + n) ^ sec_word_at(w, n);
  if (k < 8) diff &= (1ull << (8 * k)) - 1;
  return diff == 0;
}

/* Large and Big blocks: up to 8 pattern bytes after the request (their
 * guard page follows the block's pages), a word at once when the block
 * has 8 bytes of slack, as it nearly always has (a byte loop was a quarter
 * of a 64 KiB buffer's malloc and free in the secure library). */
static void sec_head_set(uint8_t *p, size_t n, size_t cap) {
  uint64_t w = sec_word(p);
  if (cap >= n + 8) {
    store8(p + n, sec_word_at(w, n));
    return;
  }
  for (size_t j = n; j < cap; j++) p[j] = (uint8_t)(w >> (8 * (j & 7)));
}

static bool sec_head_ok(const uint8_t *p, size_t n, size_t cap) {
  uint64_t w = sec_word(p);
  if (cap >= n + 8) return load8(p + n) == sec_word_at(w, n);
  for (size_t j = n; j < cap; j++)
    if (p[j] != (uint8_t)(w >> (8 * (j & 7)))) return false;
  return true;
}

/* ---- reports --------------------------------------------------------------- */

static _Atomic unsigned sec_reported;

static void sec_site(char *buf, size_t cap, const void *site) {
  Dl_info info;
  if (site && dladdr(site, &info) && info.dli_fname) {
    const char *mod = strrchr(info.dli_fname, '/');
    mod = mod ? mod + 1 : info.dli_fname;
    if (info.dli_sname)
      hak_fmt(buf, cap, "%s+0x%lx (%s)", info.dli_sname,
              (unsigned long)((uintptr_t)site - (uintptr_t)info.dli_saddr), mod);
    else
      hak_fmt(buf, cap, "%s+0x%lx", *mod ? mod : "?", (unsigned long)((uintptr_t)site - (uintptr_t)info.dli_fbase));
  } else {
    hak_fmt(buf, cap, "%p", site);
  }
}

/* "hakmem: <what> at <site>; aborting|ignored", then HAKMEM_ON_ERROR. */
static hak_cold void sec_error(void *site, bool fatal, const char *fmt, ...) {
  bool stop = fatal || HAK_OPT(ON_ERROR) == HAK_ON_ERROR_ABORT;
  if (HAK_OPT(REPORT_ERRORS) || fatal) {
    unsigned k = atomic_fetch_add_explicit(&sec_reported, 1, memory_order_relaxed);
    if (k < 16 || stop) {
      char what[320], where[200];
      va_list ap;
      va_start(ap, fmt);
      hak_vfmt(what, sizeof what, fmt, ap);
      va_end(ap);
      if (site) {
        sec_site(where, sizeof where, site);
        hak_error("%s, at %s; %s", what, where, stop ? "aborting" : "ignored");
      } else {
        hak_error("%s; %s", what, stop ? "aborting" : "ignored");
      }
    } else if (k == 16) {
      hak_error("further errors are not reported");
    }
  }
  if (stop) abort();
}

static hak_cold void sec_invalid(const void *p, void *site, const char *op, const char *why) {
  HAK_STAT_INC(hak_misuse.invalid_frees);
  sec_error(site, false, "invalid %s of %p (%s)", op, p, why);
}

static hak_cold void sec_double(const void *p, void *site, const char *op, size_t size) {
  HAK_STAT_INC(hak_misuse.double_frees);
  char what[48] = "";
  if (size) hak_fmt(what, sizeof what, "a %zu-byte block, ", size);
  if (op[0] == 'f') sec_error(site, false, "double free of %p (%salready free)", p, what);
  else sec_error(site, false, "%s of %p (%salready free)", op, p, what);
}

static hak_cold void sec_overflow(const void *p, size_t n, size_t size, void *site, const char *op) {
  sec_error(site, false, "heap overflow: the canary after the %zu requested bytes of the %zu-byte block %p is overwritten (found on %s)",
            n, size, p, op);
}

hak_noinline __attribute__((noreturn)) void hak_sec_bad_link(const hak_slab_t *s, const void *b) {
  sec_error(NULL, true, "corrupted free list: the link in free block %p (size class %u B) does not point into its slab (a write after free?)",
            b, s ? s->block_size : 0);
  abort();
}

static hak_cold void sec_bad_record(const void *p, size_t bs, void *site, const char *op) {
  sec_error(site, false, "heap overflow or underflow: the last word of the %zu-byte block %p, its record, is overwritten (found on %s)",
            bs, p, op);
}

static hak_noinline __attribute__((noreturn)) void sec_not_free(const hak_slab_t *s, const void *b) {
  sec_error(NULL, true, "corrupted free list: block %p (size class %u B) on a free list is not free (its last word was written after its free, or the list forged)",
            b, s->block_size);
  abort();
}

/* ---- slab blocks ------------------------------------------------------------ */

static inline hak_slab_t *sec_slab(hak_segment_t *seg, const void *p) {
  return &seg->slabs[((uintptr_t)p & HAK_SEG_MASK) >> seg->slab_shift];
}

hak_block_t *hak_sec_link_get_any(const hak_block_t *b) {
  hak_block_t *n = (hak_block_t *)((uintptr_t)b->next ^ hak_sec_link_key(b));
  if (!n) return NULL;
  hak_segment_t *seg = hak_seg_of(n);
  if (hak_segmap_get((uintptr_t)n) != 1 || (seg->kind != HAK_SEG_TINY && seg->kind != HAK_SEG_MID))
    hak_sec_bad_link(NULL, b);
  const hak_slab_t *s = sec_slab(seg, n);
  if (!s->block_size || hak_slab_block_index(s, n) == UINT32_MAX) hak_sec_bad_link(NULL, b);
  return n;
}

static uint64_t sec_rand(hak_heap_t *h) {
  uint64_t x;
  if (h == &hak_heap_empty) {
    x = atomic_fetch_add_explicit(&sec_rng_shared, 0x9E3779B97F4A7C15u, memory_order_relaxed);
  } else {
    uint64_t *r = &sec_of(h)->rng;
    if (!*r) *r = hak_sec_key ^ (uintptr_t)h ^ 0x2545F4914F6CDD1Du;
    x = hak_xorshift(r);
  }
  x = (x ^ (x >> 31)) * 0xBF58476D1CE4E5B9u;
  return x ^ (x >> 29);
}

/* A slab's secure layout: [blocks][guard page].  The first slab of a
 * segment has a canary word before its first block (in the header); the
 * others follow the guard page of the slab before. */
static void sec_guard(hak_segment_t *seg, unsigned index, uint8_t *page) {
  if (seg->sec_guard_kind != seg->kind) {
    /* A cached segment changed kind: its old guards are in the way. */
    if (seg->sec_guard_mask) hak_os_protect(seg, HAK_SEG_SIZE, false);
    seg->sec_guard_mask = 0;
    seg->sec_guard_kind = seg->kind;
  }
  uint64_t bit = 1ull << index;
  if (!(seg->sec_guard_mask & bit) && hak_os_protect(page, HAK_PAGE, true)) seg->sec_guard_mask |= bit;
}

uint32_t hak_sec_slab_init(hak_slab_t *s, hak_segment_t *seg, uint8_t *base, size_t slab_bytes, size_t bs) {
  bool tiny = seg->kind == HAK_SEG_TINY;
  uint8_t *b0 = s->index ? base : (uint8_t *)seg + (tiny ? HAK_TINY_SLAB0_OFFSET : HAK_MID_SLAB0_OFFSET);
  uint8_t *end = base + slab_bytes - HAK_PAGE;
  sec_guard(seg, s->index, end); /* first: a change of kind unprotects the old guards */
  if (s->index == 0) store8(b0 - 8, sec_word(b0 - 8));
  return (uint32_t)((size_t)(end - b0) / bs);
}

/* Fresh blocks go on the list in a random order inside windows of 16
 * (the windows in address order): which block lies next to which cannot
 * be predicted, and the list still walks memory forwards, as prefetchers
 * like (a full shuffle of a chunk halves the speed of producer/consumer
 * programs). */
#define SEC_WINDOW 16
void hak_sec_carve(hak_slab_t *slab, uint8_t *p, uint32_t n, size_t bs) {
  hak_heap_t *h = hak_tls_heap;
  hak_block_t *head = slab->free;
  /* Built from the end, so that the list starts at the lowest window. */
  for (uint32_t w = (n - 1) / SEC_WINDOW + 1; w-- > 0;) {
    uint32_t lo = w * SEC_WINDOW, m = n - lo < SEC_WINDOW ? n - lo : SEC_WINDOW;
    uint8_t perm[SEC_WINDOW];
    for (uint32_t i = 0; i < m; i++) perm[i] = (uint8_t)i;
    uint64_t r = sec_rand(h);
    for (uint32_t i = m - 1; i > 0; i--, r >>= 4) { /* Fisher-Yates, 4 random bits a step */
      uint32_t j = (uint32_t)(((r & 15) * (i + 1)) >> 4);
      uint8_t t = perm[i];
      perm[i] = perm[j];
      perm[j] = t;
    }
    for (uint32_t k = m; k-- > 0;) {
      uint8_t *b = p + (size_t)(lo + perm[k]) * bs;
      store8(b + bs - 8, sec_word(b)); /* a free block's last word too */
      hak_link_set((hak_block_t *)b, head);
      head = (hak_block_t *)b;
    }
  }
  slab->free = head;
}

/* The block just popped from slab s is handed out for n bytes: it must be
 * a free block (a forged link could point at a live one). */
static inline void sec_slab_alloced(hak_slab_t *s, uint8_t *b, size_t n) {
  size_t bs = s->block_size;
  uint64_t w = sec_word(b);
  if (hak_unlikely(load8(b + bs - 8) != w)) sec_not_free(s, b);
  sec_canary_set(b, n, bs, w);
  if (hak_unlikely(sec_fill)) memset(b, sec_fill, n);
}

/* The last word before b: the record of the block before (free or not),
 * or the slab's front canary. */
static inline bool sec_before_ok(const hak_slab_t *s, const uint8_t *b) {
  if (hak_unlikely(b == s->blk_start)) return s->index != 0 || load8(b - 8) == sec_word(b - 8);
  const uint8_t *prev = b - s->block_size;
  return ((load8(b - 8) ^ sec_word(prev)) & ~SEC_SIZE_BITS) == 0;
}

/* The quarantine pattern of a freed block: its first words (all of them
 * with HAKMEM_ZERO_FREE, as zeros) and its record, now "free". */
static inline void sec_poison(uint8_t *b, size_t bs, uint64_t w) {
  if (hak_unlikely(sec_zero)) memset(b, 0, bs - 8);
  uint64_t f = w & sec_fill_mask;
  store8(b, f);
  if (bs >= 32) store8(b + 8, f);
  store8(b + bs - 8, w);
}

/* Its first words, the ones programs write first (its record is checked
 * when it is handed out again: one cache line less here). */
static inline bool sec_poison_ok(const uint8_t *b, size_t bs, uint64_t w) {
  uint64_t f = w & sec_fill_mask, d = load8(b) ^ f;
  if (bs >= 32) d |= load8(b + 8) ^ f;
  return d == 0;
}

/* The real free of a slab block, as the normal library's free does it:
 * h is the heap whose quarantine it leaves (maybe not this thread's: a
 * forked child abandons other heaps). */
static inline void sec_release_small(hak_heap_t *h, hak_slab_t *s, hak_block_t *b) {
  uintptr_t o = atomic_load_explicit(&s->owner, memory_order_relaxed) & ~HAK_SLAB_SAMPLED;
  if (h != &hak_heap_empty && o == (uintptr_t)h) {
    hak_free_local(h, s, b);
    return;
  }
  if (h != &hak_heap_empty && o == ((uintptr_t)h | HAK_SLAB_FULL)) {
    hak_heap_free_full(h, s, b);
    return;
  }
  if (hak_tls_heap != &hak_heap_empty) HAK_STAT_ADD(hak_tls_heap->stats.cls[s->cls].remote_frees, 1);
  hak_slab_free_remote(s, b);
}

/* ---- the quarantine ------------------------------------------------------- */

static void sec_release(hak_heap_t *h, void *p) {
  hak_segment_t *seg = hak_seg_of(p);
  if (seg->kind == HAK_SEG_LARGE) {
    uint32_t *req;
    size_t pages;
    if (hak_large_block(seg, p, &req, &pages) == 1) *req &= ~SEC_LQ;
    hak_large_free(seg, p);
    return;
  }
  sec_release_small(h, sec_slab(seg, p), p);
}

static hak_cold void sec_uaf(const void *p, size_t bs, void *freed_at, void *site) {
  char freed[200];
  sec_site(freed, sizeof freed, freed_at);
  sec_error(site, false, "write after free: the %zu-byte block %p (freed at %s) was modified in quarantine; seen by the free",
            bs, p, freed);
}

/* A block leaves the quarantine: its pattern must be intact. */
static hak_noinline void sec_evict_large(hak_heap_t *h, sec_qent_t e, void *site) {
  uint64_t f = sec_zero ? 0 : sec_word(e.p);
  if (load8(e.p) != f || load8((uint8_t *)e.p + 8) != f) {
    uint32_t *req;
    size_t pages = 1;
    hak_large_block(hak_seg_of(e.p), e.p, &req, &pages);
    sec_uaf(e.p, (pages - 1) * HAK_PAGE, e.site, site);
  }
  sec_release(h, e.p);
}

static inline void sec_evict(hak_heap_t *h, sec_qent_t e, void *site) {
  hak_segment_t *seg = hak_seg_of(e.p);
  if (hak_unlikely(seg->kind == HAK_SEG_LARGE)) {
    sec_evict_large(h, e, site);
    return;
  }
  hak_slab_t *s = sec_slab(seg, e.p);
  size_t bs = s->block_size;
  if (hak_unlikely(!sec_poison_ok(e.p, bs, sec_word(e.p)))) sec_uaf(e.p, bs, e.site, site);
  sec_release_small(h, s, e.p);
}

/* A freed block enters the ring; the one it replaces leaves. */
static inline void sec_quarantine(hak_heap_t *h, void *p, void *site) {
  sec_heap_t *sh = sec_of(h);
  unsigned k = sh->pos++ & sec_qmask;
  sec_qent_t old = sh->q[k];
  sh->q[k] = (sec_qent_t){p, site};
  if (old.p) sec_evict(h, old, site);
}

static void sec_quarantine_large(hak_heap_t *h, void *p, void *site) {
  sec_heap_t *sh = sec_of(h);
  unsigned k = sh->lpos;
  sh->lpos = k + 1 < sec_large_qlen ? k + 1 : 0;
  sec_qent_t old = sh->lq[k];
  sh->lq[k] = (sec_qent_t){p, site};
  if (old.p) sec_evict_large(h, old, site);
}

void hak_secure_flush(hak_heap_t *h) {
  if (h == &hak_heap_empty) return;
  sec_heap_t *sh = sec_of(h);
  for (unsigned k = 0; k < SEC_QMAX + SEC_LQMAX; k++) {
    sec_qent_t *q = k < SEC_QMAX ? &sh->q[k] : &sh->lq[k - SEC_QMAX];
    sec_qent_t e = *q;
    q->p = NULL;
    if (e.p) sec_evict(h, e, e.site);
  }
  sh->pos = sh->lpos = 0;
}

/* At exit, the blocks still in this thread's quarantine are checked too. */
__attribute__((destructor)) static void sec_at_exit(void) {
  hak_heap_t *h = hak_tls_heap;
  if (!hak_secure || h == &hak_heap_empty) return;
  sec_heap_t *sh = sec_of(h);
  for (unsigned k = 0; k < SEC_QMAX; k++) {
    sec_qent_t e = sh->q[k];
    if (!e.p) continue;
    size_t bs = sec_slab(hak_seg_of(e.p), e.p)->block_size;
    if (!sec_poison_ok(e.p, bs, sec_word(e.p)) || load8((uint8_t *)e.p + bs - 8) != sec_word(e.p)) {
      char freed[200];
      sec_site(freed, sizeof freed, e.site);
      sec_error(NULL, false, "write after free: the %zu-byte block %p, freed at %s, was modified (seen at exit)", bs, e.p,
                freed);
    }
  }
}

/* ---- what a pointer is ------------------------------------------------------ */

typedef struct {
  hak_segment_t *seg;
  hak_slab_t *slab; /* Tiny/Mid */
  uint32_t idx;
  uint32_t *lreq;   /* Large */
  size_t *breq;     /* Big */
  size_t n, cap;    /* requested, and what it may grow to in place */
} sec_blk_t;

/* Finds the live block p; otherwise reports (op: "free", "realloc") and
 * returns false.  Reports nothing with site == NULL and op == NULL. */
static bool sec_find(void *p, void *site, const char *op, sec_blk_t *o) {
  memset(o, 0, sizeof *o);
  hak_segment_t *seg = hak_segmap_lookup(p);
  if (!seg) {
    if (op) sec_invalid(p, site, op, "not allocated by hakmem");
    return false;
  }
  o->seg = seg;
  switch (seg->kind) {
    case HAK_SEG_TINY:
    case HAK_SEG_MID: {
      hak_slab_t *s = sec_slab(seg, p);
      uint32_t idx = s->block_size ? hak_slab_block_index(s, p) : UINT32_MAX;
      if (idx == UINT32_MAX) {
        if (op) sec_invalid(p, site, op, s->block_size ? "not the start of a block" : "in no block");
        return false;
      }
      size_t bs = s->block_size;
      long e = sec_record_get(p, bs, sec_word(p));
      if (e <= 0) {
        if (op && e == 0) sec_double(p, site, op, bs);
        else if (op) sec_bad_record(p, bs, site, op);
        return false;
      }
      o->slab = s, o->idx = idx, o->n = (size_t)e - 1, o->cap = bs - 8;
      return true;
    }
    case HAK_SEG_LARGE: {
      size_t pages;
      int st = hak_large_block(seg, p, &o->lreq, &pages);
      if (st == 1 && !(*o->lreq & SEC_LQ)) {
        o->n = *o->lreq, o->cap = (pages - 1) * HAK_PAGE;
        return true;
      }
      if (op && st) sec_double(p, site, op, st == 1 ? (pages - 1) * HAK_PAGE : 0);
      else if (op) sec_invalid(p, site, op, "not the start of a block");
      return false;
    }
    case HAK_SEG_BIG: {
      int st = hak_big_block(seg, p, &o->breq, &o->cap);
      if (st == 1) {
        o->n = *o->breq;
        return true;
      }
      if (op && st) sec_double(p, site, op, 0);
      else if (op) sec_invalid(p, site, op, "not the start of a block");
      return false;
    }
  }
  if (op) sec_invalid(p, site, op, "in no block");
  return false;
}

/* Is the canary of a live block intact (its overflow report is the caller's)? */
static bool sec_intact(const sec_blk_t *o, const uint8_t *p) {
  if (o->slab) return sec_head_ok8(p, o->n, o->slab->block_size, sec_word(p));
  if (!sec_head_ok(p, o->n, o->cap)) return false;
  return !o->breq || load8(p - 8) == sec_word(p - 8);
}

/* ---- allocation ------------------------------------------------------------- */

/* A block (of any tier) handed out for n bytes: its record and canary.
 * A Big block comes zeroed already if asked. */
static void sec_on_alloc(void *p, size_t n, bool zero) {
  hak_segment_t *seg = hak_seg_of(p);
  switch (seg->kind) {
    case HAK_SEG_TINY:
    case HAK_SEG_MID:
      sec_slab_alloced(sec_slab(seg, p), p, n);
      break;
    case HAK_SEG_LARGE: {
      uint32_t *req;
      size_t pages;
      if (hak_large_block(seg, p, &req, &pages) != 1) hak_sec_bad_link(NULL, p);
      *req = (uint32_t)n;
      sec_head_set(p, n, (pages - 1) * HAK_PAGE);
      if (sec_fill && !zero) memset(p, sec_fill, n);
      break;
    }
    default: {
      size_t cap, *req;
      if (hak_big_block(hak_segmap_lookup(p), p, &req, &cap) != 1) hak_sec_bad_link(NULL, p);
      *req = n;
      sec_head_set(p, n, cap);
      store8((uint8_t *)p - 8, sec_word((uint8_t *)p - 8));
      if (sec_fill && !zero) memset(p, sec_fill, n);
      return;
    }
  }
  if (zero) memset(p, 0, n);
}

/* From a slab of class c: the current slab's list, else the heap's slow path. */
static inline void *sec_pop(unsigned c, void *site, size_t n, bool zero) {
  hak_heap_t *h = hak_tls_heap;
  hak_slab_t *s = h->cur[c];
  hak_block_t *b = s->free;
  if (hak_likely(b != NULL)) {
    s->free = hak_link_get(s, b);
    s->used++;
    sec_slab_alloced(s, (uint8_t *)b, n);
    if (zero) memset(b, 0, n);
    return b;
  }
  b = hak_heap_alloc_class(h, c, site);
  if (b) sec_on_alloc(b, n, zero);
  return b;
}

void *hak_secure_alloc(size_t n, size_t align, bool zero, void *site) {
  if (align <= 16) align = 0;
  if (n <= HAK_MID_MAX - 8 && align <= HAK_MID_MAX) {
    /* 8 bytes more than asked: every block has its record and a canary. */
    unsigned c = hak_class_of(n + 8 > align ? n + 8 : align);
    if (align)
      while (hak_class_size(c) % align) c++;
    return sec_pop(c, site, n, zero);
  }
  if (n > HAK_MAX_REQUEST || align > HAK_MAX_REQUEST) {
    errno = ENOMEM;
    return NULL;
  }
  void *p = hak_alloc_large_or_big(n, align, zero, site, false);
  if (p) sec_on_alloc(p, n, zero);
  return p;
}

static hak_noinline void *sec_malloc_slow(size_t n, void *site) {
  hak_heap_t *h = hak_tls_heap;
  void *b = hak_heap_alloc_class(h, hak_class_of(n + 8), site);
  if (b) sec_on_alloc(b, n, false);
  return b;
}

void *hak_secure_malloc(size_t n, void *site) {
  hak_heap_t *h = hak_tls_heap;
  hak_slab_t *s;
  if (hak_likely(n <= HAK_TINY_MAX - 8)) s = h->direct[(n + 23) >> 4]; /* the class of n + 8 */
  else if (n <= HAK_MID_MAX - 8) s = h->cur[hak_class_of(n + 8)];
  else return hak_secure_alloc(n, 0, false, site);
  hak_block_t *b = s->free;
  if (hak_likely(b != NULL)) {
    s->free = hak_link_get(s, b);
    s->used++;
    sec_slab_alloced(s, (uint8_t *)b, n);
    return b;
  }
  return sec_malloc_slow(n, site);
}

/* ---- free ------------------------------------------------------------------- */

static hak_noinline void sec_free_other(void *p, void *site) {
  sec_blk_t o;
  if (!sec_find(p, site, "free", &o)) return;
  if (!sec_intact(&o, p)) sec_overflow(p, o.n, o.cap, site, "free");
  if (o.breq) {
    /* Patterned; big.c reuses the mapping only after a few more frees, and
     * checks the pattern then. */
    if (sec_zero) memset(p, 0, o.n);
    store8(p, sec_zero ? 0 : sec_word(p));
    store8((uint8_t *)p + 8, sec_zero ? 0 : sec_word(p));
    hak_big_free(o.seg, p);
    return;
  }
  /* Large: patterned, then quarantined. */
  if (sec_zero) memset(p, 0, o.cap);
  store8(p, sec_zero ? 0 : sec_word(p));
  store8((uint8_t *)p + 8, sec_zero ? 0 : sec_word(p));
  *o.lreq |= SEC_LQ;
  hak_heap_t *h = hak_tls_heap;
  if (h != &hak_heap_empty && sec_large_qlen) sec_quarantine_large(h, p, site);
  else sec_release(h, p);
}

void hak_secure_free(void *p, void *site) {
  uintptr_t a = (uintptr_t)p;
  if (hak_unlikely(hak_segmap_get(a) != 1)) {
    if (p) sec_free_other(p, site); /* Big (over-aligned) or not ours */
    return;
  }
  hak_segment_t *seg = (hak_segment_t *)(a & ~(uintptr_t)HAK_SEG_MASK);
  if (hak_unlikely(seg->kind != HAK_SEG_TINY && seg->kind != HAK_SEG_MID)) {
    sec_free_other(p, site);
    return;
  }
  hak_slab_t *s = sec_slab(seg, p);
  uint32_t idx = hak_slab_block_index(s, p);
  if (hak_unlikely(idx == UINT32_MAX || !s->block_size)) {
    sec_invalid(p, site, "free", s->block_size ? "not the start of a block" : "in no block");
    return;
  }
  uint8_t *b = p;
  size_t bs = s->block_size;
  uint64_t w = sec_word(b);
  uint64_t x = load8(b + bs - 8) ^ w; /* the record */
  size_t e = (size_t)(x >> 24);
  if (hak_unlikely((x & ~SEC_SIZE_BITS) || e - 1 > bs - 8)) {
    if (x == 0) sec_double(p, site, "free", bs);
    else sec_bad_record(p, bs, site, "free");
    return;
  }
  if (hak_unlikely(!sec_head_ok8(b, e - 1, bs, w))) sec_overflow(p, e - 1, bs, site, "free");
  if (hak_unlikely(!sec_before_ok(s, b)))
    sec_error(site, false, "heap underflow: the bytes before the %zu-byte block %p are overwritten (found on free)", bs,
              p);
  hak_heap_t *h = hak_tls_heap;
  sec_poison(b, bs, w);
  if (hak_likely(h != &hak_heap_empty && sec_qmask)) sec_quarantine(h, p, site);
  else sec_release_small(h, s, p);
}

void hak_sec_big_reused(void *old) {
  uint64_t f = sec_zero ? 0 : sec_word(old);
  if (load8(old) != f || load8((uint8_t *)old + 8) != f)
    sec_error(NULL, false, "write after free: the Big block %p was modified after its free (seen when its mapping was reused or purged)",
              old);
}

/* ---- realloc and usable size ---------------------------------------------- */

size_t hak_secure_usable(const void *p) {
  sec_blk_t o;
  return p && sec_find((void *)p, NULL, NULL, &o) ? o.n : 0;
}

void *hak_secure_realloc(void *p, size_t n, void *site) {
  if (!p) return hak_secure_alloc(n, 0, false, site);
  if (n == 0) { /* glibc: frees and returns NULL */
    hak_secure_free(p, site);
    return NULL;
  }
  sec_blk_t o;
  if (!sec_find(p, site, "realloc", &o)) {
    errno = EINVAL;
    return NULL;
  }
  if (!sec_intact(&o, p)) sec_overflow(p, o.n, o.cap, site, "realloc");
  if (n <= o.cap && n >= o.cap / 2) { /* fits, and not too wasteful: in place */
    if (o.slab) {
      sec_canary_set(p, n, o.slab->block_size, sec_word(p));
    } else {
      if (o.lreq) *o.lreq = (uint32_t)n;
      else *o.breq = n;
      sec_head_set(p, n, o.cap);
    }
    return p;
  }
  if (n > HAK_MAX_REQUEST) {
    errno = ENOMEM;
    return NULL;
  }
  /* A Large span grows in place when the pages after it are free. */
  if (o.lreq && n > o.cap && n < hak_policy()->big_threshold &&
      hak_large_grow(o.seg, p, n, hak_sites_on ? site : NULL)) {
    uint32_t *req;
    size_t pages;
    hak_large_block(o.seg, p, &req, &pages);
    *req = (uint32_t)n;
    sec_head_set(p, n, (pages - 1) * HAK_PAGE);
    return p;
  }
  /* Growing past a slab block: a quarter more room, so that buffers grown
   * step by step copy O(1) times per byte. */
  size_t want = n;
  size_t slack = n >> hak_policy()->realloc_slack_shift;
  if (n > o.n && n > HAK_MID_MAX && n + slack > n) want = n + slack;
  void *q = hak_secure_alloc(want, 0, false, site);
  if (!q) return NULL;
  if (want != n) {
    sec_blk_t r;
    sec_find(q, NULL, NULL, &r);
    if (r.slab) {
      sec_canary_set(q, n, r.slab->block_size, sec_word(q));
    } else {
      if (r.lreq) *r.lreq = (uint32_t)n;
      else *r.breq = n;
      sec_head_set(q, n, r.cap);
    }
  }
  memcpy(q, p, o.n < n ? o.n : n);
  hak_secure_free(p, site);
  return q;
}
