/* test_idle — a process that frees what it took and then waits gives it
 * back within twice the purge delay, whatever its age (the learning
 * issue's goal: RSS <= live + 8 MiB).  The controller, which returns idle
 * memory, starts in `balanced` once a process is 200 ms old, or at once
 * when it holds 128 MiB (src/learn/ace.c): this process takes 160 MiB of
 * 100 KiB blocks, most likely in less than 200 ms, frees them all and
 * sleeps.  Before that rule it kept all 160 MiB whenever it was quick. */
#define _GNU_SOURCE
#include <unistd.h>

#include "check.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(void) {
  check_hakmem_active();
  enum { N = 1600, SIZE = 100 << 10 };
  static void *p[N];
  size_t base = check_rss_bytes();
  double t0 = now();
  for (int i = 0; i < N; i++) {
    p[i] = malloc(SIZE);
    CHECK(p[i] != NULL);
    if (p[i])
      for (size_t o = 0; o < SIZE; o += 4096) ((volatile char *)p[i])[o] = 1;
  }
  size_t full = check_rss_bytes();
  for (int i = 0; i < N; i++) free(p[i]);
  double t1 = now();
  /* The default purge delay is 1 s: twice it, and half a second for a
   * loaded machine. */
  size_t rss = full;
  double waited = 0;
  while ((waited = now() - t1) < 2.5 && (rss = check_rss_bytes()) > base + ((size_t)8 << 20)) usleep(50 * 1000);
  printf("idle: %.0f ms to take and free 156 MiB; RSS %zu -> %zu -> %zu KiB after %.2f s\n", (t1 - t0) * 1000,
         base >> 10, full >> 10, rss >> 10, waited);
  CHECKF(full > base + ((size_t)120 << 20), "the blocks were not resident (%zu -> %zu KiB)", base >> 10, full >> 10);
  CHECKF(rss <= base + ((size_t)8 << 20), "idle: %zu KiB resident %.1f s after the frees (%zu before)", rss >> 10,
         waited, base >> 10);
  return check_report("idle");
}
