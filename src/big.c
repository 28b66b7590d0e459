/* The Big tier (>= big threshold): each block has its own mapping, aligned
 * to the segment size so that free() finds its header like any other.
 * Freed mappings wait in the BigCache for a request of a fitting size (or
 * are grown for a larger one); after the purge delay (or beyond the
 * resident budget) their pages are decommitted in one pass, and beyond 4x
 * the budget they are unmapped.  A mapping is reused whole, never pieced
 * together from others' pages: it stays one kernel area, on the huge pages
 * it was given. */
#include <errno.h>
#include <string.h>

#include "check.h"
#include "internal.h"
#include "msg.h"
#include "policy.h"
#include "os.h"
#include "prof.h"
#include "secure.h"
#include "site.h"
#include "learn/sites.h"
#include "learn/control.h"

enum { BIG_LIVE = 1, BIG_CACHED = 2 };

/* A mapping's pages: [0, length) may be resident (the header page, then the
 * block and what it may have written), [length, map_size) is address space
 * only, decommitted.  The committed count holds `length` for every mapping,
 * live or cached. */
typedef struct big_hdr {
  hak_segment_t seg;
  void *block;
  uint32_t state;
  size_t length;           /* see above; the block's usable size is length - offset */
  uint64_t time;           /* cached: when it was freed */
  size_t req;              /* bytes asked for (profiles) */
  uint32_t born;
  uint16_t site;
  uint8_t how;             /* the site's decision bits (learn/sites.h) */
  bool huge;               /* asked for huge pages (see big_cache_purge) */
  size_t surplus;          /* live: resident bytes beyond its block's need, kept (big_surplus) */
  struct big_hdr *next, *prev;
} big_hdr_t;

#define BIG_HDR HAK_PAGE
#define BIG_GRAIN ((size_t)64 << 10) /* mapping sizes round up to this */
/* A mapping reused for a smaller request keeps its resident surplus while
 * it fits in the BigCache budget: decommitting it only for the next larger
 * request to fault it in again costs more than it saves (big-churn: 2-64
 * MiB blocks, 10k huge-page faults and 0.4 s against 71 faults and 0.04 s,
 * at the same peak RSS).  Beyond the budget the surplus is decommitted (a
 * 1 GiB mapping reused for 3 MiB). */
static _Atomic size_t big_surplus;

/* The cache's budget follows the program: at least the bytes its Big
 * blocks' mappings held lately (the peak over the last one or two purge
 * delays), unless the user set HAKMEM_BIGCACHE, and only while the
 * controller returns idle memory on time (big_follow).  big-batch (40
 * buffers of 6-10 MiB written and freed together, 320 MiB) kept 128 MiB
 * of each batch and faulted the rest in again: 40 batches 1.51 s, then
 * 0.50 s.  The peak counts the blocks' surpluses: mappings reused for
 * sizes drawn anew hold up to each one's largest block, and a cache held
 * to the blocks' own bytes gave that back at every batch's end and
 * faulted it in again (0.33 against 0.19 s). */
static _Atomic size_t big_live, big_hwm; /* live mappings' bytes; their peak since big_hwm_ms */
static _Atomic size_t big_hwm_prev;      /* ... and in the interval before (written under big_lock) */
static uint64_t big_hwm_ms;
/* Only while something returns idle memory on time: without the
 * controller (`fast`, or a process too young for it), a cache purges only
 * at the next Big free, and a program that freed a big batch and stopped
 * would keep all of it (the fixed budget keeps at most 128 MiB). */
static _Atomic bool big_follow;

void hak_big_idle_return(bool on) { atomic_store_explicit(&big_follow, on, memory_order_relaxed); }

/* Live mappings' bytes change by d, the surpluses among them by s. */
static void big_live_add(ptrdiff_t d, ptrdiff_t s) {
  size_t live = atomic_fetch_add_explicit(&big_live, (size_t)d, memory_order_relaxed) + (size_t)d;
  if (s) atomic_fetch_add_explicit(&big_surplus, (size_t)s, memory_order_relaxed);
  size_t h = atomic_load_explicit(&big_hwm, memory_order_relaxed);
  while (d > 0 && live > h && !atomic_compare_exchange_weak_explicit(&big_hwm, &h, live, memory_order_relaxed,
                                                                       memory_order_relaxed)) {
  }
}

/* The user left the budget to the program (no HAKMEM_BIGCACHE), and it
 * follows the program now. */
static bool big_may_follow(const hak_policy_t *pol) { return pol->bigcache && !pol->bigcache_fixed; }
static bool big_follows(const hak_policy_t *pol) {
  return big_may_follow(pol) && atomic_load_explicit(&big_follow, memory_order_relaxed);
}

static size_t big_budget(const hak_policy_t *pol) {
  if (!big_follows(pol)) return pol->bigcache;
  size_t h = atomic_load_explicit(&big_hwm, memory_order_relaxed);
  size_t prev = atomic_load_explicit(&big_hwm_prev, memory_order_relaxed); /* big_reuse reads it unlocked */
  if (prev > h) h = prev;
  return h > pol->bigcache ? h : pol->bigcache;
}

static hak_lock_t big_lock = HAK_LOCK_INIT;
static big_hdr_t *big_cache_first, *big_cache_last; /* newest first */
static size_t big_cache_bytes, big_cache_committed; /* mapped, resident */
static _Atomic size_t big_cache_bytes_pub, big_cache_committed_pub;
/* Debug builds' walkers, at the end of this file. */
static void big_check_hdr(const big_hdr_t *b, uint32_t state);
static void big_check_cache(void);

static void big_cache_publish(void) {
  atomic_store_explicit(&big_cache_bytes_pub, big_cache_bytes, memory_order_relaxed);
  atomic_store_explicit(&big_cache_committed_pub, big_cache_committed, memory_order_relaxed);
}

static void big_cache_remove(big_hdr_t *b) {
  if (b->prev) b->prev->next = b->next;
  else big_cache_first = b->next;
  if (b->next) b->next->prev = b->prev;
  else big_cache_last = b->prev;
  big_cache_bytes -= b->seg.map_size;
  big_cache_committed -= b->length;
  big_cache_publish();
}

/* Puts a mapping first in the cache (b->time kept by the caller). */
static void big_cache_push(big_hdr_t *b) {
  b->state = BIG_CACHED;
  b->prev = NULL;
  b->next = big_cache_first;
  if (big_cache_first) big_cache_first->prev = b;
  else big_cache_last = b;
  big_cache_first = b;
  big_cache_bytes += b->seg.map_size;
  big_cache_committed += b->length;
  big_cache_publish();
}

static void big_unmap(big_hdr_t *b) {
  size_t size = b->seg.map_size;
  hak_segmap_set(b, size, false);
  hak_os_commit_account(-(ptrdiff_t)b->length);
  hak_os_unmap(b, size);
}

/* Gives back the pages from `keep` to `length` (keep >= the header). */
static void big_decommit_from(big_hdr_t *b, size_t keep) {
  if (b->length <= keep) return;
  hak_os_decommit((uint8_t *)b + keep, b->length - keep);
  b->length = keep;
}

/* Asks for huge pages for the whole mapping, or takes that back. */
static void big_huge(big_hdr_t *b, bool on) {
  hak_os_hugepage(b, b->seg.map_size, on);
  b->huge = on;
}

/* The secure library: was a freed block written after its free?  Looked
 * at while its first bytes are still resident, before its mapping is
 * reused or its pages purged (the evidence goes with them). */
static void big_sec_check_freed(const big_hdr_t *b) {
  if (hak_secure && b->length >= (size_t)((uint8_t *)b->block - (uint8_t *)b) + 16) hak_sec_big_reused(b->block);
}

/* Under the lock.  Decommits entries older than the purge delay, and the
 * oldest ones while the resident part exceeds the budget (HAKMEM_BIGCACHE);
 * returns the mappings to unmap (beyond 4x the budget of address space),
 * linked by next, so that the munmaps run outside the lock. */
hak_front static big_hdr_t *big_cache_purge(const hak_policy_t *pol, uint64_t now, bool force) {
  uint64_t delay = pol->purge_delay_ms;
  size_t budget = big_budget(pol);
  big_hdr_t *out = NULL;
  /* Oldest first; over the budget, the pages of sites that allocate once
   * (HAK_SITE_NOCACHE) go first, those of sites known to reuse theirs
   * (HAK_SITE_CACHE) last. */
  for (int pass = 0; pass < 3; pass++)
    for (big_hdr_t *b = big_cache_last; b; b = b->prev) {
      if (b->length <= BIG_HDR) continue;
      bool due = force || b->time + delay <= now;
      bool spared = pass == 0 ? !(b->how & HAK_SITE_NOCACHE) : pass == 1 && (b->how & HAK_SITE_CACHE);
      if (!due && (big_cache_committed <= budget || spared)) continue;
      big_sec_check_freed(b); /* else a slow program (the delay passed before reuse) hid it */
      big_cache_committed -= b->length - BIG_HDR;
      big_decommit_from(b, BIG_HDR);
      /* With its huge-page request left on, khugepaged would fill the
       * header's 2 MiB back in around it: 2 MiB resident per cached
       * mapping, a few more every 10 s in an idle process. */
      if (b->huge && !force) big_huge(b, false);
    }
  while (big_cache_last && (force || big_cache_bytes > 4 * budget)) {
    big_hdr_t *b = big_cache_last;
    big_cache_remove(b);
    b->next = out;
    out = b;
  }
  /* Each purge delay the peak starts again from what is live; the floor is
   * the larger of this interval's peak and the last one's, so that it does
   * not drop between two batches, and an idle program's falls within two
   * delays.  (The cache is not counted: stale entries would hold their own
   * budget.) */
  if (force || now >= big_hwm_ms + delay) {
    size_t peak = atomic_exchange_explicit(&big_hwm, atomic_load_explicit(&big_live, memory_order_relaxed),
                                           memory_order_relaxed);
    atomic_store_explicit(&big_hwm_prev, peak, memory_order_relaxed);
    big_hwm_ms = now;
  }
  if (hak_debug) big_check_cache();
  return out;
}

static void unmap_list(big_hdr_t *b) {
  while (b) {
    big_hdr_t *next = b->next;
    big_unmap(b);
    b = next;
  }
}

/* A mapping about to grow past its last, partial 2 MiB page: that tail was
 * kept off huge pages (big_map_size), and if the block wrote it, its page
 * table is there, so the kernel would fault the rest of that 2 MiB in on
 * 4 KiB pages too.  Made one huge page once the mapping covers it
 * (MADV_COLLAPSE, its pages copied in: ~0.5 ms here against 497 faults
 * and 1.4 ms, and one TLB entry after; site-reuse: 1,023 of its 1,078
 * page faults in 40 ops were two such regions). */
static void big_tail_huge(big_hdr_t *b, size_t old_map, size_t old_length) {
  size_t lo = old_map & ~(HAK_HUGE_PAGE - 1);
  if (!b->huge || hak_secure || lo == old_map || old_length <= lo || b->seg.map_size < lo + HAK_HUGE_PAGE) return;
  hak_os_collapse((uint8_t *)b + lo, HAK_HUGE_PAGE);
}

/* Grows a mapping to `size`: in place when the address space after it is
 * free, else by moving its pages to a fresh aligned area (page tables, no
 * copy; 2 MiB-aligned at both ends, so huge pages move whole).  Returns
 * the (maybe moved) header, or NULL with the mapping unchanged. */
static big_hdr_t *big_grow(big_hdr_t *b, size_t size) {
  size_t old = b->seg.map_size;
  big_hdr_t *nb = hak_os_grow_inplace(b, old, size) ? b : NULL;
  if (!nb) {
    hak_segmap_set(b, old, false);
    nb = hak_os_remap_aligned(b, old, size, HAK_SEG_SIZE);
    if (!nb) {
      hak_segmap_set(b, old, true);
      return NULL;
    }
    if (hak_stats_on) atomic_fetch_add_explicit(&hak_gstats.big_moved, nb->length, memory_order_relaxed);
  }
  nb->seg.map_size = size;
  hak_segmap_set(nb, size, true);
  big_tail_huge(nb, old, nb->length);
  return nb;
}

/* Set once the program has reused a Big mapping or its fresh ones, the
 * one being made included, reach BIG_HUGE_MIN: it handles big memory in
 * volume (see big_wants_huge). */
static _Atomic bool big_busy;
static _Atomic size_t big_mapped; /* bytes of fresh mappings so far */
#define BIG_HUGE_MIN ((size_t)32 << 20)

/* how: the site's decision bits.  Huge pages for a site whose Big blocks
 * are reused soon (per-site `cache`), and, where the policy asks
 * (HAKMEM_THP), once the program is busy with big memory: buffers
 * recycled, or mapped in volume (sort's one 1.8 GB buffer, filled from
 * both ends), are written densely, where a 2 MiB page costs one fault
 * instead of 512.  Until then a fresh mapping stays on 4 KiB pages, as
 * glibc's and jemalloc's do: a program that allocates a few big tables
 * once may touch part of them (xz -6: a 16 MiB hash table three quarters
 * resident on 4 KiB pages, all of it on huge pages). */
static bool big_wants_huge(unsigned how) {
  return ((how & HAK_SITE_CACHE) || (hak_policy()->thp && atomic_load_explicit(&big_busy, memory_order_relaxed))) &&
         hak_os_huge_pays();
}

static void big_set_busy(void) {
  if (!atomic_load_explicit(&big_busy, memory_order_relaxed)) atomic_store_explicit(&big_busy, true, memory_order_relaxed);
}

/* The program's last fresh mapping on 4 KiB pages, made while not busy.
 * At its next fresh mapping, if it has written nearly all of that one, it
 * writes its big buffers densely and is busy from then on: only its first
 * buffer pays 4 KiB faults (site-reuse: six 10 MiB buffers written one
 * after another, 7.9k faults of which 5.1k were the second and third).  A
 * program that touches part of a table, as xz does its 13 MiB dictionary
 * (nothing of it written when the next one is made), stays on small pages.
 * Pages only read count as written (they map the zero page, as they would
 * the huge one).  The pair is read racily: what it names is only looked
 * at, never touched, so a stale one costs a wrong hint at worst. */
static _Atomic uintptr_t big_last_small;
static _Atomic size_t big_last_small_size;
#define BIG_DENSE_MIN (2 * HAK_HUGE_PAGE) /* smaller ones say little */

static void big_note_density(void) {
  uintptr_t last = atomic_exchange_explicit(&big_last_small, 0, memory_order_relaxed);
  size_t size = atomic_load_explicit(&big_last_small_size, memory_order_relaxed);
  if (last && hak_os_resident((void *)last, size) >= size - size / 8) big_set_busy();
}

/* Bytes of mapping for a block that ends `end` bytes in: whole grains,
 * and on huge pages (`huge`) whole 2 MiB pages when the block would use at
 * least half of the last one: its 256-511 page faults become one, for at
 * most 1 MiB of RSS beyond the block.  (A block just past a boundary, a
 * 10 MiB buffer and its header page, keeps its tail on 4 KiB pages: a
 * whole huge page there would be 2 MiB for 4 KiB.)  Not a block under
 * 2 MiB, which a lowered big threshold or a site's decision makes Big: a
 * huge page would double a 1 MiB block's RSS, and the kernel zeroes all
 * of it at the first write (large-ws at a 1 MiB threshold: 219 against
 * 149 MiB peak RSS, and a learner trying that threshold spent 100 ms
 * zeroing them). */
static size_t big_map_size(size_t end, bool huge) {
  size_t size = hak_align_up(end, BIG_GRAIN);
  if (huge && !hak_secure && size > HAK_HUGE_PAGE && (size & (HAK_HUGE_PAGE - 1)) >= HAK_HUGE_PAGE / 2)
    size = hak_align_up(size, HAK_HUGE_PAGE);
  return size;
}

/* A cached mapping made ready for a block of site decision `how` whose
 * mapping needs `size` bytes: grown if short, its surplus decommitted if
 * far too long, asked for huge pages if the block wants them.  Sets *dirty
 * to the bytes from the start that may hold old data.  NULL (the mapping
 * given up) if it could not grow. */
static big_hdr_t *big_reuse(big_hdr_t *b, size_t size, unsigned how, size_t *dirty) {
  bool purged = b->length == BIG_HDR;
  *dirty = b->length;
  b->surplus = 0;
  if (b->seg.map_size < size) {
    /* The secure library's guard page would split the mapping in two. */
    if (hak_secure) hak_os_protect((uint8_t *)b + b->seg.map_size - HAK_PAGE, HAK_PAGE, false);
    big_hdr_t *nb = big_grow(b, size);
    if (!nb) {
      big_unmap(b); /* (the caller maps a fresh one) */
      return NULL;
    }
    b = nb;
    if (hak_secure) hak_os_protect((uint8_t *)b + size - HAK_PAGE, HAK_PAGE, true);
  } else if (b->length > size) {
    /* Within the fixed budget, with the cache; beyond it, while the budget
     * follows the program, a block keeps at most its own size again.  A
     * block that lives on after a peak holds its surplus as long (a 3 MiB
     * table in a 100 MiB mapping would keep 97), and surpluses that count
     * in the peak would hold up their own budget for ever. */
    size_t extra = b->length - size;
    const hak_policy_t *pol = hak_policy();
    size_t held = atomic_load_explicit(&big_surplus, memory_order_relaxed);
    bool keep = held + atomic_load_explicit(&big_cache_committed_pub, memory_order_relaxed) + extra <= pol->bigcache;
    if (!keep && big_follows(pol) && extra <= size) keep = held + extra <= big_budget(pol);
    if (keep) {
      b->surplus = extra; /* counted by the caller (big_live_add) */
    } else {
      big_decommit_from(b, size);
      *dirty = size;
    }
  }
  /* The block may use everything up to length: what was resident stays
   * so, and a short part becomes so now. */
  if (b->length < size) {
    hak_os_commit_account((ptrdiff_t)(size - b->length));
    b->length = size;
  }
  if (!b->huge && big_wants_huge(how)) {
    /* Purged (or mapped for another site).  A purge left the header page
     * holding its 2 MiB on 4 KiB page tables, where the block's first
     * writes would fault 511 times: made one huge page now. */
    big_huge(b, true);
    if (purged && b->seg.map_size > HAK_HUGE_PAGE) hak_os_collapse(b, HAK_HUGE_PAGE);
  }
  return b;
}

/* A fresh mapping for a block of site decision `how`. */
static big_hdr_t *big_map_new(size_t size, size_t map_align, unsigned how) {
  big_hdr_t *b = hak_os_map_aligned(size, map_align);
  if (!b) return NULL;
  if (atomic_fetch_add_explicit(&big_mapped, size, memory_order_relaxed) + size >= BIG_HUGE_MIN) big_set_busy();
  else if (!atomic_load_explicit(&big_busy, memory_order_relaxed)) big_note_density();
  /* Asked before the header's first write, which would otherwise fault
   * the first 2 MiB in on 4 KiB pages: 511 more faults when the block is
   * written (site-reuse: 4.3k of its faults in 25 ops). */
  bool huge = big_wants_huge(how) && hak_os_hugepage_fresh(b, size);
  b->huge = huge;
  if (!huge && size >= BIG_DENSE_MIN && !atomic_load_explicit(&big_busy, memory_order_relaxed)) {
    atomic_store_explicit(&big_last_small_size, size, memory_order_relaxed);
    atomic_store_explicit(&big_last_small, (uintptr_t)b, memory_order_relaxed);
  }
  b->surplus = 0;
  b->seg.map_size = size;
  b->length = size;
  hak_os_commit_account((ptrdiff_t)size);
  hak_segmap_set(b, size, true);
  if (hak_secure) hak_os_protect((uint8_t *)b + size - HAK_PAGE, HAK_PAGE, true);
  return b;
}

/* calloc from a reused mapping: [off, off + n) must read zero, and the
 * first `dirty` bytes may hold old data.  On huge pages the whole 2 MiB
 * pages of that range are given back instead of cleared: the kernel
 * zeroes a huge page at its first write for about what clearing it here
 * costs, and one that is only read (the shared zero page) or never touched
 * is never made resident (big-buffers, calloc then a read of every page:
 * 0.58 against 2.4 ms per op, peak RSS 117 MiB against 405; written whole
 * after the calloc, 1.16 against 1.25 s in 400 ops; the worst case, a byte
 * written in every 4 KiB page, 1.12 against 0.85 s: the kernel clears a
 * page more slowly than memset).  The partial huge page at the end goes
 * back whole where the mapping holds all of it (big-buffers 0.280 ->
 * 0.109 s, peak RSS 123 -> 45 MiB); the one at the start holds the header
 * and is cleared, as is a partial one anywhere else, lest it split; so is
 * everything on 4 KiB pages (also where the kernel grants no huge pages),
 * where a fault costs 10-50 x clearing its page.  Clearing skips the pages
 * that read zero already (hak_clear): those a program only read map the
 * zero page, and stay so (big-buffers, 400 ops, with HAKMEM_THP=0: 1.48
 * -> 0.38 s, peak RSS 398 -> 14 MiB; by default, where a cold host
 * refuses huge pages in some runs: median of 5, 0.76 -> 0.14 s). */
static void big_zero(big_hdr_t *b, size_t off, size_t n, size_t dirty) {
  uint8_t *base = (uint8_t *)b;
  size_t end = dirty < off + n ? dirty : off + n;
  if (b->huge && !hak_secure && hak_os_thp_granted()) {
    size_t lo = hak_align_up(off, HAK_HUGE_PAGE), hi = end & ~(HAK_HUGE_PAGE - 1), top = hi;
    /* The last partial huge page goes back whole where the mapping holds
     * all of it (its bytes past `end` are surplus or fresh): one that
     * reads had mapped to the zero page, cleared here, was allocated and
     * cleared by a copy-on-write fault first, then cleared again. */
    if (end > hi && hi >= lo && hi + HAK_HUGE_PAGE <= b->seg.map_size) top = hi + HAK_HUGE_PAGE;
    if (top > lo) {
      hak_clear(base + off, lo - off);
      hak_os_discard(base + lo, top - lo);
      if (top == hi) hak_clear(base + hi, end - hi);
      return;
    }
  }
  hak_clear(base + off, end - off);
}

hak_front void *hak_big_alloc(size_t n, size_t align, bool zero, void *site, unsigned how) {
  size_t off = align <= BIG_HDR ? BIG_HDR : align;
  /* A block of 0 bytes still gets a byte: its address must lie inside its
   * mapping (an over-aligned block starts `off` bytes in). */
  size_t size = big_map_size(off + (n ? n : 1), big_wants_huge(how));
  /* The secure library: a mapping's last page is a guard. */
  if (hak_secure) size += HAK_PAGE;
  size_t map_align = align > HAK_SEG_SIZE ? align : HAK_SEG_SIZE;
  big_hdr_t *b = NULL;
  size_t dirty = 0;
  uint64_t t0 = hak_prof_begin();
  if (off < HAK_SEG_SIZE) {
    /* Best fit among cached mappings; failing that, the largest smaller
     * resident one, which is grown: its pages need no faults again.  A
     * mapping goes whole: pieced together from several (their pages moved
     * in by mremap, an earlier design) a block fell onto 4 KiB pages, and
     * writing it cost 10-30 x more than one that kept its huge pages
     * (site-reuse, big-churn).  The secure library skips the newest
     * mappings (one waits for a few more frees). */
    big_hdr_t *smaller = NULL;
    unsigned skip = hak_secure ? hak_sec_big_delay : 0;
    hak_lock(&big_lock);
    for (big_hdr_t *c = big_cache_first; c; c = c->next) {
      if (skip) {
        skip--;
        continue;
      }
      if (c->seg.map_size >= size) {
        /* A fit whose pages are resident beats one purged to its header:
         * taking the purged one faults it in while the resident one idles
         * on (big-batch, once the budget grew past purged mappings: 12 %
         * more peak RSS). */
        bool res = c->length >= size, bres = b && b->length >= size;
        if (!b || res > bres || (res == bres && c->seg.map_size < b->seg.map_size)) b = c;
      } else if (c->length > BIG_HDR && (!smaller || c->length > smaller->length)) {
        smaller = c;
      }
    }
    if (!b) b = smaller;
    if (b) big_cache_remove(b);
    hak_unlock(&big_lock);
  }
  if (b) HAK_STAT_INC(hak_gstats.bigcache_hits);
  else HAK_STAT_INC(hak_gstats.bigcache_misses);
  if (b) {
    big_set_busy(); /* before big_reuse asks big_wants_huge */
    big_sec_check_freed(b);
    b = big_reuse(b, size, how, &dirty);
    if (!b) dirty = 0;
  }
  if (!b) b = big_map_new(size, map_align, how);
  if (!b) goto oom;
  b->seg.kind = HAK_SEG_BIG;
  b->seg.slab_shift = HAK_SEG_SHIFT;
  b->block = (uint8_t *)b + off;
  b->state = BIG_LIVE;
  b->how = (uint8_t)how;
  b->site = HAK_SITE_UNTRACKED;
  if (hak_secure) b->req = n;
  if (site) {
    b->req = n;
    b->born = hak_site_clock();
    b->site = hak_site_alloc(site, n, 0, true);
  }
  hak_prof_end(HAK_PROF_BIG_ALLOC, t0);
  if (hak_debug) big_check_hdr(b, BIG_LIVE);
  HAK_STAT_INC(hak_gstats.big_allocs);
  HAK_HEAP_STAT(hak_tls_heap, lb_size[hak_lb_bin(n)], 1);
  if (hak_stats_on) atomic_fetch_add_explicit(&hak_gstats.big_live, b->length - off, memory_order_relaxed);
  big_live_add((ptrdiff_t)b->length, (ptrdiff_t)b->surplus);
  /* Only what old data may be in needs zeroing: the rest is fresh. */
  if (zero && dirty > off) big_zero(b, off, n, dirty);
  return b->block;
oom:
  errno = ENOMEM;
  return NULL;
}

static big_hdr_t *big_check(hak_segment_t *seg, const void *p) {
  big_hdr_t *b = (big_hdr_t *)seg;
  if (b->block != p || b->state != BIG_LIVE) return NULL;
  return b;
}

hak_front void hak_big_free(hak_segment_t *seg, void *p) {
  big_hdr_t *b = big_check(seg, p);
  if (!b) {
    bool twice = ((big_hdr_t *)seg)->block == p;
    hak_report_misuse(twice ? "double free" : "invalid free", p, twice);
    return;
  }
  if (hak_debug) big_check_hdr(b, BIG_LIVE);
  HAK_STAT_INC(hak_gstats.big_frees);
  if (b->site != HAK_SITE_UNTRACKED) hak_site_free(b->site, b->req, 0, b->born);
  if (hak_stats_on)
    atomic_fetch_sub_explicit(&hak_gstats.big_live, hak_big_usable(seg, p), memory_order_relaxed);
  big_live_add(-(ptrdiff_t)b->length, -(ptrdiff_t)b->surplus);
  b->surplus = 0;
  const hak_policy_t *pol = hak_policy();
  uint64_t now = hak_os_now_ms();
  big_hdr_t *drop = NULL;
  /* The fixed budget holds and this block would take the cache past it:
   * the controller is started now, so that the budget follows the program
   * from this free on (big-batch: the first batch kept 128 MiB of its 320
   * and the next faulted the rest in again, as its first 200 ms did). */
  if (big_may_follow(pol) && !atomic_load_explicit(&big_follow, memory_order_relaxed) &&
      atomic_load_explicit(&big_cache_committed_pub, memory_order_relaxed) + b->length > pol->bigcache &&
      hak_control_hurry())
    hak_big_idle_return(true);
  uint64_t t0 = hak_prof_begin();
  hak_lock(&big_lock);
  b->state = BIG_CACHED;
  bool plain = (uint8_t *)b->block - (uint8_t *)b == BIG_HDR;
  if ((uint8_t *)b->block - (uint8_t *)b >= (ptrdiff_t)HAK_SEG_SIZE || b->seg.map_size > 4 * big_budget(pol) ||
      (plain && b->length - BIG_HDR < pol->big_threshold)) {
    /* Over-aligned, or too big to be worth keeping, or too small for any
     * request the policy now sends here save an aligned one (the
     * threshold went up since it was made: a learner's trial ended). */
    drop = b;
    b->next = NULL;
  } else {
    b->time = now;
    big_cache_push(b);
  }
  big_hdr_t *more = big_cache_purge(pol, now, false);
  big_cache_publish();
  hak_unlock(&big_lock);
  unmap_list(drop);
  unmap_list(more);
  hak_prof_end(HAK_PROF_BIG_FREE, t0);
}

/* The secure library's view of a block: 1 if p is a live block (*req: its
 * requested-size slot, *capacity: the bytes before its guard page), 2 if
 * it is a freed one still cached, else 0. */
int hak_big_block(hak_segment_t *seg, const void *p, size_t **req, size_t *capacity) {
  big_hdr_t *b = (big_hdr_t *)seg;
  if (b->block != p) return 0;
  if (b->state != BIG_LIVE) return 2;
  *req = &b->req;
  *capacity = b->seg.map_size - (size_t)((uint8_t *)p - (uint8_t *)b) - HAK_PAGE;
  return 1;
}

size_t hak_big_usable(hak_segment_t *seg, const void *p) {
  big_hdr_t *b = big_check(seg, p);
  return b ? b->length - (size_t)((uint8_t *)p - (uint8_t *)b) : 0;
}

/* Grows or shrinks a Big block without copying: a shrink decommits the
 * tail, a growth extends the mapping in place or moves its pages. */
void *hak_big_realloc(hak_segment_t *seg, void *p, size_t n, void *site) {
  big_hdr_t *b = big_check(seg, p);
  if (!b || b->block != (uint8_t *)b + BIG_HDR || n > HAK_MAX_REQUEST) return NULL;
  size_t size = big_map_size(BIG_HDR + n, b->huge);
  size_t old = b->length, sur = b->surplus;
  b->surplus = 0; /* resized to fit */
  if (size <= old) {
    big_decommit_from(b, size);
  } else {
    if (size > b->seg.map_size) {
      big_hdr_t *nb = big_grow(b, size);
      if (!nb) return NULL;
      b = nb;
    }
    hak_os_commit_account((ptrdiff_t)(size - b->length));
    b->length = size;
  }
  if (hak_stats_on) atomic_fetch_add_explicit(&hak_gstats.big_live, b->length - old, memory_order_relaxed);
  big_live_add((ptrdiff_t)b->length - (ptrdiff_t)old, -(ptrdiff_t)sur);
  b->block = (uint8_t *)b + BIG_HDR;
  if (site && b->site != HAK_SITE_UNTRACKED) {
    hak_site_free(b->site, b->req, 0, b->born);
    b->req = n;
    b->site = hak_site_alloc(site, n, 0, true);
  }
  if (hak_debug) big_check_hdr(b, BIG_LIVE);
  return b->block;
}

size_t hak_big_trim(bool force) {
  size_t before = atomic_load(&hak_os.committed);
  hak_lock(&big_lock);
  big_hdr_t *drop = big_cache_purge(hak_policy(), hak_os_now_ms(), force);
  big_cache_publish();
  hak_unlock(&big_lock);
  unmap_list(drop);
  size_t after = atomic_load(&hak_os.committed);
  return before > after ? before - after : 0;
}

size_t hak_big_cached_bytes(void) { return atomic_load_explicit(&big_cache_bytes_pub, memory_order_relaxed); }
size_t hak_big_cached_committed(void) {
  return atomic_load_explicit(&big_cache_committed_pub, memory_order_relaxed);
}

void hak_big_lock(void) { hak_lock(&big_lock); }
void hak_big_unlock(bool child) {
  /* a fork child returns idle memory on time once its own controller runs */
  if (child) atomic_store_explicit(&big_follow, false, memory_order_relaxed);
  hak_lock_after_fork(&big_lock, child);
}

/* ---- the debug build's walkers (check.h) -------------------------------- */

/* A Big mapping's header: its state; map_size a whole number of grains,
 * BIG_HDR <= length <= map_size (what may be resident lies inside the
 * mapping); the block inside it; one segment-map byte per 4 MiB unit of
 * map_size.  A live block's header is its owner's; a cached one's, the
 * lock's. */
static void big_check_hdr(const big_hdr_t *b, uint32_t state) {
  const hak_segment_t *seg = &b->seg;
  size_t off = (size_t)((const uint8_t *)b->block - (const uint8_t *)b);
  hak_assert(seg->kind == HAK_SEG_BIG && seg->slab_shift == HAK_SEG_SHIFT && b->state == state &&
                 !atomic_load_explicit(&seg->slabs[0].owner, memory_order_relaxed),
             "Big mapping %p: kind %u, slab shift %u, state %u (not %u)", (const void *)b, seg->kind,
             seg->slab_shift, b->state, state);
  /* (the secure library's mappings end with a guard page: one page more) */
  hak_assert(seg->map_size && seg->map_size % (hak_secure ? HAK_PAGE : BIG_GRAIN) == 0 &&
                 BIG_HDR <= b->length &&
                 b->length <= seg->map_size && off >= BIG_HDR && off < seg->map_size,
             "Big mapping %p: %zu bytes mapped, %zu resident, block at +%zu", (const void *)b,
             seg->map_size, b->length, off);
  hak_check_segmap(b, seg->map_size);
}

/* Under big_lock: the BigCache, newest first, doubly linked, its byte
 * counts the sums of its entries' map_size and length. */
static void big_check_cache(void) {
  size_t bytes = 0, committed = 0;
  const big_hdr_t *prev = NULL;
  for (const big_hdr_t *b = big_cache_first; b; prev = b, b = b->next) {
    hak_assert(b->prev == prev, "BigCache: %p links back to %p, not %p", (const void *)b,
               (const void *)b->prev, (const void *)prev);
    big_check_hdr(b, BIG_CACHED);
    bytes += b->seg.map_size;
    committed += b->length;
  }
  hak_assert(big_cache_last == prev && bytes == big_cache_bytes && committed == big_cache_committed,
             "BigCache ends at %p (last %p): %zu bytes mapped, %zu resident; counted %zu, %zu",
             (const void *)prev, (const void *)big_cache_last, bytes, committed, big_cache_bytes,
             big_cache_committed);
}
