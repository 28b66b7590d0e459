/* large_huge: Large spans are put on huge pages once the tier holds 32 MiB
 * of them (src/large.c, LARGE_HUGE_MIN), or 4 MiB that are at least half of
 * all the allocator has committed (LARGE_HUGE_DENSE: a program made of
 * Large spans; checked first, then with 40 MiB of small blocks beside the
 * spans, which keep them under half), and a purge that leaves part of a
 * 2 MiB half resident takes the request back (khugepaged would fill the
 * half in again).  Checked through the VmFlags of /proc/self/smaps ("hg");
 * contents must survive the huge pages being split by purges around them.
 * `test_large_huge nothp` (run with HAKMEM_THP=0): nothing is asked.
 * Those checks trust huge pages whatever their first writes cost
 * (hak_os_huge_trust); `test_large_huge probe` checks the verdict on
 * those costs (src/os.c): two slow first writes more than fast ones give
 * huge pages up, a fast one takes them back, and a second later one
 * mapping asks again; a slow first write also takes the request back
 * from its mapping.  Links the static hak_* library (hak_trim purges at
 * once; the OS layer's hooks). */
#include <string.h>
#include <unistd.h>

#include "../src/os.h"
#include "check.h"

#define KiB ((size_t)1 << 10)
#define SPAN (960 * KiB) /* 240 pages: four to a 4 MiB segment */
#define N 56             /* 52.5 MiB: the last segments come after 32 MiB */
#define BEFORE ((int)(((size_t)32 << 20) / SPAN)) /* spans placed while the tier held less */

static void fill(unsigned char *p, unsigned char tag) {
  for (size_t i = 0; i < SPAN; i += 512) p[i] = (unsigned char)(tag + i / 512);
}
static int holds(const unsigned char *p, unsigned char tag) {
  for (size_t i = 0; i < SPAN; i += 512)
    if (p[i] != (unsigned char)(tag + i / 512)) return 0;
  return 1;
}

/* Spans s[0..n), each filled with its tag; 0 if one could not be had. */
static int place(unsigned char **s, int n) {
  for (int i = 0; i < n; i++) {
    s[i] = hak_malloc(SPAN);
    CHECK(s[i] != NULL);
    if (!s[i]) return 0;
    fill(s[i], (unsigned char)i);
  }
  return 1;
}

#define SMALL 256
#define NSMALL ((int)(((size_t)40 << 20) / SMALL))

#define FAST_NS 200000u  /* a warm huge page: 0.1-0.4 ms */
#define SLOW_NS 6000000u /* one the host must fault in: 3-10 ms */

/* The verdict, fed first-write times, and what it does to a program of
 * Large spans (which asks once the tier holds 4 MiB, all the memory). */
static void probe(void) {
  CHECKF(hak_os_huge_pays(), "huge pages given up before any was written");
  hak_os_huge_note(FAST_NS);
  hak_os_huge_note(SLOW_NS);
  CHECKF(hak_os_huge_pays(), "one slow first write after a fast one gives huge pages up");
  hak_os_huge_note(SLOW_NS);
  CHECKF(!hak_os_huge_pays(), "two slow first writes more than fast ones keep huge pages");
  hak_os_huge_note(FAST_NS);
  CHECKF(hak_os_huge_pays(), "a fast first write does not take huge pages back");
  hak_os_huge_note(SLOW_NS);
  CHECKF(!hak_os_huge_pays(), "slow first writes in the majority again keep huge pages");
  unsigned char *s[9];
  if (!place(s, 9)) return;
  int hg = asked_huge(s[8]);
  if (hg >= 0) CHECKF(hg == 0, "a span placed after huge pages were given up asks for them (VmFlags hg: %d)", hg);
  for (int i = 0; i < 9; i++) {
    CHECKF(holds(s[i], (unsigned char)i), "span %d lost its contents", i);
    hak_free(s[i]);
  }
  usleep(1100 * 1000);
  CHECKF(hak_os_huge_pays(), "no mapping asks again a second after huge pages were given up");
  hak_os_huge_note(SLOW_NS);
  CHECKF(!hak_os_huge_pays(), "a slow answer to asking again does not give huge pages up");
  /* Whatever the verdict: a slow first write takes the request back from
   * its mapping (cold too), a fast one leaves it. */
  for (int slow = 0; slow < 2; slow++) {
    size_t len = (size_t)8 << 20;
    unsigned char *m = hak_os_map_aligned(len, HAK_HUGE_PAGE);
    CHECK(m != NULL);
    if (!m) return;
    hak_os_huge_fake_next(slow ? SLOW_NS : FAST_NS);
    bool kept = hak_os_hugepage_fresh(m, len);
    CHECKF(kept == !slow, "a %s first write: the request %s", slow ? "slow" : "fast", kept ? "kept" : "taken back");
    int head = asked_huge(m), rest = asked_huge(m + (6 << 20));
    if (head >= 0)
      CHECKF(head == !slow && rest == !slow, "after a %s first write the mapping asks for huge pages: head %d, rest %d",
             slow ? "slow" : "fast", head, rest);
    CHECKF(m[0] == 0, "the first write did not leave a zero byte");
    hak_os_unmap(m, len);
  }
}

int main(int argc, char **argv) {
  if (argc > 1 && !strcmp(argv[1], "probe")) {
    probe();
    return check_report("large_huge probe");
  }
  hak_os_huge_trust(true);
  int want = !(argc > 1 && !strcmp(argv[1], "nothp"));
  unsigned char *s[N];
  /* A program of Large spans alone: the first do not ask, those placed
   * once the tier holds 4 MiB (all of the memory) do. */
  if (!place(s, 9)) return check_report("large_huge");
  int dense = asked_huge(s[8]);
  if (dense >= 0) {
    CHECKF(asked_huge(s[0]) == 0, "the first span asks for huge pages");
    CHECKF(dense == want, "a span placed after %zu KiB of spans, all the memory, %s huge pages (VmFlags hg: %d)",
           8 * SPAN >> 10, want ? "does not ask for" : "asks for", dense);
  }
  for (int i = 0; i < 9; i++) {
    CHECKF(holds(s[i], (unsigned char)i), "span %d lost its contents", i);
    hak_free(s[i]);
  }
  hak_trim();
  /* Then small blocks beside them: the spans stay under half of the
   * memory, and only the 32 MiB rule applies. */
  static void *small[NSMALL];
  for (int i = 0; i < NSMALL; i++) {
    small[i] = hak_malloc(SMALL);
    CHECK(small[i] != NULL);
    if (!small[i]) return check_report("large_huge");
    memset(small[i], 1, SMALL);
  }
  if (!place(s, N)) return check_report("large_huge");
  int last = asked_huge(s[N - 1]);
  if (last < 0) {
    printf("large_huge: no VmFlags in /proc/self/smaps, huge-page requests not checked\n");
  } else {
    for (int i = 0; i < BEFORE; i++)
      CHECKF(asked_huge(s[i]) == 0, "span %d (the tier held %zu KiB) asks for huge pages", i, i * SPAN >> 10);
    CHECKF(last == want, "a span placed after %zu MiB of spans %s huge pages (VmFlags hg: %d)",
           (N - 1) * SPAN >> 20, want ? "does not ask for" : "asks for", last);
  }
  /* Holes in the late segments, purged at once: their halves stay part
   * resident (the live spans around them), and so must stop asking. */
  unsigned char *hole[6];
  int nh = 0;
  for (int i = N - 16; i < N; i += 3) {
    hole[nh++] = s[i];
    hak_free(s[i]);
    s[i] = NULL;
  }
  hak_trim();
  for (int i = 0; i < N; i++)
    if (s[i]) CHECKF(holds(s[i], (unsigned char)i), "span %d lost its contents when pages near it went back", i);
  for (int k = 0; k < nh; k++) {
    int hg = asked_huge(hole[k]);
    if (hg >= 0) CHECKF(hg == 0, "a half with a purged hole still asks for huge pages (hole %d)", k);
  }
  /* All gone and purged: the tier holds one span again, which must not
   * ask (the count of the tier's pages came back down). */
  for (int i = 0; i < N; i++) hak_free(s[i]);
  hak_trim();
  unsigned char *one = hak_malloc(SPAN);
  CHECK(one != NULL);
  int hg = one ? asked_huge(one) : -1;
  if (hg >= 0) CHECKF(hg == 0, "a lone span after everything went back asks for huge pages");
  hak_free(one);
  for (int i = 0; i < NSMALL; i++) hak_free(small[i]);
  return check_report("large_huge");
}
