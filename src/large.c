/* The Large tier (64 KiB < size < big threshold): page-granular spans in
 * process-wide 4 MiB segments, with a per-class cache of freed spans in
 * front.  Large allocations are rare enough for one lock; what matters is
 * that they reuse memory instead of calling the kernel. */
#include <errno.h>
#include <string.h>

#include "check.h"
#include "internal.h"
#include "msg.h"
#include "policy.h"
#include "os.h"
#include "prof.h"
#include "site.h"
#include "learn/sites.h"

#define LPAGES ((unsigned)(HAK_SEG_SIZE >> HAK_PAGE_SHIFT)) /* 1024 */
#define LWORDS (LPAGES / 64)
#define LHEADER_PAGES 5u
#define LCLASSES 65
enum { PG_FREE = 0, PG_LIVE = 1, PG_CACHED = 2 };

typedef struct large_seg {
  hak_segment_t seg; /* common header: kind, slabs[0] for free()'s lookup */
  uint64_t used[LWORDS];  /* pages in a live or cached span */
  uint64_t dirty[LWORDS]; /* pages touched since they were last decommitted */
  uint64_t young[LWORDS]; /* free pages freed since the last purge tick */
  uint64_t guard[LWORDS]; /* the secure library: pages that are guards now (see guard_lay) */
  uint32_t free_pages;
  uint32_t no_run;        /* a search for this many pages (or more) failed since the last free */
  uint8_t placement;      /* 1: spans of long-lived sites only (per-site policy) */
  uint16_t key;           /* its entry in lkey (LKEY_MAX: none) */
  uint8_t huge;           /* its 2 MiB halves asked to be huge pages, one bit each */
  uint64_t purge_at;
  uint16_t span[LPAGES];  /* at a span's first page: its length in pages */
  uint8_t state[LPAGES];  /* at a span's first page: PG_LIVE or PG_CACHED */
  /* Call-site profile of live spans (when profiling is on). */
  uint16_t site[LPAGES];
  uint32_t born[LPAGES];   /* ms since start */
  uint32_t req[LPAGES];    /* bytes asked for */
  uint32_t weight[LPAGES]; /* 0: recorded exactly; else a Tiny/Mid sample's weight */
} large_seg_t;
_Static_assert(sizeof(large_seg_t) <= LHEADER_PAGES * HAK_PAGE, "large header too big");

/* A cached span keeps its list links in its own first bytes. */
typedef struct cached_span {
  struct cached_span *next, *prev;
  uint64_t time;
} cached_span_t;

static hak_lock_t large_lock = HAK_LOCK_INIT;
static large_seg_t *segs;
/* The search's index: the first LKEY_MAX segments of `segs`, in its order,
 * each with the longest run that may fit in it.  Headers 4 MiB apart share
 * cache sets, so walking them was a cache miss or two per segment at every
 * search (large-ws, 3.2M ops: a fifth of the time in the walk and
 * find_run); the index holds four segments to a cache line.  Segments past
 * LKEY_MAX (2 GiB of them) are walked through the list, from lkey_rest. */
#ifndef LKEY_MAX
#define LKEY_MAX 512 /* a build may set less: the list walk after it is then tested too */
#endif
typedef struct {
  large_seg_t *ls;
  uint32_t fit;  /* no search for more pages than this can succeed in it */
  uint8_t place; /* its placement */
} lkey_t;
hak_big_bss static lkey_t lkey[LKEY_MAX];
static unsigned lkey_n;
static large_seg_t *lkey_rest; /* the first segment not in lkey */
static size_t large_used_pages; /* pages in live or cached spans, all segments */
static cached_span_t *large_cache_first[LCLASSES], *large_cache_last[LCLASSES];
static size_t large_cache_bytes;
/* Per class: the controller's cap on cached spans (unlimited until it
 * runs), the spans cached now, and this window's hits and misses. */
#define LCAP_NONE 0xFFFFu
static uint16_t lc_cap[LCLASSES] = {[0 ... LCLASSES - 1] = LCAP_NONE};
static uint16_t lc_count[LCLASSES];
static uint32_t lc_hits[LCLASSES], lc_misses[LCLASSES];
static uint8_t lc_low[LCLASSES], lc_idle[LCLASSES]; /* hysteresis streaks */
static _Atomic size_t large_cache_bytes_pub; /* large_cache_bytes for readers without the lock */
static uint64_t large_next_purge;
/* Free pages may be resident: set when a span is freed, cleared when
 * hak_large_release finds none (read without the lock). */
static _Atomic bool large_idle;
/* Fresh small-object slabs since the tier last took pages from its
 * segments (hak_large_release). */
static _Atomic size_t large_quiet;
#define LARGE_QUIET_SLABS 16
/* Debug builds' walkers (under the lock), at the end of this file. */
static unsigned large_check_seg(const large_seg_t *ls);
static void large_check_all(void);

/* Every section under large_lock ends here, publishing the cache size. */
static void large_unlock(void) {
  atomic_store_explicit(&large_cache_bytes_pub, large_cache_bytes, memory_order_relaxed);
  hak_unlock(&large_lock);
}

static inline unsigned lclass(size_t pages) {
  if (pages <= 16) return (unsigned)pages;
  unsigned b = hak_bsr(pages - 1);
  return 17 + (b - 4) * 8 + (unsigned)(((pages - 1) >> (b - 3)) & 7);
}

static inline size_t lpages_round(size_t pages) {
  if (pages <= 16) return pages;
  unsigned b = hak_bsr(pages - 1);
  return (((pages - 1) >> (b - 3)) + 1) << (b - 3);
}

static inline bool bit_get(const uint64_t *m, unsigned i) { return (m[i >> 6] >> (i & 63)) & 1; }

/* Bits [i, i+n) of a page bitmap, a word at a time: spans run to
 * hundreds of pages, and a loop per bit was a third of a Large
 * allocation's and free's instructions (large-ws).  Shared with
 * segment.c (internal.h). */
static inline uint64_t bits_mask(unsigned i, unsigned end, unsigned w) {
  unsigned lo = i > w * 64 ? i - w * 64 : 0, hi = end < w * 64 + 64 ? end - w * 64 : 64;
  return (hi == 64 ? ~0ull : (1ull << hi) - 1) & (~0ull << lo);
}

hak_front void hak_bits_set(uint64_t *m, unsigned i, unsigned n, bool on) {
  if (!n) return;
  unsigned end = i + n;
  for (unsigned w = i >> 6; w <= (end - 1) >> 6; w++) {
    uint64_t k = bits_mask(i, end, w);
    m[w] = on ? m[w] | k : m[w] & ~k;
  }
}

hak_front unsigned hak_bits_count(const uint64_t *m, unsigned i, unsigned n) {
  if (!n) return 0;
  unsigned end = i + n, c = 0;
  for (unsigned w = i >> 6; w <= (end - 1) >> 6; w++)
    c += hak_popcount(m[w] & bits_mask(i, end, w));
  return c;
}

/* First page >= i whose bit in m equals `v` (LPAGES if none). */
static unsigned next_bit(const uint64_t *m, unsigned i, bool v) {
  while (i < LPAGES) {
    uint64_t w = m[i >> 6];
    if (!v) w = ~w;
    w &= ~0ull << (i & 63);
    if (w) return (i & ~63u) + (unsigned)__builtin_ctzll(w);
    i = (i & ~63u) + 64;
  }
  return LPAGES;
}

/* First page >= i whose used bit equals `v` (LPAGES if none). */
static unsigned next_with(const large_seg_t *ls, unsigned i, bool v) { return next_bit(ls->used, i, v); }

/* One past the last used page before i (0 if none; the header's pages are
 * used, so in practice >= LHEADER_PAGES). */
static unsigned prev_used_end(const large_seg_t *ls, unsigned i) {
  while (i > 0) {
    uint64_t w = ls->used[(i - 1) >> 6];
    unsigned b = (i - 1) & 63;
    w &= b == 63 ? ~0ull : (1ull << (b + 1)) - 1;
    if (w) return ((i - 1) & ~63u) + 64 - (unsigned)__builtin_clzll(w);
    i = (i - 1) & ~63u;
  }
  return 0;
}

/* The longest run a search may find in the segment. */
static inline uint32_t lkey_fit(const large_seg_t *ls) {
  return ls->free_pages < ls->no_run - 1 ? ls->free_pages : ls->no_run - 1;
}

/* A segment's entry made current (after its free pages, bound or placement changed). */
static inline void lkey_sync(const large_seg_t *ls) {
  if (ls->key >= LKEY_MAX) return;
  lkey_t *e = &lkey[ls->key];
  e->fit = lkey_fit(ls);
  e->place = ls->placement;
}

/* The segment as the index's next entry (there is room, and no segment
 * before it in the list is left out). */
static void lkey_add(large_seg_t *ls) {
  ls->key = (uint16_t)lkey_n;
  lkey[lkey_n++].ls = ls;
  lkey_sync(ls);
}

/* The index built again from the list: after a segment left it. */
static void lkey_rebuild(void) {
  lkey_n = 0;
  large_seg_t *ls = segs;
  for (; ls && lkey_n < LKEY_MAX; ls = (large_seg_t *)ls->seg.next) lkey_add(ls);
  lkey_rest = ls;
  for (; ls; ls = (large_seg_t *)ls->seg.next) ls->key = LKEY_MAX;
}

/* First fit; a segment remembers the smallest run that was not found in
 * it, so full segments are skipped without scanning until a free. */
hak_front static unsigned find_run(large_seg_t *ls, unsigned n) {
  if (ls->free_pages < n || n >= ls->no_run) return 0;
  unsigned i = next_with(ls, LHEADER_PAGES, false);
  while (i + n <= LPAGES) {
    unsigned j = next_with(ls, i, true);
    if (j - i >= n) return i;
    i = next_with(ls, j, false);
  }
  ls->no_run = n;
  lkey_sync(ls);
  return 0;
}

/* The secure library's guard pages: a span's last page is a guard
 * (hak_os_protect).  A freed span leaves its guard in place, marked; the
 * next span laid over the page lifts the marked ones inside it and lays its
 * own last page unless that one is marked already.  A span taken again
 * where one of its size was (a buffer freed and allocated over and over, a
 * cached span) so makes no system call at all.  Lifted at every free and
 * laid at every allocation, the guards cost two calls per Large block
 * (with mprotect, which split and merged the mapping at each,
 * phase-change spent 56 % of the secure library's time in the kernel). */
static void guard_lay(large_seg_t *ls, unsigned i, unsigned n) {
  unsigned g = i + n - 1;
  for (unsigned k = next_bit(ls->guard, i, true); k < g; k = next_bit(ls->guard, k, true)) {
    unsigned j = next_bit(ls->guard, k, false);
    if (j > g) j = g;
    hak_os_protect((uint8_t *)ls + (size_t)k * HAK_PAGE, (size_t)(j - k) * HAK_PAGE, false);
    hak_bits_set(ls->guard, k, j - k, false);
  }
  if (!bit_get(ls->guard, g) && hak_os_protect((uint8_t *)ls + (size_t)g * HAK_PAGE, HAK_PAGE, true))
    hak_bits_set(ls->guard, g, 1, true);
}

/* Huge pages for Large spans.  A page fault costs about the same for 4 KiB
 * as for 2 MiB (on this project's test machines, VMs: 15-20 us against
 * 100-300 us), and Large spans are written whole, so a half-segment full of
 * them is best one huge page.  But a few spans alone in a half would each
 * hold 2 MiB, so huge pages start once the tier holds LARGE_HUGE_MIN of
 * spans (a partly used half is then at most 6 % of it; at 8 MiB, mstress
 * held 1.4 x its peak RSS), or, in a program whose memory is mostly Large
 * spans, LARGE_HUGE_DENSE that are at least half of all it has committed:
 * its halves fill with spans (site-frag 10.7k faults against 2.2k, large-ws
 * 11.5k against 3.9k, the same peak RSS), where mstress's few MiB among
 * small blocks stay out.  Only on a half that is clean: a new segment
 * before its header is written, or a half whose pages all went back (advice
 * cannot merge 4 KiB pages already there).  A purge that leaves part of a
 * half resident takes the request back, as the Big tier does (big.c):
 * khugepaged would fill the half in again to 2 MiB. */
#define LARGE_HUGE_MIN (((size_t)32 << 20) >> HAK_PAGE_SHIFT)
#define LARGE_HUGE_DENSE (((size_t)4 << 20) >> HAK_PAGE_SHIFT)
#define LHALF_PAGES (LPAGES / 2)

static inline bool large_huge_now(const hak_policy_t *pol) {
  if (hak_secure || !pol->thp || large_used_pages < LARGE_HUGE_DENSE || !hak_os_huge_pays()) return false;
  return large_used_pages >= LARGE_HUGE_MIN ||
         2 * (large_used_pages << HAK_PAGE_SHIFT) >= atomic_load_explicit(&hak_os.committed, memory_order_relaxed);
}

/* on: asks for huge pages on the clean halves that pages [i, i+n) touch;
 * off (those pages went back): takes the request back from those halves. */
static void halves_ask(large_seg_t *ls, unsigned i, unsigned n, bool on) {
  for (unsigned r = i / LHALF_PAGES; r <= (i + n - 1) / LHALF_PAGES; r++) {
    if (((ls->huge >> r) & 1) == on || (on && hak_bits_count(ls->dirty, r * LHALF_PAGES, LHALF_PAGES))) continue;
    hak_os_hugepage((uint8_t *)ls + (size_t)r * LHALF_PAGES * HAK_PAGE, LHALF_PAGES * HAK_PAGE, on);
    ls->huge ^= (uint8_t)(1u << r);
  }
}

/* An empty small-object segment from the cache (its resident pages become
 * dirty free pages here: reused without a fault, purged on the delay), or
 * a fresh mapping.  Called under the lock: the lock order is the Large
 * lock, then the segment cache's. */
static large_seg_t *large_seg_new(const hak_policy_t *pol) {
  uint64_t res[HAK_SEG_PAGE_WORDS];
  large_seg_t *ls = (large_seg_t *)hak_segment_cache_take(res);
  if (ls) {
    memset(ls, 0, sizeof *ls);
    unsigned was = hak_bits_count(res, 0, LPAGES);
    hak_bits_set(res, 0, LHEADER_PAGES, false);
    unsigned hdr = hak_bits_count(res, LHEADER_PAGES, LPAGES - LHEADER_PAGES);
    memcpy(ls->dirty, res, sizeof ls->dirty);
    memcpy(ls->young, res, sizeof ls->young); /* idle from now */
    hak_os_commit_account(((ptrdiff_t)(LHEADER_PAGES + hdr) - (ptrdiff_t)was) * (ptrdiff_t)HAK_PAGE);
    if (hdr) {
      uint64_t at = hak_os_now_ms() + hak_purge_tick_ms();
      ls->purge_at = at;
      if (!large_next_purge || at < large_next_purge) large_next_purge = at;
      atomic_store_explicit(&large_idle, true, memory_order_relaxed);
    }
  } else {
    ls = hak_os_map_aligned(HAK_SEG_SIZE, HAK_SEG_SIZE);
    if (!ls) return NULL;
    /* Before the header is written: its first fault then maps a huge page. */
    ls->huge = large_huge_now(pol) && hak_os_hugepage_fresh(ls, HAK_SEG_SIZE) ? 3 : 0;
    hak_os_commit_account((ptrdiff_t)(LHEADER_PAGES * HAK_PAGE));
  }
  ls->seg.kind = HAK_SEG_LARGE;
  ls->seg.slab_shift = HAK_SEG_SHIFT; /* free() lands on slabs[0]: no owner */
  ls->seg.map_size = HAK_SEG_SIZE;
  hak_bits_set(ls->used, 0, LHEADER_PAGES, true);
  ls->free_pages = LPAGES - LHEADER_PAGES;
  ls->no_run = LPAGES + 1;
  /* Appended: the search is first fit in segment age order, so the oldest
   * segments fill up with what lives long and the newest ones keep the
   * long free runs (newest first left half as much again resident on
   * site-frag: 171 MiB, not 116). */
  ls->placement = 0;
  large_seg_t **pp = &segs;
  while (*pp) pp = (large_seg_t **)&(*pp)->seg.next;
  ls->seg.next = NULL;
  *pp = ls;
  ls->key = LKEY_MAX;
  if (!lkey_rest) {
    if (lkey_n < LKEY_MAX) lkey_add(ls);
    else lkey_rest = ls;
  }
  hak_segmap_set(ls, HAK_SEG_SIZE, true);
  return ls;
}

static void span_mark(large_seg_t *ls, unsigned i, unsigned n, bool live) {
  hak_bits_set(ls->used, i, n, live);
  if (live) {
    ls->free_pages -= n;
    large_used_pages += n;
  } else {
    ls->free_pages += n;
    large_used_pages -= n;
    /* The free run these pages join is the only one that grew: a search
     * that failed before still fails for anything longer than it.  (Reset
     * at every free, a churning tier's full segments were scanned run by
     * run again at each allocation: find_run was 16 % of large-ws.) */
    if (ls->no_run <= LPAGES) {
      unsigned run = next_with(ls, i + n, true) - prev_used_end(ls, i);
      if (run >= ls->no_run) ls->no_run = run + 1;
    }
  }
  lkey_sync(ls);
}

/* Returns span pages [i, i+n) to the segment; they stay dirty until purged
 * (young: freed just now, so they wait a tick more; see seg_purge_tick in
 * segment.c). */
static void span_release(large_seg_t *ls, unsigned i, unsigned n, uint64_t now, uint64_t tick, bool young) {
  span_mark(ls, i, n, false); /* its guard page stays one (guard_lay) */
  ls->span[i] = 0;
  ls->state[i] = PG_FREE;
  hak_bits_set(ls->young, i, n, young);
  atomic_store_explicit(&large_idle, true, memory_order_relaxed);
  if (!ls->purge_at) ls->purge_at = now + tick;
  if (!large_next_purge || ls->purge_at < large_next_purge) large_next_purge = ls->purge_at;
}

static void large_cache_remove(unsigned c, cached_span_t *cs) {
  lc_count[c]--;
  if (cs->prev) cs->prev->next = cs->next;
  else large_cache_first[c] = cs->next;
  if (cs->next) cs->next->prev = cs->prev;
  else large_cache_last[c] = cs->prev;
}

/* The pages set in m (free and dirty), a run per call, up to `budget`
 * pages, go back to the OS and are clean.  Returns the pages decommitted.
 * (A young bit left on a clean page means nothing: young is only read
 * with dirty.) */
static size_t decommit_runs(large_seg_t *ls, const uint64_t *m, size_t budget) {
  size_t done = 0;
  for (unsigned i = next_bit(m, 0, true); i < LPAGES && done < budget;) {
    unsigned j = next_bit(m, i, false);
    if (j - i > budget - done) j = i + (unsigned)(budget - done);
    hak_os_decommit((uint8_t *)ls + (size_t)i * HAK_PAGE, (size_t)(j - i) * HAK_PAGE);
    halves_ask(ls, i, j - i, false);
    hak_bits_set(ls->dirty, i, j - i, false);
    done += j - i;
    i = next_bit(m, j, true);
  }
  return done;
}

/* A purge tick: free dirty pages go back to the OS, but for the young
 * ones (all: force), which become old and wait for the next tick. */
static void seg_decommit_free(large_seg_t *ls, uint64_t now, uint64_t tick, bool all) {
  uint64_t due[LWORDS];
  bool left = false;
  for (unsigned w = 0; w < LWORDS; w++) {
    uint64_t idle = ~ls->used[w] & ls->dirty[w], wait = all ? 0 : ls->young[w];
    due[w] = idle & ~wait;
    left |= (idle & wait) != 0;
  }
  decommit_runs(ls, due, LPAGES);
  memset(ls->young, 0, sizeof ls->young);
  ls->purge_at = left ? now + tick : 0;
}

/* Under the lock: every cached span goes back to its segment (still
 * resident, so a request that no free run fits reuses those pages, joined
 * with their free neighbours, before a new segment is mapped). */
static void large_cache_flush(uint64_t now, uint64_t delay) {
  for (unsigned c = 0; c < LCLASSES; c++)
    while (large_cache_last[c]) {
      cached_span_t *cs = large_cache_last[c];
      large_cache_remove(c, cs);
      large_seg_t *ls = (large_seg_t *)hak_seg_of(cs);
      unsigned i = (unsigned)(((uintptr_t)cs - (uintptr_t)ls) >> HAK_PAGE_SHIFT);
      large_cache_bytes -= (size_t)ls->span[i] * HAK_PAGE;
      span_release(ls, i, ls->span[i], now, delay / 2, delay != 0);
    }
}

/* Under the lock.  Empty (nothing in use but its header), and not the
 * tier's only segment: one the tier can spare, to unmap after its purge
 * or to give to the small objects (hak_large_take_empty), whose growth
 * therefore leaves its pages resident (hak_large_release). */
static inline bool large_seg_empty(const large_seg_t *ls) { return ls->free_pages == LPAGES - LHEADER_PAGES; }
static inline bool large_seg_spare(const large_seg_t *ls) {
  return large_seg_empty(ls) && (ls != segs || ls->seg.next);
}

/* Under the lock: old cache entries go back to their segments, free dirty
 * pages go back to the OS, empty segments (but one) are unmapped. */
static void large_purge(uint64_t now, bool force, uint64_t delay) {
  for (unsigned c = 0; c < LCLASSES; c++) {
    /* Oldest at the tail. */
    while (large_cache_last[c] && (force || large_cache_last[c]->time + delay <= now)) {
      cached_span_t *cs = large_cache_last[c];
      large_cache_remove(c, cs);
      large_seg_t *ls = (large_seg_t *)hak_seg_of(cs);
      unsigned i = (unsigned)(((uintptr_t)cs - (uintptr_t)ls) >> HAK_PAGE_SHIFT);
      large_cache_bytes -= (size_t)ls->span[i] * HAK_PAGE;
      span_release(ls, i, ls->span[i], now, delay / 2, false); /* idle for the delay already */
    }
  }
  large_next_purge = 0;
  bool unmapped = false;
  large_seg_t **pp = &segs;
  while (*pp) {
    large_seg_t *ls = *pp;
    if (ls->purge_at && (force || ls->purge_at <= now)) seg_decommit_free(ls, now, delay / 2, force || !delay);
    /* Empty and clean (its pages idle long enough to be purged), and not
     * the last segment: unmapped. */
    if (!ls->purge_at && (force ? large_seg_empty(ls) : large_seg_spare(ls))) {
      *pp = (large_seg_t *)ls->seg.next;
      hak_segmap_set(ls, HAK_SEG_SIZE, false);
      hak_os_commit_account(-(ptrdiff_t)(LHEADER_PAGES * HAK_PAGE));
      hak_os_unmap(ls, HAK_SEG_SIZE);
      unmapped = true;
      continue;
    }
    if (ls->purge_at && (!large_next_purge || ls->purge_at < large_next_purge)) large_next_purge = ls->purge_at;
    pp = (large_seg_t **)&ls->seg.next;
  }
  if (unmapped) lkey_rebuild();
  for (unsigned c = 0; c < LCLASSES; c++)
    if (large_cache_last[c] && (!large_next_purge || large_cache_last[c]->time + delay < large_next_purge))
      large_next_purge = large_cache_last[c]->time + delay;
  if (hak_debug) large_check_all();
}

/* A span of `bytes` handed out (alloc) or freed.  Large statistics live in
 * the allocating/freeing thread's heap (HAK_HEAP_STAT). */
hak_inline void lstat_span(hak_heap_t *h, size_t bytes, bool alloc) {
  if (alloc) HAK_HEAP_STAT(h, large_allocs, 1);
  else HAK_HEAP_STAT(h, large_frees, 1);
  HAK_HEAP_STAT(h, large_live, alloc ? bytes : 0 - bytes);
}

/* h: the calling thread's heap (hak_tls_heap, read once by the caller);
 * site: the call site to record in the profile, or NULL (not profiled). */
hak_inline void note_alloc(hak_heap_t *h, large_seg_t *ls, unsigned i, size_t n, void *site, size_t weight) {
  /* The header entries belong to this span alone until it is freed. */
  ls->site[i] = HAK_SITE_UNTRACKED;
  if (site) {
    ls->req[i] = (uint32_t)n;
    ls->weight[i] = (uint32_t)(weight > UINT32_MAX ? UINT32_MAX : weight);
    ls->born[i] = hak_site_clock();
    ls->site[i] = hak_site_alloc(site, n, weight, false);
  }
  lstat_span(h, (size_t)ls->span[i] * HAK_PAGE, true);
  HAK_HEAP_STAT(h, lb_size[hak_lb_bin(n)], 1);
}

static inline unsigned span_index(large_seg_t *ls, const void *p) {
  return (unsigned)(((uintptr_t)p - (uintptr_t)ls) >> HAK_PAGE_SHIFT);
}

/* Pages a request takes, and pages more to align it.  The secure library
 * adds a guard page, the span's last (PROT_NONE while the span is not free). */
static inline size_t span_pages(size_t n) {
  return n ? lpages_round((hak_align_up(n, HAK_PAGE) >> HAK_PAGE_SHIFT) + hak_secure) : (size_t)1 + hak_secure;
}
static inline size_t align_pages(size_t align) {
  return align > HAK_PAGE ? (align >> HAK_PAGE_SHIFT) - 1 : 0;
}

bool hak_large_fits(size_t n, size_t align) {
  return span_pages(n) + align_pages(align) <= LPAGES - LHEADER_PAGES;
}

/* lcache: the thread's own little cache of freed spans (policy: 4 spans of
 * up to 1 MiB): the common malloc/free of a Large buffer then takes no
 * lock at all. */
/* Pages of the spans of class c (the largest size in the class). */
static inline size_t lclass_pages(unsigned c) {
  if (c <= 16) return c;
  unsigned b = (c - 17) / 8 + 4, i = (c - 17) % 8;
  return (size_t)(i + 9) << (b - 3);
}

/* The cached span for `pages` may be up to W_MAX (policy, in eighths)
 * times larger: a little waste buys a reuse instead of a fresh span. */
/* A span whose size the learner's big threshold sends to the Big tier
 * now: only while that threshold is below the configured one (a trial, or
 * a move).  Under the configured threshold a Large span may be as large as
 * it (a request just under 2 MiB rounds up to 2 MiB) and is reused. */
static inline bool span_now_big(const hak_policy_t *pol, size_t bytes) {
  return bytes >= pol->big_threshold && pol->big_threshold < hak_policy_from_options()->big_threshold;
}

static inline size_t wmax_pages(const hak_policy_t *pol, size_t pages) {
  return pages * pol->w_max_eighths / 8;
}

/* The thread's most recently freed span with pages..max_pages pages (the
 * warmest in cache; W_MAX bounds the waste of not taking the smallest). */
static void *lcache_take(hak_heap_t *h, size_t pages, size_t max_pages) {
  for (unsigned k = h->lcache_n; k-- > 0;) {
    size_t have = h->lcache_pages[k];
    if (have < pages || have > max_pages) continue;
    void *p = h->lcache[k];
    unsigned last = --h->lcache_n;
    h->lcache[k] = h->lcache[last];
    h->lcache_pages[k] = h->lcache_pages[last];
    return p;
  }
  return NULL;
}

/* A span from the thread's cache for n bytes, handed out: live, counted,
 * its site recorded if given; NULL if none fits. */
hak_inline void *lcache_hand_out(hak_heap_t *h, size_t n, size_t pages, size_t max_pages, void *site,
                                 size_t weight) {
  void *p = lcache_take(h, pages, max_pages);
  if (!p) return NULL;
  large_seg_t *ls = (large_seg_t *)hak_seg_of(p);
  unsigned i = span_index(ls, p);
  ls->state[i] = PG_LIVE;
  HAK_HEAP_STAT(h, large_cache_hits, 1);
  note_alloc(h, ls, i, n, site, weight);
  return p;
}

hak_front void *hak_large_malloc(size_t n, void *site) {
  /* The common case first: a Large buffer this thread freed comes back
   * from its own cache, when its site is not recorded and the site's
   * decision (a long-lived one's spans avoid the caches) allows it.  It
   * calls nothing, so it saves no registers; the full path costs three
   * times as much. */
  hak_heap_t *h = hak_tls_heap;
  if (h->lcache_n && !hak_sites_on && (!hak_sites_learning || h->site_skip)) {
    const hak_policy_t *pol = hak_policy();
    if (n < pol->big_threshold && !(hak_site_lookup(pol->sites, site) & HAK_SITE_LONG)) {
      size_t pages = span_pages(n);
      void *p = lcache_hand_out(h, n, pages, wmax_pages(pol, pages), NULL, 0);
      if (p) {
        if (hak_sites_learning) h->site_skip--; /* a block learning's sample skips (alloc.c) */
        return p;
      }
    }
  }
  return hak_malloc_large_full(n, site);
}

hak_front void *hak_large_alloc(size_t n, size_t align, bool zero, void *site, size_t weight, unsigned how) {
  size_t pages = span_pages(n);
  size_t extra = align_pages(align);
  if (!n) n = 1;
  hak_heap_t *h = hak_heap_get();
  const hak_policy_t *pol = hak_policy();
  size_t max_pages = wmax_pages(pol, pages);
  /* A long-lived site's span goes to segments of long-lived spans only,
   * and not through the caches (whose spans may lie anywhere): short-lived
   * spans then free whole segments when they die, instead of leaving holes
   * around long-lived ones. */
  uint8_t place = (how & HAK_SITE_LONG) ? 1 : 0;
  if (!extra && !place && h != &hak_heap_empty) {
    void *p = lcache_hand_out(h, n, pages, max_pages, site, weight);
    if (p) {
      if (zero) memset(p, 0, n);
      return p;
    }
  }
  unsigned c = lclass(pages);
  void *p = NULL;
  large_seg_t *pl = NULL;
  unsigned pi = 0;
  bool fresh = false, hit = false;
  uint64_t t0 = hak_prof_begin();
  hak_lock(&large_lock);
  if (atomic_load_explicit(&large_quiet, memory_order_relaxed))
    atomic_store_explicit(&large_quiet, 0, memory_order_relaxed); /* in use: its idle pages are wanted here */
  unsigned hc = c;
  bool cacheable = !extra && !place;
  if (cacheable)
    while (!large_cache_first[hc] && hc + 1 < LCLASSES && lclass_pages(hc + 1) <= max_pages) hc++;
  if (cacheable) {
    if (large_cache_first[hc]) lc_hits[c]++;
    else lc_misses[c]++;
  }
  if (cacheable && large_cache_first[hc]) {
    cached_span_t *cs = large_cache_first[hc];
    large_cache_remove(hc, cs);
    large_seg_t *ls = (large_seg_t *)hak_seg_of(cs);
    unsigned i = span_index(ls, cs);
    ls->state[i] = PG_LIVE;
    large_cache_bytes -= (size_t)ls->span[i] * HAK_PAGE;
    pages = ls->span[i];
    p = cs;
    pl = ls, pi = i;
    hit = true;
  } else {
    large_seg_t *ls;
    unsigned i = 0;
    bool asked = false;
    unsigned want = (unsigned)(pages + extra);
  search:
    for (int pass = 0;; pass++) {
      ls = NULL;
      for (unsigned k = 0; k < lkey_n; k++)
        if (lkey[k].fit >= want && lkey[k].place == place && (i = find_run(lkey[k].ls, want)) != 0) {
          ls = lkey[k].ls;
          break;
        }
      if (!ls)
        for (ls = lkey_rest; ls; ls = (large_seg_t *)ls->seg.next)
          if (ls->placement == place && (i = find_run(ls, want)) != 0) break;
      if (ls || pass || !large_cache_bytes) break;
      large_cache_flush(hak_os_now_ms(), pol->purge_delay_ms); /* then search once more */
    }
    if (!ls && !asked) {
      /* Segments our small objects left to their empty current slabs, to
       * the cache first (the heap's lock comes before ours). */
      asked = true;
      large_unlock();
      bool gave = hak_heap_release_idle(h);
      hak_lock(&large_lock);
      if (gave) goto search;
    }
    if (!ls && (ls = large_seg_new(pol)) != NULL) {
      ls->placement = place;
      lkey_sync(ls);
      i = find_run(ls, want);
    }
    if (ls) {
      unsigned total = want;
      if (extra) {
        /* Keep the aligned part; the pages around it stay free. */
        uintptr_t a = hak_align_up((uintptr_t)ls + (size_t)i * HAK_PAGE, align);
        i = (unsigned)((a - (uintptr_t)ls) >> HAK_PAGE_SHIFT);
        total = (unsigned)pages;
      }
      if (large_huge_now(pol)) halves_ask(ls, i, total, true);
      span_mark(ls, i, total, true);
      unsigned dirty = hak_bits_count(ls->dirty, i, total);
      fresh = dirty == 0;
      hak_os_commit_account((ptrdiff_t)((size_t)(total - dirty) * HAK_PAGE));
      hak_bits_set(ls->dirty, i, total, true);
      ls->span[i] = (uint16_t)total;
      ls->state[i] = PG_LIVE;
      p = (uint8_t *)ls + (size_t)i * HAK_PAGE;
      if (hak_secure) guard_lay(ls, i, total);
      pl = ls, pi = i;
    }
  }
  if (hak_debug && pl) large_check_seg(pl);
  large_unlock();
  if (!p) {
    errno = ENOMEM;
    return NULL;
  }
  if (hit) HAK_HEAP_STAT(h, large_cache_hits, 1);
  else HAK_HEAP_STAT(h, large_cache_misses, 1);
  note_alloc(h, pl, pi, n, site, weight);
  hak_prof_end(HAK_PROF_LARGE_ALLOC, t0);
  if (zero && !fresh) memset(p, 0, n);
  return p;
}

static bool span_check(large_seg_t *ls, const void *p, unsigned *out) {
  uintptr_t off = (uintptr_t)p - (uintptr_t)ls;
  if (off & (HAK_PAGE - 1)) return false;
  unsigned i = (unsigned)(off >> HAK_PAGE_SHIFT);
  if (i < LHEADER_PAGES || ls->state[i] != PG_LIVE) return false;
  *out = i;
  return true;
}

/* Called without the lock: validates, then caches (if `cache`) or frees
 * under it. */
static void free_locked(large_seg_t *ls, void *p, bool cache) {
  const hak_policy_t *pol = hak_policy();
  uint64_t now = hak_os_now_ms(), delay = pol->purge_delay_ms;
  unsigned i;
  uint64_t t0 = hak_prof_begin();
  hak_lock(&large_lock);
  if (!span_check(ls, p, &i)) {
    bool cached = ((uintptr_t)p & (HAK_PAGE - 1)) == 0 && ls->state[span_index(ls, p)] == PG_CACHED;
    large_unlock();
    hak_report_misuse(cached ? "double free" : "invalid free", p, cached);
    return;
  }
  size_t bytes = (size_t)ls->span[i] * HAK_PAGE;
  unsigned c = lclass(ls->span[i]);
  /* A long-lived site's span goes back to its segment, not the cache:
   * the cache would hand it to anyone. */
  if (cache && ls->span[i] == lpages_round(ls->span[i]) && large_cache_bytes + bytes <= pol->large_cache &&
      lc_count[c] < lc_cap[c] && !ls->placement) {
    lc_count[c]++;
    cached_span_t *cs = p;
    cs->time = now;
    cs->prev = NULL;
    cs->next = large_cache_first[c];
    if (large_cache_first[c]) large_cache_first[c]->prev = cs;
    else large_cache_last[c] = cs;
    large_cache_first[c] = cs;
    ls->state[i] = PG_CACHED;
    large_cache_bytes += bytes;
    if (!large_next_purge || now + delay < large_next_purge) large_next_purge = now + delay;
  } else if (span_now_big(pol, bytes)) {
    /* Requests of its size go to the Big tier now, which maps them afresh,
     * so its pages go back at once rather than after the purge delay:
     * otherwise each block replaced meanwhile was resident twice
     * (large-ws under learning: a 16 ms trial of 1 MiB took the peak
     * from 147 to 198 MiB). */
    unsigned n = ls->span[i];
    span_release(ls, i, n, now, delay / 2, false);
    hak_os_decommit((uint8_t *)ls + (size_t)i * HAK_PAGE, bytes);
    halves_ask(ls, i, n, false);
    hak_bits_set(ls->dirty, i, n, false);
  } else {
    span_release(ls, i, ls->span[i], now, delay / 2, delay != 0);
  }
  if (hak_debug) large_check_seg(ls); /* before a purge may unmap it */
  if (large_next_purge && now >= large_next_purge) large_purge(now, false, delay);
  large_unlock();
  hak_prof_end(HAK_PROF_LARGE_FREE, t0);
}

/* A checked span's free, its site (if any) recorded: counted, then kept
 * in the thread's cache or given back to the shared tier (with `cache`
 * false: straight to its segment's bitmap). */
hak_inline void large_free_span(hak_heap_t *h, large_seg_t *ls, unsigned i, void *p, bool cache) {
  unsigned pages = ls->span[i];
  lstat_span(h, (size_t)pages * HAK_PAGE, false);
  const hak_policy_t *pol = hak_policy();
  if (cache && h != &hak_heap_empty && h->lcache_n < pol->lcache_slots && pages <= pol->lcache_max_pages &&
      pages == lpages_round(pages) && !ls->placement && !span_now_big(pol, (size_t)pages * HAK_PAGE)) {
    ls->state[i] = PG_CACHED;
    h->lcache[h->lcache_n] = p;
    h->lcache_pages[h->lcache_n] = (uint16_t)pages;
    h->lcache_n++;
    return;
  }
  free_locked(ls, p, cache);
}

/* Out of line, so that the common free, which records nothing, calls
 * nothing and saves no registers. */
static hak_noinline void large_free_recorded(large_seg_t *ls, unsigned i, void *p, bool cache) {
  hak_site_free(ls->site[i], ls->req[i], ls->weight[i], ls->born[i]);
  large_free_span(hak_tls_heap, ls, i, p, cache);
}

hak_inline void large_free(hak_segment_t *seg, void *p, bool cache) {
  large_seg_t *ls = (large_seg_t *)seg;
  unsigned i;
  if (!span_check(ls, p, &i)) {
    free_locked(ls, p, cache); /* reports it */
    return;
  }
  if (hak_unlikely(ls->site[i] != HAK_SITE_UNTRACKED)) {
    large_free_recorded(ls, i, p, cache);
    return;
  }
  large_free_span(hak_tls_heap, ls, i, p, cache);
}

hak_front void hak_large_free(hak_segment_t *seg, void *p) { large_free(seg, p, true); }

/* The span realloc moved a growing block out of: its pages go straight
 * back to the bitmap, past both caches.  A neighbour that grows next then
 * takes them in place, where a cached span would stand in its way, and the
 * class the block outgrew is not asked for soon (realloc-grow: 12 % fewer
 * instructions, mostly copying; better than no Large cache at all). */
void hak_large_free_moved(hak_segment_t *seg, void *p) { large_free(seg, p, false); }

/* Thread exit and trim: the thread's cached spans go back to the shared tier. */
hak_front void hak_large_flush_thread(hak_heap_t *h) {
  while (h->lcache_n) {
    void *p = h->lcache[--h->lcache_n];
    large_seg_t *ls = (large_seg_t *)hak_seg_of(p);
    ls->state[span_index(ls, p)] = PG_LIVE;
    free_locked(ls, p, true);
  }
}

/* Grows a live span in place when the pages after it are free: realloc
 * loops then move no bytes at all. */
bool hak_large_grow(hak_segment_t *seg, void *p, size_t n, void *site) {
  large_seg_t *ls = (large_seg_t *)seg;
  size_t want = span_pages(n);
  unsigned i;
  bool ok = false;
  hak_lock(&large_lock);
  if (span_check(ls, p, &i) && i + want <= LPAGES) {
    unsigned have = ls->span[i], add = (unsigned)want - have;
    if (want > have && next_with(ls, i + have, true) >= i + want) {
      if (large_huge_now(hak_policy())) halves_ask(ls, i + have, add, true);
      span_mark(ls, i + have, add, true);
      if (hak_secure) guard_lay(ls, i, (unsigned)want); /* the guard moves to the new last page */
      unsigned dirty = hak_bits_count(ls->dirty, i + have, add);
      hak_os_commit_account((ptrdiff_t)((size_t)(add - dirty) * HAK_PAGE));
      hak_bits_set(ls->dirty, i + have, add, true);
      ls->span[i] = (uint16_t)want;
      if (site && !ls->weight[i] && ls->site[i] != HAK_SITE_UNTRACKED) {
        /* Seen by the profile as a free and a new allocation, as realloc is. */
        hak_site_free(ls->site[i], ls->req[i], 0, ls->born[i]);
        ls->req[i] = (uint32_t)n;
        ls->site[i] = hak_site_alloc(site, n, 0, false);
      }
      HAK_HEAP_STAT(hak_tls_heap, large_live, (size_t)add * HAK_PAGE);
      ok = true;
    }
  }
  if (hak_debug && ok) large_check_seg(ls);
  large_unlock();
  return ok;
}

size_t hak_large_usable(hak_segment_t *seg, const void *p) {
  large_seg_t *ls = (large_seg_t *)seg;
  unsigned i;
  /* Reading a live span's header needs no lock: only its owner frees it. */
  if (!span_check(ls, p, &i)) return 0;
  return (size_t)ls->span[i] * HAK_PAGE;
}

/* The secure library's view of a block: 1 if p starts a live span (*req:
 * its requested-size slot, *pages: its length), 2 if it starts a freed
 * span still cached, 0 otherwise.  No lock: only a live span's owner
 * frees it. */
int hak_large_block(hak_segment_t *seg, const void *p, uint32_t **req, size_t *pages) {
  large_seg_t *ls = (large_seg_t *)seg;
  unsigned i;
  if (span_check(ls, p, &i)) {
    *req = &ls->req[i];
    *pages = ls->span[i];
    return 1;
  }
  uintptr_t off = (uintptr_t)p - (uintptr_t)ls;
  return !(off & (HAK_PAGE - 1)) && ls->state[off >> HAK_PAGE_SHIFT] == PG_CACHED ? 2 : 0;
}

/* Under the lock: the first spare segment, taken off the list. */
static large_seg_t *spare_unlink(void) {
  for (large_seg_t **pp = &segs; *pp; pp = (large_seg_t **)&(*pp)->seg.next)
    if (large_seg_spare(*pp)) {
      large_seg_t *ls = *pp;
      *pp = (large_seg_t *)ls->seg.next;
      lkey_rebuild();
      return ls;
    }
  return NULL;
}

/* An empty segment for the small tiers, its free dirty pages along: not
 * the tier's last one, and only once the small objects have taken
 * LARGE_QUIET_SLABS fresh slabs with no Large allocation from the
 * segments in between (as hak_large_release).  While both tiers grow and
 * shrink together (`large-ws`: 8 KiB-1 MiB blocks), a segment that
 * empties is what the Large tier grows into next; given away, it maps and
 * faults in a new one (+2 % page faults and peak RSS there). */
hak_front hak_segment_t *hak_large_take_empty(uint64_t *resident) {
  if (hak_secure) return NULL; /* guard pages */
  if (atomic_load_explicit(&large_quiet, memory_order_relaxed) < LARGE_QUIET_SLABS) return NULL;
  hak_lock(&large_lock);
  large_seg_t *ls = spare_unlink();
  if (!ls && large_cache_bytes) {
    /* None spare: cached spans may be what keeps the segments in use.
     * The tier is quiet, so its cache serves nothing now, and a few spans
     * spread over the segments would hold every one of them (a 2 MiB
     * cache of 256 KiB spans kept 32 MiB from the small objects, which
     * faulted in 27 MiB afresh).  Back to their segments, still resident. */
    large_cache_flush(hak_os_now_ms(), hak_policy()->purge_delay_ms);
    ls = spare_unlink();
  }
  if (ls) {
    if (ls->huge) halves_ask(ls, LHEADER_PAGES, LPAGES - LHEADER_PAGES, false); /* khugepaged would fill slabs in */
    memcpy(resident, ls->dirty, sizeof ls->dirty);
    hak_bits_set(resident, 0, LHEADER_PAGES, true);
  }
  if (hak_debug) large_check_all();
  large_unlock();
  return ls ? &ls->seg : NULL;
}

/* Small objects are about to commit `bytes` of fresh slab pages: up to as
 * many of the free pages still resident here go back to the OS now, young
 * or not, instead of adding to the new memory until their purge (a program
 * that moves from Large blocks to small ones would hold both at once).
 * Only once the small objects have taken LARGE_QUIET_SLABS fresh slabs
 * with no Large allocation from the segments meanwhile: a program that keeps
 * allocating both reuses these pages soon, and would pay an madvise (a TLB
 * shootdown in every thread) per slab for them (mstress, 32 threads:
 * 1,500-2,000 calls a run against 20-40). */
hak_front void hak_large_release(size_t bytes) {
  size_t left = bytes >> HAK_PAGE_SHIFT;
  /* Counted whether or not there is anything to release now: the count
   * also lets hak_large_take_empty give segments away, and those may be
   * held by cached spans alone.  A load once the count is reached. */
  if (atomic_load_explicit(&large_quiet, memory_order_relaxed) < LARGE_QUIET_SLABS &&
      atomic_fetch_add_explicit(&large_quiet, 1, memory_order_relaxed) + 1 < LARGE_QUIET_SLABS)
    return;
  if (!atomic_load_explicit(&large_idle, memory_order_relaxed)) return;
  hak_lock(&large_lock);
  bool kept = false;
  for (large_seg_t *ls = segs; ls && left; ls = (large_seg_t *)ls->seg.next) {
    if (large_seg_spare(ls)) {
      /* Empty, and not the last: hak_large_take_empty gives it to the
       * small objects' next segment with its pages as they are.  Released
       * here, they would be faulted in again there (tier_shift: 2,240 of
       * its 3,272 page faults). */
      kept = true;
      continue;
    }
    uint64_t idle[LWORDS];
    for (unsigned w = 0; w < LWORDS; w++) idle[w] = ~ls->used[w] & ls->dirty[w];
    left -= decommit_runs(ls, idle, left);
  }
  if (left && !kept) atomic_store_explicit(&large_idle, false, memory_order_relaxed); /* all gone */
  large_unlock();
}

size_t hak_large_trim(bool force) {
  size_t before = atomic_load(&hak_os.committed);
  hak_lock(&large_lock);
  large_purge(hak_os_now_ms(), force, hak_policy()->purge_delay_ms);
  large_unlock();
  size_t after = atomic_load(&hak_os.committed);
  return before > after ? before - after : 0;
}

void hak_large_ace(double target) {
  hak_lock(&large_lock);
  for (unsigned c = 1; c < LCLASSES; c++) {
    uint32_t h = lc_hits[c], m = lc_misses[c];
    lc_hits[c] = lc_misses[c] = 0;
    if (lc_cap[c] == LCAP_NONE) lc_cap[c] = 4; /* the controller's first window */
    if (h + m < 4) continue; /* too little to say */
    double rate = (double)h / (double)(h + m);
    /* Up after two low windows in a row; down after four windows with
     * the cache full but hardly used. */
    lc_low[c] = rate < target ? (uint8_t)(lc_low[c] + 1) : 0;
    lc_idle[c] = rate >= target && lc_count[c] >= lc_cap[c] && h < lc_cap[c] / 4u ? (uint8_t)(lc_idle[c] + 1) : 0;
    if (lc_low[c] >= 2 && lc_cap[c] < 256) {
      lc_cap[c] = (uint16_t)(lc_cap[c] + (lc_cap[c] + 1) / 2);
      lc_low[c] = 0;
    } else if (lc_idle[c] >= 4 && lc_cap[c] > 1) {
      lc_cap[c]--;
      lc_idle[c] = 0;
    }
  }
  large_unlock();
}

size_t hak_large_cached_bytes(void) {
  return atomic_load_explicit(&large_cache_bytes_pub, memory_order_relaxed);
}

void hak_large_lock(void) { hak_lock(&large_lock); }
void hak_large_unlock(bool child) {
  hak_lock_after_fork(&large_lock, child);
}

/* ---- the debug build's walkers (check.h), under large_lock ------------- */

/* One Large segment.  Its pages [LHEADER_PAGES, LPAGES) are free pages and
 * spans, one after the other:
 *   a free page: `used` bit 0, state PG_FREE, span 0;
 *   a span: at its first page, state PG_LIVE or PG_CACHED and its length
 *   n; n `used` bits and n `dirty` bits (a live or cached span is
 *   resident); its other pages have state PG_FREE and span 0.
 * free_pages == the zero bits of `used` (the header pages' are set);
 * no free run is as long as no_run (else a search would skip a fitting run);
 * a free dirty page (resident, counted committed) means a purge is due:
 * purge_at is set, and large_next_purge comes no later.
 * A span in a thread's lcache flips PG_LIVE <-> PG_CACHED without the lock:
 * either is a span start.  Returns how many spans are PG_CACHED. */
static unsigned large_check_seg(const large_seg_t *ls) {
  const hak_segment_t *seg = &ls->seg;
  hak_assert(seg->kind == HAK_SEG_LARGE && seg->slab_shift == HAK_SEG_SHIFT &&
                 seg->map_size == HAK_SEG_SIZE &&
                 !atomic_load_explicit(&seg->slabs[0].owner, memory_order_relaxed),
             "Large segment %p: kind %u, slab shift %u, %zu bytes", (const void *)ls, seg->kind,
             seg->slab_shift, seg->map_size);
  hak_check_segmap(ls, HAK_SEG_SIZE);
  unsigned zeros = 0;
  for (unsigned w = 0; w < LWORDS; w++) zeros += 64 - hak_popcount(ls->used[w]);
  hak_assert(zeros == ls->free_pages && hak_bits_count(ls->used, 0, LHEADER_PAGES) == LHEADER_PAGES,
             "Large segment %p: free_pages %u, the bitmap has %u free pages", (const void *)ls,
             ls->free_pages, zeros);
  unsigned run = 0, longest = 0, cached = 0;
  bool dirty_free = false;
  for (unsigned i = LHEADER_PAGES; i < LPAGES;) {
    if (!bit_get(ls->used, i)) {
      hak_assert(ls->state[i] == PG_FREE && !ls->span[i],
                 "Large segment %p: free page %u has state %u, span %u", (const void *)ls, i, ls->state[i],
                 ls->span[i]);
      dirty_free |= bit_get(ls->dirty, i);
      if (++run > longest) longest = run;
      i++;
      continue;
    }
    run = 0;
    unsigned n = ls->span[i], st = ls->state[i];
    hak_assert((st == PG_LIVE || st == PG_CACHED) && n && i + n <= LPAGES &&
                   hak_bits_count(ls->used, i, n) == n && hak_bits_count(ls->dirty, i, n) == n,
               "Large segment %p: used page %u starts no whole span (state %u, span %u)", (const void *)ls,
               i, st, n);
    for (unsigned k = i + 1; k < i + n; k++)
      hak_assert(ls->state[k] == PG_FREE && !ls->span[k],
                 "Large segment %p: page %u inside the span at %u has state %u, span %u", (const void *)ls,
                 k, i, ls->state[k], ls->span[k]);
    cached += st == PG_CACHED;
    i += n;
  }
  hak_assert(longest < ls->no_run, "Large segment %p: a free run of %u pages, yet no_run = %u",
             (const void *)ls, longest, ls->no_run);
  hak_assert(!dirty_free || (ls->purge_at && large_next_purge && large_next_purge <= ls->purge_at),
             "Large segment %p: free dirty pages, purge at %llu, next purge %llu", (const void *)ls,
             (unsigned long long)ls->purge_at, (unsigned long long)large_next_purge);
  return cached;
}

/* Every segment, and the shared cache: each entry a PG_CACHED span of its
 * class (a whole class size), the lists doubly linked, large_cache_bytes
 * their sum.  Spans in threads' lcaches are PG_CACHED too but on no list. */
static void large_check_all(void) {
  unsigned cached = 0, listed = 0;
  size_t used = 0;
  unsigned k = 0;
  for (const large_seg_t *ls = segs; ls; ls = (const large_seg_t *)ls->seg.next, k++) {
    cached += large_check_seg(ls);
    used += LPAGES - LHEADER_PAGES - ls->free_pages;
    hak_assert(k < lkey_n ? ls->key == k && lkey[k].ls == ls && lkey[k].fit == lkey_fit(ls) &&
                                lkey[k].place == ls->placement
                          : ls->key == LKEY_MAX && (k != lkey_n || lkey_rest == ls),
               "Large segment %p, %u in the list: index entry %u (%u entries) stale", (const void *)ls, k, ls->key,
               lkey_n);
  }
  hak_assert(k >= lkey_n && (k > lkey_n || !lkey_rest), "Large index: %u entries for %u segments", lkey_n, k);
  hak_assert(used == large_used_pages, "Large segments hold %zu pages of spans, the tier counts %zu", used,
             large_used_pages);
  size_t bytes = 0;
  for (unsigned c = 0; c < LCLASSES; c++) {
    const cached_span_t *prev = NULL;
    for (const cached_span_t *cs = large_cache_first[c]; cs; prev = cs, cs = cs->next, listed++) {
      const large_seg_t *ls = (const large_seg_t *)hak_segmap_lookup(cs);
      unsigned i = (unsigned)(((uintptr_t)cs - (uintptr_t)ls) >> HAK_PAGE_SHIFT);
      hak_assert(
          ls && ls->seg.kind == HAK_SEG_LARGE && !((uintptr_t)cs & (HAK_PAGE - 1)) && cs->prev == prev,
          "Large cache class %u: entry %p (segment %p) links back to %p, not %p", c, (const void *)cs,
          (const void *)ls, (const void *)cs->prev, (const void *)prev);
      hak_assert(i >= LHEADER_PAGES && ls->state[i] == PG_CACHED && lclass(ls->span[i]) == c &&
                     ls->span[i] == lpages_round(ls->span[i]),
                 "Large cache class %u: entry %p has state %u, %u pages", c, (const void *)cs, ls->state[i],
                 ls->span[i]);
      bytes += (size_t)ls->span[i] * HAK_PAGE;
    }
    hak_assert(large_cache_last[c] == prev, "Large cache class %u ends at %p, its last is %p", c,
               (const void *)prev, (const void *)large_cache_last[c]);
  }
  hak_assert(bytes == large_cache_bytes && listed <= cached,
             "Large cache: %zu bytes in %u entries, counted %zu; %u spans cached", bytes, listed,
             large_cache_bytes, cached);
}
