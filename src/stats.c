/* Figures gathered from the OS layer and the caches, and the summary that
 * `HAKMEM_STATS=1` and malloc_stats() print. */
#include "stats.h"

#include <string.h>

#include "internal.h"
#include "msg.h"
#include "os.h"


HAK_EXPORT void hak_usage(hak_usage_t *u) {
  memset(u, 0, sizeof *u);
  u->mapped = atomic_load_explicit(&hak_os.mapped, memory_order_relaxed);
  u->committed = atomic_load_explicit(&hak_os.committed, memory_order_relaxed);
  u->peak_committed = atomic_load_explicit(&hak_os.peak_committed, memory_order_relaxed);
  u->big_cached = hak_big_cached_bytes();
  u->os_mmap = atomic_load_explicit(&hak_os.n_mmap, memory_order_relaxed);
  u->os_munmap = atomic_load_explicit(&hak_os.n_munmap, memory_order_relaxed);
  u->os_madvise = atomic_load_explicit(&hak_os.n_madvise, memory_order_relaxed);
}

static void print_bytes(char *buf, size_t cap, size_t v) {
  if (v >= ((size_t)10 << 30)) hak_fmt(buf, cap, "%zu GiB", v >> 30);
  else if (v >= ((size_t)10 << 20)) hak_fmt(buf, cap, "%zu MiB", v >> 20);
  else if (v >= ((size_t)10 << 10)) hak_fmt(buf, cap, "%zu KiB", v >> 10);
  else hak_fmt(buf, cap, "%zu B", v);
}

void hak_stats_print(int fd) {
  hak_usage_t u;
  hak_usage(&u);
  char a[32], b[32], c[32], d[32];
  print_bytes(a, sizeof a, u.mapped);
  print_bytes(b, sizeof b, u.committed);
  print_bytes(c, sizeof c, u.peak_committed);
  print_bytes(d, sizeof d, hak_os_rss());
  hak_fdprintf(fd, "hakmem: mapped %s, committed %s (peak %s), process RSS %s\n", a, b, c, d);
  print_bytes(a, sizeof a, u.big_cached);
  print_bytes(b, sizeof b, hak_large_cached_bytes());
  hak_fdprintf(fd, "hakmem: cached: Big %s, Large %s; kernel calls: mmap %zu, munmap %zu, madvise %zu\n",
               a, b, u.os_mmap, u.os_munmap, u.os_madvise);
}
