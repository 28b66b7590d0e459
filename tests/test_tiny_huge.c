/* tiny_huge: a heap's fresh Tiny segments are put on huge pages once its
 * Tiny segments have 3 MiB of slabs in use (src/segment.c, SEG_HUGE_USED:
 * from the second segment of a heap that fills them), Mid segments never,
 * and a purge takes the request back from the 2 MiB halves it touches
 * (khugepaged would fill them in again).  Checked through the VmFlags of
 * /proc/self/smaps ("hg"); contents must survive the purges around them.
 * `test_tiny_huge nothp` (run with HAKMEM_THP=0): nothing is asked.
 * Links the static hak_* library (hak_trim purges at once). */
#include <pthread.h>
#include <string.h>

#include "../src/os.h"
#include "check.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define TINY 64
#define NT ((int)(28 * MiB / TINY)) /* seven segments' worth */
#define MID (32 * KiB)
#define NM ((int)(40 * MiB / MID))
#define SLAB (64 * KiB) /* a Tiny slab, aligned in its segment */

static unsigned char *t[NT];
static unsigned char *m[NM];

static unsigned char tag(const void *p) { return (unsigned char)((uintptr_t)p >> 6); }

/* A thread's first Tiny block: its heap holds no segment yet. */
static void *sparse(void *out) {
  void *p = hak_malloc(TINY);
  *(int *)out = p ? asked_huge(p) : -2;
  hak_free(p);
  return NULL;
}

int main(int argc, char **argv) {
  hak_os_huge_trust(true); /* not the machine's warm memory on trial */
  int want = !(argc > 1 && !strcmp(argv[1], "nothp"));
  for (int i = 0; i < NT; i++) {
    t[i] = hak_malloc(TINY);
    CHECK(t[i] != NULL);
    if (!t[i]) return check_report("tiny_huge");
    memset(t[i], tag(t[i]), TINY);
  }
  for (int i = 0; i < NM; i++) {
    m[i] = hak_malloc(MID);
    CHECK(m[i] != NULL);
    if (!m[i]) return check_report("tiny_huge");
    memset(m[i], tag(m[i]), MID);
  }
  unsigned char *late = t[NT - 1];
  int first = asked_huge(t[0]), last = asked_huge(late);
  if (first < 0 || last < 0) {
    printf("tiny_huge: no VmFlags in /proc/self/smaps, huge-page requests not checked\n");
  } else {
    CHECKF(first == 0, "the heap's first Tiny segment asks for huge pages");
    CHECKF(asked_huge(t[NT / 28 * 6]) == want, "the heap's second Tiny segment (6 MiB in) %s huge pages",
           want ? "does not ask for" : "asks for");
    CHECKF(last == want, "a Tiny segment mapped after %zu MiB of them %s huge pages (VmFlags hg: %d)",
           (size_t)NT * TINY / MiB, want ? "does not ask for" : "asks for", last);
    for (int i = 0; i < NM; i++)
      CHECKF(asked_huge(m[i]) == 0, "Mid block %d (%zu MiB of them) asks for huge pages", i, (size_t)i * MID / MiB);
  }
  /* A hole of one whole slab in a late segment (the sixth), purged at
   * once: the half around it stays part resident, and so must stop asking. */
  uintptr_t lo = (uintptr_t)t[NT / 4 * 3] & ~(uintptr_t)(SLAB - 1);
  if (first >= 0) CHECKF(asked_huge((void *)lo) == want, "the sixth Tiny segment: huge pages asked %d", !want);
  int freed = 0;
  for (int i = 0; i < NT; i++)
    if ((uintptr_t)t[i] >= lo && (uintptr_t)t[i] < lo + SLAB) {
      hak_free(t[i]);
      t[i] = NULL;
      freed++;
    }
  CHECKF(freed > 0, "no block in the slab at %#lx", (unsigned long)lo);
  hak_trim();
  for (int i = 0; i < NT; i++)
    if (t[i]) {
      int ok = 1;
      for (size_t k = 0; k < TINY; k++) ok &= t[i][k] == tag(t[i]);
      CHECKF(ok, "Tiny block %d lost its contents when a slab near it went back", i);
      if (!ok) break;
    }
  for (int i = 0; i < NM; i++) CHECKF(m[i][0] == tag(m[i]) && m[i][MID - 1] == tag(m[i]), "Mid block %d lost its contents", i);
  int hg = asked_huge((void *)lo);
  if (hg >= 0) CHECKF(hg == 0, "a half with a purged slab still asks for huge pages");
  for (int i = 0; i < NT; i++) hak_free(t[i]);
  for (int i = 0; i < NM; i++) hak_free(m[i]);
  /* The emptied segments wait in the cache, the last (asking) one first:
   * a thread with no segment that takes it must not keep the request. */
  pthread_t th;
  int got = -2;
  CHECK(pthread_create(&th, NULL, sparse, &got) == 0);
  pthread_join(th, NULL);
  CHECK(got != -2);
  if (got >= 0) CHECKF(got == 0, "a sparse heap's segment from the cache asks for huge pages");
  return check_report("tiny_huge");
}
