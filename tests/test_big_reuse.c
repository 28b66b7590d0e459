/* big_reuse: a freed Big block's mapping serves a later Big request whole
 * (src/big.c): a smaller one writes it without page faults, a larger one
 * grows the largest smaller mapping, and every block stays one kernel
 * area, asked for huge pages, through reuse and realloc (pieced together
 * from several mappings' pages, blocks fell onto 4 KiB pages).  calloc
 * reads zeros whatever the mapping held, and on huge pages gives the
 * mapping's whole 2 MiB pages back rather than clearing them.  A mapping
 * grown past its partial last 2 MiB makes that one huge page.  Two threads churn Big blocks of
 * random sizes with their contents checked.  `test_big_reuse priorities` (run with a 5 MiB
 * BigCache): over the budget, a one-off site's freed pages go back first,
 * a reusing site's last, whatever their age.  A reusing site's new
 * mappings are asked for huge pages, a plain site's as HAKMEM_THP says
 * (`test_big_reuse hugepages 0` alone, run with HAKMEM_THP=0).  A reused
 * mapping's surplus stays resident within the budget (`test_big_reuse
 * surplus 64`, run with a 64 MiB BigCache: beyond it).  A batch over the
 * default budget is kept whole from the first round, in a young process,
 * unless the user set the budget or nothing returns idle memory on time
 * (`batch 0`, `batch 128` with HAKMEM_BIGCACHE=128M, `batch nothread`),
 * and surpluses give way once a peak has passed (`after_peak`).  A fresh
 * mapping whose first write was slow (cold memory) asks for huge pages
 * no more (`slow_write`, the machine's memory not trusted).  A program
 * that wrote its last fresh mapping whole gets huge pages for the next
 * (`busy_by_density 1`, and `busy_by_density 0` with HAKMEM_THP=0).  On
 * 4 KiB pages a calloc leaves pages a block only read on the zero page
 * (`calloc_zero_pages`, with HAKMEM_THP=0).
 * Links the static hak_* library for the Big tier's entry. */
#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "../src/os.h"
#include "check.h"
#include "../src/learn/sites.h"
#include "../src/os.h"

void *hak_big_alloc(size_t n, size_t align, bool zero, void *site, unsigned how); /* src/big.c */

#define MiB ((size_t)1 << 20)
#define PAGE 4096

static long faults(void) {
  struct rusage r;
  getrusage(RUSAGE_SELF, &r);
  return r.ru_minflt;
}

static unsigned long long cache_hits(void) {
  hak_stats_t s;
  hak_stats_get(&s);
  return s.bigcache_hits;
}

/* One byte per page, so that every page is touched (and the last byte). */
static void fill(unsigned char *p, size_t n, unsigned char tag) {
  for (size_t i = 0; i < n; i += PAGE) p[i] = (unsigned char)(tag + i / PAGE);
  if ((n - 1) % PAGE) p[n - 1] = (unsigned char)~tag;
}
/* The first n bytes' page starts as fill() wrote them. */
static int holds(const unsigned char *p, size_t n, unsigned char tag) {
  for (size_t i = 0; i < n; i += PAGE)
    if (p[i] != (unsigned char)(tag + i / PAGE)) return 0;
  return 1;
}
/* fill(), and whether writing the block took few page faults (under a
 * tenth of its pages: its pages were already resident). */
static int fill_without_faults(unsigned char *p, size_t n, unsigned char tag, long *faulted) {
  long f0 = faults();
  fill(p, n, tag);
  *faulted = faults() - f0;
  return *faulted < (long)(n / PAGE) / 10;
}
static int zeros(const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i += 512)
    if (p[i]) return 0;
  return p[n - 1] == 0;
}

/* The kernel area (one line of /proc/self/maps) holding p: 1 if it
 * covers [p, p+n), 0 if the block spans several, -1 if unreadable. */
static int one_area(const void *p, size_t n) {
  FILE *f = fopen("/proc/self/maps", "r");
  if (!f) return -1;
  char line[512];
  int r = 0;
  while (fgets(line, sizeof line, f)) {
    unsigned long lo, hi;
    if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && (uintptr_t)p >= lo && (uintptr_t)p < hi) {
      r = (uintptr_t)p + n <= hi;
      break;
    }
  }
  fclose(f);
  return r;
}

/* A Big mapping of n bytes, written with `tag` and freed (to the BigCache,
 * the caches trimmed before it): the address the freed block had, NULL if
 * the malloc failed. */
static unsigned char *freed_with_data(size_t n, unsigned char tag) {
  hak_trim();
  unsigned char *a = hak_malloc(n);
  CHECK(a != NULL);
  if (!a) return NULL;
  fill(a, n, tag);
  hak_free(a);
  return a;
}

static void smaller_request_reuses_the_mapping(void) {
  unsigned char *a = freed_with_data(24 * MiB, 1);
  if (!a) return;
  /* 10 MiB after the freed 24: the same mapping, its pages resident. */
  unsigned long long h0 = cache_hits();
  unsigned char *b = hak_malloc(10 * MiB);
  CHECK(b != NULL);
  if (!b) return;
  CHECKF(cache_hits() == h0 + 1, "the request was served from the BigCache");
  long f;
  CHECKF(fill_without_faults(b, 10 * MiB, 2, &f), "%ld faults writing 2560 pages of a reused mapping", f);
  CHECKF(b == a, "the freed mapping went whole to the smaller request (%p, was %p)", (void *)b, (void *)a);
  CHECK(hak_usable_size(b) >= 10 * MiB);
  CHECK(one_area(b, 10 * MiB) != 0);
  hak_free(b);
}

/* Reused mappings held someone's data: calloc must not show it. */
static void calloc_after_frees_is_zero(void) {
  size_t sizes[] = {3 * MiB, 7 * MiB, 5 * MiB + 12345, 16 * MiB, 2 * MiB + 1, 11 * MiB};
  for (int round = 0; round < 3; round++)
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
      size_t n = sizes[(i + (size_t)round) % (sizeof sizes / sizeof *sizes)];
      unsigned char *p = hak_malloc(n);
      CHECK(p != NULL);
      if (!p) continue;
      memset(p, 0xA5, n);
      hak_free(p);
      size_t m = sizes[(i * 5 + 3) % (sizeof sizes / sizeof *sizes)];
      unsigned char *z = hak_calloc(1, m);
      CHECK(z != NULL);
      if (!z) continue;
      CHECKF(zeros(z, m), "calloc(%zu) after a freed %zu-byte block: not all zero", m, n);
      memset(z, 0x5A, m);
      hak_free(z);
    }
}

/* A larger request grows the largest smaller cached mapping (in place, or
 * moved whole: page tables, no copy); realloc grows and shrinks it.  The
 * block stays one kernel area, asked for huge pages if the policy says so
 * (want_huge), and keeps its contents. */
static void grown_block_stays_one_area(int want_huge) {
  hak_trim();
  unsigned char *p[4];
  for (int i = 0; i < 4; i++) {
    p[i] = hak_malloc(6 * MiB);
    CHECK(p[i] != NULL);
    if (p[i]) fill(p[i], 6 * MiB, 9);
  }
  for (int i = 0; i < 4; i++) hak_free(p[i]);
  unsigned long long h0 = cache_hits();
  unsigned char *g = hak_malloc(20 * MiB);
  CHECK(g != NULL);
  if (!g) return;
  CHECKF(cache_hits() == h0 + 1, "a 20 MiB request grew a cached 6 MiB mapping");
  fill(g, 20 * MiB, 4);
  CHECKF(one_area(g, 20 * MiB) == 1, "the grown block is one kernel area");
  int hg = asked_huge(g);
  if (hg >= 0) CHECKF(hg == want_huge, "the grown block is %s for huge pages (VmFlags hg: %d)", want_huge ? "asked" : "not asked", hg);
  unsigned char *h = hak_realloc(g, 45 * MiB);
  CHECK(h != NULL);
  if (!h) return;
  CHECKF(holds(h, 20 * MiB, 4), "realloc of a reused block kept its contents");
  CHECKF(one_area(h, 45 * MiB) == 1, "the block grown by realloc is one kernel area");
  fill(h, 45 * MiB, 5);
  unsigned char *s = hak_realloc(h, 9 * MiB);
  CHECK(s != NULL);
  if (!s) return;
  CHECKF(holds(s, 9 * MiB - PAGE, 5), "shrunk block kept its contents");
  CHECK(hak_usable_size(s) >= 9 * MiB);
  hak_free(s);
}

static void *churn(void *arg) {
  uint64_t x = (uintptr_t)arg * 0x9E3779B97F4A7C15ull + 1;
  enum { SLOTS = 6 };
  unsigned char *slot[SLOTS] = {0};
  size_t len[SLOTS] = {0};
  unsigned char tag[SLOTS] = {0};
  for (int i = 0; i < 300; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    int k = (int)(x % SLOTS);
    if (slot[k]) {
      CHECKF(holds(slot[k], len[k], tag[k]), "a %zu-byte block changed while live", len[k]);
      hak_free(slot[k]);
    }
    len[k] = 2 * MiB + (size_t)(x >> 20) % (14 * MiB);
    tag[k] = (unsigned char)(x >> 8);
    slot[k] = (x & 3) ? hak_malloc(len[k]) : hak_calloc(1, len[k]);
    CHECK(slot[k] != NULL);
    if (!slot[k]) return NULL;
    if (!(x & 3)) CHECKF(zeros(slot[k], len[k]), "calloc(%zu) not zero", len[k]);
    fill(slot[k], len[k], tag[k]);
  }
  for (int k = 0; k < SLOTS; k++) {
    if (slot[k]) CHECK(holds(slot[k], len[k], tag[k]));
    hak_free(slot[k]);
  }
  return NULL;
}

static void budget_priorities(void) {
  size_t n = 4 * MiB - PAGE; /* a mapping of exactly 4 MiB */
  hak_trim();
  unsigned char *c = hak_big_alloc(n, 0, false, NULL, HAK_SITE_CACHE);
  unsigned char *p = hak_big_alloc(n, 0, false, NULL, 0);
  unsigned char *o = hak_big_alloc(n, 0, false, NULL, HAK_SITE_NOCACHE);
  CHECK(c && p && o);
  if (!c || !p || !o) return;
  long f0 = faults();
  fill(c, n, 1);
  long fresh_faults = faults() - f0; /* a fresh mapping: on huge pages if the system grants them */
  fill(p, n, 2), fill(o, n, 3);
  /* Oldest first: the reusing site's, then a plain one, then the one-off.
   * With 5 MiB allowed (one mapping's pages, and the header pages that
   * stay), the second free must give up one: the plain one (the reusing
   * site's goes last); the third, the one-off's. */
  hak_free(c);
  hak_free(p);
  hak_free(o);
  size_t rc = resident_pages(c, n), rp = resident_pages(p, n), ro = resident_pages(o, n);
  CHECKF(rc > n / PAGE * 9 / 10, "a reusing site's freed block kept resident (%zu of %zu pages)", rc, n / PAGE);
  CHECKF(rp < n / PAGE / 10, "a plain freed block given back over the budget (%zu pages resident)", rp);
  CHECKF(ro < n / PAGE / 10, "a one-off site's freed block given back first (%zu pages resident)", ro);
  /* A cached mapping whose pages went back no longer asks for huge pages
   * (khugepaged would fill its header's 2 MiB back in); reused, it does
   * again. */
  int hc = asked_huge(c), hp = asked_huge(p), ho = asked_huge(o);
  if (hc < 0 || hp < 0 || ho < 0) {
    printf("budget_priorities: no VmFlags in /proc/self/smaps, huge-page requests not checked\n");
    return;
  }
  CHECKF(hc == 1, "a resident cached mapping still asks for huge pages (VmFlags hg: %d)", hc);
  CHECKF(hp == 0 && ho == 0, "purged cached mappings do not (VmFlags hg: %d, %d)", hp, ho);
  /* The resident mapping serves first (a purged one would fault in while
   * it idled on); the next request takes a purged one. */
  unsigned char *r = hak_big_alloc(n, 0, false, NULL, 0);
  CHECKF(r == c, "the resident cached mapping served first (%p; resident %p)", (void *)r, (void *)c);
  unsigned char *q = hak_big_alloc(n, 0, false, NULL, 0);
  CHECK(q == p || q == o);
  if (r) hak_free(r);
  if (!q) return;
  CHECKF(asked_huge(q) == 1, "a purged mapping reused asks for huge pages again (VmFlags hg: %d)", asked_huge(q));
  /* Its header page kept the first 2 MiB on 4 KiB page tables; the reuse
   * makes them one huge page again, so writing the block faults about as
   * little as writing a fresh one did (where the system grants huge pages
   * at all: the fresh one then took a few faults, not one per page). */
  f0 = faults();
  fill(q, n, 4);
  long reused_faults = faults() - f0;
  if (fresh_faults < (long)(n / PAGE / 4))
    CHECKF(reused_faults < (long)(n / PAGE / 4), "a purged mapping reused faults %ld times for %zu pages (a fresh one: %ld)",
           reused_faults, n / PAGE, fresh_faults);
  else
    printf("budget_priorities: a fresh mapping took %ld faults for %zu pages (no huge pages here), reuse faults not checked\n",
           fresh_faults, n / PAGE);
  hak_free(q);
}

/* In a fresh process a plain site's Big mappings stay on 4 KiB pages (a
 * program that allocates a few big tables once may touch only part of
 * them) until the program is busy with big memory: its fresh mappings,
 * the new one included, reach 32 MiB (BUSY_BY_VOLUME), it reused one from
 * the BigCache (BUSY_BY_REUSE), or it wrote nearly all of its last fresh
 * mapping before making the next (BUSY_BY_DENSITY; half of one is not
 * enough); then new mappings are asked for huge pages where the policy
 * asks (want: 1 by default, 0 with HAKMEM_THP=0).  Must run first in its
 * process. */
enum { BUSY_BY_REUSE, BUSY_BY_VOLUME, BUSY_BY_DENSITY };
static void fresh_mappings_wait_for_busy(int by, int want) {
  size_t n = 8 * MiB; /* a mapping of 8 MiB and a grain: the 4th reaches 32 MiB */
  unsigned char *a[5] = {0};
  int first = by == BUSY_BY_VOLUME ? 3 : 2;
  for (int i = 0; i < first; i++) {
    a[i] = hak_big_alloc(n, 0, false, NULL, 0);
    CHECK(a[i] != NULL);
    if (!a[i]) return;
    int hg = asked_huge(a[i]);
    if (hg < 0) {
      printf("fresh_mappings_wait_for_busy: no VmFlags in /proc/self/smaps, not checked\n");
      for (int j = 0; j <= i; j++) hak_free(a[j]);
      return;
    }
    CHECKF(hg == 0, "fresh mapping %d of a program not yet busy is not asked for huge pages (VmFlags hg: %d)", i, hg);
    /* The first written by half, the second whole. */
    if (by == BUSY_BY_DENSITY) fill(a[i], i == 0 ? n / 2 : n, (unsigned char)(i + 1));
  }
  if (by == BUSY_BY_REUSE) {
    /* Freed and taken again: the program recycles its Big blocks. */
    unsigned long long h0 = cache_hits();
    hak_free(a[1]);
    a[1] = hak_big_alloc(n, 0, false, NULL, 0);
    CHECK(a[1] != NULL);
    CHECKF(cache_hits() == h0 + 1, "the freed mapping was reused");
    if (a[1]) CHECKF(asked_huge(a[1]) == want, "the reused mapping is %s for huge pages", want ? "asked" : "not asked");
  }
  a[first] = hak_big_alloc(n, 0, false, NULL, 0);
  CHECK(a[first] != NULL);
  static const char *const why[] = {"a mapping reused", "32 MiB mapped with it", "the last one written whole"};
  if (a[first])
    CHECKF(asked_huge(a[first]) == want, "a fresh mapping once the program is busy (%s) is %s for huge pages",
           why[by], want ? "asked" : "not asked");
  for (int i = 0; i <= first; i++) hak_free(a[i]);
}

/* The machine's memory on trial (not trusted): a fresh mapping whose
 * first write was quick keeps its huge pages, one whose first write was
 * slow (the host faulting cold memory in) asks for them no more, and the
 * block works either way.  The first write's time is faked (the test
 * hook), the rest is real. */
static void slow_first_write_gives_back(void) {
  size_t n = 40 * MiB; /* busy by volume with its own mapping */
  hak_os_huge_fake_next(200000); /* 0.2 ms: a warm huge page */
  unsigned char *quick = hak_big_alloc(n, 0, false, NULL, 0);
  hak_os_huge_fake_next(6000000); /* 6 ms: one the host faulted in */
  unsigned char *slow = hak_big_alloc(n, 0, false, NULL, 0);
  CHECK(quick && slow);
  if (!quick || !slow) return;
  int hq = asked_huge(quick), hs = asked_huge(slow + n - MiB);
  if (hq < 0) {
    printf("slow_first_write_gives_back: no VmFlags in /proc/self/smaps, not checked\n");
  } else {
    CHECKF(hq == 1, "a fresh mapping whose first write was quick is not asked for huge pages");
    CHECKF(hs == 0, "a fresh mapping whose first write was slow is still asked for huge pages");
  }
  fill(quick, n, 3);
  fill(slow, n, 4);
  CHECKF(holds(quick, n, 3) && holds(slow, n, 4), "a block lost its contents");
  hak_free(quick);
  hak_free(slow);
}

/* A site whose Big blocks are reused soon (`cache`) gets its new mappings
 * on huge pages (one fault per 2 MiB); a plain site's are when the policy
 * asks and the program is busy with big memory, as fresh_mappings_wait_for_busy,
 * run before, made it (want_plain: 1 for HAKMEM_THP's default, 0 for the `big_reuse_nothp`
 * run, which sets HAKMEM_THP=0). */
static void reusing_site_gets_huge_pages(int want_plain) {
  size_t n = 8 * MiB;
  hak_trim(); /* nothing cached: both are new mappings */
  unsigned char *c = hak_big_alloc(n, 0, false, NULL, HAK_SITE_CACHE);
  unsigned char *p = hak_big_alloc(n, 0, false, NULL, 0);
  CHECK(c && p);
  int hc = c ? asked_huge(c) : -1, hp = p ? asked_huge(p) : -1;
  if (hc < 0 || hp < 0) {
    printf("reusing_site_gets_huge_pages: no VmFlags in /proc/self/smaps, not checked\n");
  } else {
    CHECKF(hc == 1, "a reusing site's new mapping is asked for huge pages (VmFlags hg: %d)", hc);
    CHECKF(hp == want_plain, "a plain site's is %s (VmFlags hg: %d)", want_plain ? "too" : "not", hp);
  }
  hak_free(c);
  hak_free(p);
}

/* On huge pages, a mapping whose last 2 MiB the block would use half of
 * or more ends on a whole huge page (one fault for that part, not 256 or
 * more); one that just crosses a boundary, a 4 MiB block and its header
 * page, does not (2 MiB for 4 KiB); nor does a block under 2 MiB (a
 * lowered threshold's: a whole huge page would double its RSS).  Without
 * huge pages none rounds.
 * Seen as the usable size: the mapping's end less the header page. */
static void tail_on_whole_huge_page(int want_huge) {
  hak_trim(); /* new mappings, not cached ones of other sizes */
  size_t half = 5 * MiB + 512 * 1024, just = 4 * MiB;
  unsigned char *a = hak_big_alloc(half, 0, false, NULL, 0);
  unsigned char *b = hak_big_alloc(just, 0, false, NULL, 0);
  CHECK(a && b);
  if (!a || !b) return;
  size_t ua = hak_usable_size(a), ub = hak_usable_size(b);
  if (want_huge)
    CHECKF(ua == 6 * MiB - PAGE, "a 5.5 MiB block's mapping ends at %zu, not on its last huge page", ua + PAGE);
  else
    CHECKF(ua < 6 * MiB - PAGE, "without huge pages a 5.5 MiB block's mapping was rounded up to %zu", ua + PAGE);
  CHECKF(ub >= just && ub < 4 * MiB + MiB, "a 4 MiB block's mapping ends at %zu: a huge page for its last page", ub + PAGE);
  size_t small = MiB + MiB / 2;
  unsigned char *c = hak_big_alloc(small, 0, false, NULL, HAK_SITE_CACHE);
  CHECK(c != NULL);
  if (c) {
    size_t uc = hak_usable_size(c);
    CHECKF(uc >= small && uc < 2 * MiB - PAGE, "a 1.5 MiB Big block's mapping ends at %zu: a whole huge page", uc + PAGE);
    fill(c, small, 9);
    CHECK(holds(c, small, 9));
    hak_free(c);
  }
  fill(a, half, 7);
  fill(b, just, 8);
  CHECK(holds(a, half, 7) && holds(b, just, 8));
  hak_free(a);
  hak_free(b);
}

/* calloc(1, m) served by a freed 16 MiB mapping that held data (NULL on failure). */
static unsigned char *calloc_from_dirty_mapping(size_t m) {
  unsigned char *a = freed_with_data(16 * MiB, 9);
  if (!a) return NULL;
  unsigned char *z = hak_calloc(1, m);
  CHECKF(z == a, "the freed mapping served the calloc (%p, was %p)", (void *)z, (void *)a);
  return z;
}

/* calloc from a freed mapping that holds data: on huge pages its whole
 * 2 MiB pages are given back (the kernel zeroes one at its first write; a
 * page only read stays the shared zero page), not cleared here; on 4 KiB
 * pages (want_huge 0) they are cleared.  Either way it reads zeros. */
static void calloc_gives_huge_pages_back(int want_huge) {
  unsigned char *z = calloc_from_dirty_mapping(16 * MiB);
  if (!z) return;
  unsigned char *mid = (unsigned char *)hak_align_up((uintptr_t)z, 2 * MiB);
  size_t r = resident_pages(mid, 8 * MiB);
  if (want_huge && hak_os_thp_granted())
    CHECKF(r == 0, "calloc on huge pages: %zu of the 2048 pages in its middle 8 MiB still resident", r);
  else
    CHECKF(r == 8 * MiB / PAGE, "calloc on 4 KiB pages: only %zu of 2048 pages cleared in place", r);
  CHECKF(zeros(z, 16 * MiB), "calloc(16 MiB) from a mapping that held data: not all zero");
  hak_free(z);
}

/* calloc of a smaller block from a freed mapping that holds data, ending
 * inside a huge page the mapping holds whole: that page goes back whole
 * too (its bytes past the block are surplus), not cleared in place — a
 * page that reads had mapped to the shared zero page was otherwise
 * allocated and cleared twice.  It reads zeros either way. */
static void calloc_tail_given_back(int want_huge) {
  size_t m = 10 * MiB + 512 * 1024;
  unsigned char *z = calloc_from_dirty_mapping(m);
  if (!z) return;
  /* The block starts a page into its mapping: its last huge page begins
   * 10 MiB into the mapping and holds the block's last 516 KiB. */
  unsigned char *tail = z - PAGE + 10 * MiB;
  size_t r = resident_pages(tail, (size_t)(z + m - tail));
  if (want_huge && hak_os_thp_granted())
    CHECKF(r == 0, "calloc's last partial huge page: %zu of its 129 pages still resident", r);
  CHECKF(zeros(z, m), "calloc(%zu) from a mapping that held data: not all zero", m);
  hak_free(z);
}

/* A mapping whose last 2 MiB was partial (a 10 MiB block and its header
 * page: the tail on 4 KiB pages) and written, grown for a larger block:
 * the rest of that 2 MiB is one huge page, not 496 faults of 4 KiB. */
static void grown_tail_is_huge(void) {
  if (!hak_os_thp_granted()) return;
  unsigned char *a = freed_with_data(10 * MiB, 6);
  if (!a) return;
  unsigned char *b = hak_malloc(20 * MiB); /* the cached mapping, grown */
  CHECK(b != NULL);
  if (!b) return;
  /* The mapping's [10 MiB + 64 KiB, 12 MiB), the block starting a page in. */
  unsigned char *lo = b + 10 * MiB + 64 * 1024 - PAGE, *hi = b + 12 * MiB - PAGE;
  long f0 = faults();
  for (unsigned char *p = lo; p < hi; p += PAGE) *p = 1;
  long f = faults() - f0;
  CHECKF(f < 100, "%ld page faults writing the rest of a grown mapping's partial 2 MiB (496 pages)", f);
  hak_free(b);
}

static size_t committed(void) {
  hak_stats_t s;
  hak_stats_get(&s);
  return s.committed;
}

/* A mapping reused for a smaller request keeps its surplus pages resident
 * while all live surplus and the cache's resident pages fit in the
 * BigCache budget (`budget` MiB, as HAKMEM_BIGCACHE says): a 60 MiB
 * mapping reused for 4 MiB keeps 56 MiB, then a 40 MiB one reused for
 * 2 MiB keeps 38 only if 94 MiB fit.  The first surplus, kept, serves a
 * larger request later: nothing committed anew, no page faults. */
static void surplus_within_budget(size_t budget) {
  unsigned char *a = freed_with_data(60 * MiB, 3);
  if (!a) return;
  unsigned char *b = hak_malloc(4 * MiB);
  unsigned char *c = hak_malloc(40 * MiB);
  CHECK(b == a && c != NULL);
  if (!c) return;
  fill(c, 40 * MiB, 4);
  hak_free(c);
  size_t c0 = committed();
  unsigned char *d = hak_malloc(2 * MiB);
  CHECKF(d == c, "the freed 40 MiB mapping served 2 MiB (%p, was %p)", (void *)d, (void *)c);
  size_t c1 = committed();
  bool keep = 56 + 38 <= budget;
  if (keep)
    CHECKF(c1 + MiB >= c0, "a %zu MiB budget: the 38 MiB surplus was kept, yet %zu MiB were decommitted",
           budget, (c0 - c1) / MiB);
  else
    CHECKF(c0 - c1 >= 36 * MiB, "a %zu MiB budget: the 38 MiB surplus was decommitted, yet only %zu MiB went",
           budget, (c0 > c1 ? c0 - c1 : 0) / MiB);
  /* The first block's surplus is still resident: 50 MiB written after it
   * is freed takes it back without faults. */
  hak_free(b);
  size_t c2 = committed();
  unsigned char *e = hak_malloc(50 * MiB);
  CHECK(e == a);
  CHECKF(committed() <= c2 + MiB, "50 MiB from a mapping whose 60 were kept resident: %zu MiB committed anew",
         (committed() - c2) / MiB);
  long f;
  if (e) CHECKF(fill_without_faults(e, 50 * MiB, 5, &f), "%ld faults writing a kept surplus", f);
  hak_free(d);
  hak_free(e);
}

/* A batch of Big buffers larger than the default budget, written and freed
 * together, then allocated and written again (an image or ML pipeline's
 * frames).  Left to the program (`batch 0`, balanced), the cache keeps the
 * whole batch resident from the first round on, in a process only
 * milliseconds old: a cache past its fixed budget starts the controller,
 * which returns idle memory on time, and the budget follows the program
 * from that free on.  With HAKMEM_BIGCACHE=128M set (`batch 128`, the
 * user's word), or with nothing to return idle memory (`batch nothread`,
 * `fast`: 128, the default), at most 128 MiB stay resident.  (Committed
 * bytes, not page faults: on huge pages the 64 MiB faulted in again are
 * only 32 faults.) */
static void batch(size_t fixed_mib) {
  enum { N = 24 };
  static unsigned char *b[N];
  const size_t n = 8 * MiB; /* 24 x 8 MiB = 192 MiB, over 128 */
  size_t c0 = committed();
  for (int r = 0; r < 2; r++) {
    for (int i = 0; i < N; i++) {
      b[i] = hak_malloc(n);
      CHECK(b[i] != NULL);
      if (!b[i]) return;
      fill(b[i], n, (unsigned char)(i + r));
    }
    for (int i = 0; i < N; i++) hak_free(b[i]);
    size_t held = committed() - c0;
    if (!fixed_mib)
      CHECKF(held >= N * n - 8 * MiB, "round %d: %zu MiB of the 192 MiB batch kept resident, budget left to "
             "the program", r, held / MiB);
    else
      CHECKF(held <= (fixed_mib + 8) * MiB, "round %d: %zu MiB of the 192 MiB batch kept resident, "
             "HAKMEM_BIGCACHE=%zuM", r, held / MiB, fixed_mib);
  }
}

/* After a peak, a surplus does not hold up its own budget.  320 MiB of Big
 * blocks, written and freed, set the budget; then 8 blocks of 4 MiB churn
 * for 15 purge delays (run with 20 ms), reusing the 40 MiB mappings.
 * Beyond the fixed budget a block keeps a surplus of at most its own
 * size, so 36 MiB over a 4 MiB block is decommitted once the surpluses and
 * the cache fill the fixed 128 MiB: the resident total falls to the live
 * blocks, that much surplus and a few cached mappings.  (Kept whole, the
 * surpluses, counted in the peak, held up their own budget: all 320 MiB
 * stayed resident for ever.) */
static void after_peak(void) {
  enum { N = 8 };
  static unsigned char *b[N];
  size_t c0 = committed();
  for (int i = 0; i < N; i++) {
    b[i] = hak_malloc(40 * MiB);
    CHECK(b[i] != NULL);
    if (!b[i]) return;
    fill(b[i], 40 * MiB, 1);
  }
  for (int i = 0; i < N; i++) hak_free(b[i]);
  size_t peak = committed() - c0;
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int k = 0, i = 0;; k++, i = k % N) {
    clock_gettime(CLOCK_MONOTONIC, &t);
    if (k >= 3 * N && (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 > 300) break;
    if (b[i] && k >= N) hak_free(b[i]);
    b[i] = hak_malloc(4 * MiB);
    CHECK(b[i] != NULL);
    if (!b[i]) return;
    fill(b[i], 4 * MiB, (unsigned char)k);
    struct timespec nap = {0, 1000000};
    nanosleep(&nap, NULL);
  }
  size_t held = committed() - c0;
  CHECKF(held <= (N * 4 + 128 + 2 * 40) * MiB, "%zu MiB resident for %d live blocks of 4 MiB, 300 ms after a "
         "peak of %zu MiB", held / MiB, N, peak / MiB);
  for (int i = 0; i < N; i++) hak_free(b[i]);
}

/* On 4 KiB pages (run with HAKMEM_THP=0): a calloc that reuses a mapping
 * whose last block was only read leaves its pages on the zero page (the
 * resident set does not grow by the block), and one that reuses a mapping
 * written sparsely (a byte somewhere in each page) still reads zero. */
static void calloc_keeps_zero_pages(void) {
  size_t n = 16 * MiB;
  unsigned char *p = hak_big_alloc(n, 0, true, NULL, 0);
  CHECK(p != NULL);
  if (!p) return;
  CHECKF(zeros(p, n), "a fresh calloc reads zero");
  hak_free(p);
  size_t rss0 = check_rss_bytes();
  unsigned long long h0 = cache_hits();
  unsigned char *q = hak_big_alloc(n, 0, true, NULL, 0);
  CHECK(q != NULL);
  if (!q) return;
  CHECKF(cache_hits() == h0 + 1, "the read mapping was reused");
  CHECKF(zeros(q, n), "the reused calloc reads zero");
  size_t rss1 = check_rss_bytes();
  CHECKF(rss1 < rss0 + n / 4, "a calloc over pages only read made %zu KiB resident (block %zu KiB)",
         (rss1 - rss0) / KiB, n / KiB);
  for (size_t i = 0; i < n; i += PAGE) q[i + (i / PAGE * 37) % PAGE] = 1;
  hak_free(q);
  unsigned char *r = hak_big_alloc(n, 0, true, NULL, 0);
  CHECK(r != NULL);
  if (!r) return;
  size_t dirty = 0;
  for (size_t i = 0; i < n; i++) dirty += r[i] != 0;
  CHECKF(dirty == 0, "a calloc over sparsely written pages left %zu bytes not zero", dirty);
  hak_free(r);
}

int main(int argc, char **argv) {
  if (argc > 1 && !strcmp(argv[1], "slow_write")) {
    slow_first_write_gives_back();
    return check_report("big_reuse slow_write");
  }
  hak_os_huge_trust(true); /* not the machine's warm memory on trial */
  if (argc > 2 && !strcmp(argv[1], "batch")) {
    batch(!strcmp(argv[2], "nothread") ? 128 : (size_t)atoi(argv[2]));
    return check_report("big_reuse batch");
  }
  if (argc > 1 && !strcmp(argv[1], "after_peak")) {
    after_peak();
    return check_report("big_reuse after_peak");
  }
  if (argc > 2 && !strcmp(argv[1], "surplus")) {
    surplus_within_budget((size_t)atoi(argv[2]));
    return check_report("big_reuse surplus");
  }
  if (argc > 1 && !strcmp(argv[1], "priorities")) {
    budget_priorities();
    return check_report("big_reuse priorities");
  }
  if (argc > 2 && !strcmp(argv[1], "busy_by_reuse")) {
    fresh_mappings_wait_for_busy(BUSY_BY_REUSE, atoi(argv[2]));
    return check_report("big_reuse busy_by_reuse");
  }
  if (argc > 1 && !strcmp(argv[1], "calloc_zero_pages")) {
    calloc_keeps_zero_pages();
    return check_report("big_reuse calloc_zero_pages");
  }
  if (argc > 2 && !strcmp(argv[1], "busy_by_density")) {
    fresh_mappings_wait_for_busy(BUSY_BY_DENSITY, atoi(argv[2]));
    return check_report("big_reuse busy_by_density");
  }
  if (argc > 2 && !strcmp(argv[1], "hugepages")) {
    fresh_mappings_wait_for_busy(BUSY_BY_VOLUME, atoi(argv[2]));
    reusing_site_gets_huge_pages(atoi(argv[2]));
    grown_block_stays_one_area(atoi(argv[2]));
    tail_on_whole_huge_page(atoi(argv[2]));
    calloc_gives_huge_pages_back(atoi(argv[2]));
    calloc_tail_given_back(atoi(argv[2]));
    return check_report("big_reuse hugepages");
  }
  fresh_mappings_wait_for_busy(BUSY_BY_VOLUME, 1);
  reusing_site_gets_huge_pages(1);
  smaller_request_reuses_the_mapping();
  calloc_after_frees_is_zero();
  grown_block_stays_one_area(1);
  tail_on_whole_huge_page(1);
  surplus_within_budget(128); /* the default HAKMEM_BIGCACHE */
  calloc_gives_huge_pages_back(1);
  calloc_tail_given_back(1);
  grown_tail_is_huge();
  pthread_t t[2];
  for (int i = 0; i < 2; i++) CHECK(pthread_create(&t[i], NULL, churn, (void *)(uintptr_t)(i + 1)) == 0);
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
  CHECKF(cache_hits() > 0, "freed Big blocks were reused");
  return check_report("big_reuse");
}
