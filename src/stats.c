/* Statistics: per-thread counters merged on demand, process-wide counters,
 * and the two writers (readable summary, JSON) that share one walk. */
#define _GNU_SOURCE
#include "stats.h"

#include <string.h>
#include <sys/resource.h>

#include "internal.h"
#include "msg.h"
#include "os.h"

hak_global_stats_t hak_gstats;

#define LOAD(c) atomic_load_explicit(&(c), memory_order_relaxed)

void hak_heap_stats_add(hak_heap_stats_t *into, hak_heap_t *h) {
  for (unsigned c = 0; c < HAK_NCLASS; c++) {
    atomic_fetch_add_explicit(&into->cls[c].allocs, LOAD(h->stats.cls[c].allocs), memory_order_relaxed);
    atomic_fetch_add_explicit(&into->cls[c].frees, LOAD(h->stats.cls[c].frees), memory_order_relaxed);
    atomic_fetch_add_explicit(&into->cls[c].remote_frees, LOAD(h->stats.cls[c].remote_frees),
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&into->cls[c].refills, LOAD(h->stats.cls[c].refills), memory_order_relaxed);
  }
#define FOLD(f) atomic_fetch_add_explicit(&into->f, LOAD(h->stats.f), memory_order_relaxed)
  FOLD(slabs_acquired);
  FOLD(slabs_released);
  FOLD(large_allocs);
  FOLD(large_frees);
  FOLD(large_cache_hits);
  FOLD(large_cache_misses);
  FOLD(large_live);
#undef FOLD
}

static void add_heap(hak_heap_t *h, void *arg) {
  hak_stats_t *o = arg;
  for (unsigned c = 0; c < HAK_NCLASS; c++) {
    o->cls[c].allocs += LOAD(h->stats.cls[c].allocs);
    o->cls[c].frees += LOAD(h->stats.cls[c].frees);
    o->cls[c].remote_frees += LOAD(h->stats.cls[c].remote_frees);
    o->cls[c].refills += LOAD(h->stats.cls[c].refills);
  }
  o->slabs_acquired += LOAD(h->stats.slabs_acquired);
  o->slabs_released += LOAD(h->stats.slabs_released);
  o->large_allocs += LOAD(h->stats.large_allocs);
  o->large_frees += LOAD(h->stats.large_frees);
  o->large_cache_hits += LOAD(h->stats.large_cache_hits);
  o->large_cache_misses += LOAD(h->stats.large_cache_misses);
  o->live_bytes += LOAD(h->stats.large_live); /* the rest is added below */
}

HAK_EXPORT int hak_stats_get(hak_stats_t *o) {
  if (!o) return -1;
  hak_stats_collect(o, false);
  return 0;
}

/* In a signal handler the interrupted thread may be inside the allocator:
 * its slabs are not touched and the heap registry is only tried. */
void hak_stats_collect(hak_stats_t *o, bool in_signal) {
  memset(o, 0, sizeof *o);
  o->version = HAK_STATS_VERSION;
  o->nclasses = HAK_NCLASS;
  /* The calling thread's slabs are brought up to date: its figures are exact. */
  if (!in_signal) hak_heap_sync_stats(hak_tls_heap);
  hak_heap_t dead;
  memcpy(&dead.stats, &hak_gstats.dead, sizeof dead.stats);
  add_heap(&dead, o);
  hak_heaps_foreach(add_heap, o, in_signal);
  unsigned long long small_live = 0;
  for (unsigned c = 0; c < HAK_NCLASS; c++) {
    o->cls[c].block_size = hak_class_size(c);
    if (o->cls[c].allocs > o->cls[c].frees)
      small_live += (o->cls[c].allocs - o->cls[c].frees) * o->cls[c].block_size;
  }
  const hak_global_stats_t *g = &hak_gstats;
  o->segments_adopted = LOAD(g->segments_adopted);
  o->threads_exited = LOAD(g->threads_exited);
  o->big_allocs = LOAD(g->big_allocs);
  o->big_frees = LOAD(g->big_frees);
  o->bigcache_hits = LOAD(g->bigcache_hits);
  o->bigcache_misses = LOAD(g->bigcache_misses);
  o->invalid_frees = LOAD(g->invalid_frees);
  o->double_frees = LOAD(g->double_frees);
  o->live_bytes += small_live + LOAD(g->big_live);
  o->os_mmap = LOAD(hak_os.n_mmap);
  o->os_munmap = LOAD(hak_os.n_munmap);
  o->os_madvise = LOAD(hak_os.n_madvise);
  o->os_mremap = LOAD(hak_os.n_mremap);
  o->mapped = LOAD(hak_os.mapped);
  o->committed = LOAD(hak_os.committed);
  o->peak_committed = LOAD(hak_os.peak_committed);
  o->rss = hak_os_rss();
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) == 0) {
    o->peak_rss = (unsigned long long)ru.ru_maxrss * 1024;
    o->page_faults = (unsigned long long)ru.ru_minflt;
  }
}

HAK_EXPORT void hak_usage(hak_usage_t *u) {
  memset(u, 0, sizeof *u);
  u->mapped = LOAD(hak_os.mapped);
  u->committed = LOAD(hak_os.committed);
  u->peak_committed = LOAD(hak_os.peak_committed);
  u->big_cached = hak_big_cached_bytes();
  u->os_mmap = LOAD(hak_os.n_mmap);
  u->os_munmap = LOAD(hak_os.n_munmap);
  u->os_madvise = LOAD(hak_os.n_madvise);
}

static void fmt_bytes(char *buf, size_t cap, unsigned long long v) {
  if (v >= (10ull << 30)) hak_fmt(buf, cap, "%llu GiB", v >> 30);
  else if (v >= (10ull << 20)) hak_fmt(buf, cap, "%llu MiB", v >> 20);
  else if (v >= (10ull << 10)) hak_fmt(buf, cap, "%llu KiB", v >> 10);
  else hak_fmt(buf, cap, "%llu B", v);
}

HAK_EXPORT void hak_stats_print(int fd) { hak_stats_write(fd, false); }

void hak_stats_write(int fd, bool in_signal) {
  hak_stats_t st;
  hak_stats_collect(&st, in_signal);
  unsigned long long ta = 0, tf = 0, tr = 0, ma = 0, mf = 0;
  for (unsigned c = 0; c < HAK_NCLASS; c++) {
    if (c < HAK_NTINY) ta += st.cls[c].allocs, tf += st.cls[c].frees;
    else ma += st.cls[c].allocs, mf += st.cls[c].frees;
    tr += st.cls[c].remote_frees;
  }
  char a[32], b[32], c[32], d[32], e[32];
  char comm[32] = "?";
  hak_os_comm(comm, sizeof comm);
  hak_fdprintf(fd, "hakmem: --- %s (pid %d) ---\n", comm, hak_os_pid());
  hak_fdprintf(fd, "hakmem: %-6s %12s %12s\n", "tier", "allocs", "frees");
  hak_fdprintf(fd, "hakmem: %-6s %12llu %12llu\n", "tiny", ta, tf);
  hak_fdprintf(fd, "hakmem: %-6s %12llu %12llu\n", "mid", ma, mf);
  hak_fdprintf(fd, "hakmem: %-6s %12llu %12llu   cache hits %llu, misses %llu\n", "large",
               st.large_allocs, st.large_frees, st.large_cache_hits, st.large_cache_misses);
  hak_fdprintf(fd, "hakmem: %-6s %12llu %12llu   BigCache hits %llu, misses %llu\n", "big",
               st.big_allocs, st.big_frees, st.bigcache_hits, st.bigcache_misses);
  hak_fdprintf(fd, "hakmem: remote frees %llu, slabs taken %llu / given back %llu, threads exited %llu, segments adopted %llu\n",
               tr, st.slabs_acquired, st.slabs_released, st.threads_exited, st.segments_adopted);
  fmt_bytes(a, sizeof a, st.live_bytes);
  fmt_bytes(b, sizeof b, st.committed);
  fmt_bytes(c, sizeof c, st.peak_committed);
  fmt_bytes(d, sizeof d, st.rss);
  fmt_bytes(e, sizeof e, st.peak_rss);
  hak_fdprintf(fd, "hakmem: live %s, committed %s (peak %s), process RSS %s (peak %s)\n", a, b, c, d, e);
  fmt_bytes(a, sizeof a, st.mapped);
  hak_fdprintf(fd, "hakmem: mapped %s; kernel calls: mmap %llu, munmap %llu, madvise %llu, mremap %llu; page faults %llu\n",
               a, st.os_mmap, st.os_munmap, st.os_madvise, st.os_mremap, st.page_faults);
  if (st.invalid_frees || st.double_frees)
    hak_fdprintf(fd, "hakmem: invalid frees %llu, double frees %llu\n", st.invalid_frees, st.double_frees);
}

HAK_EXPORT int hak_build_minimal(void) { return HAKMEM_BENCH_MINIMAL; }

/* JSON: one object, written with the no-allocation formatter. */
HAK_EXPORT size_t hak_stats_json(char *buf, size_t cap) {
  hak_stats_t st;
  hak_stats_get(&st);
  hak_sink_t j = {.buf = buf, .cap = buf ? cap : 0, .fd = -1};
  if (j.cap) buf[0] = 0;
  hak_sink_printf(&j, "{\"version\":%u,\"classes\":[", st.version);
  for (unsigned c = 0; c < st.nclasses; c++)
    hak_sink_printf(&j, "%s{\"size\":%llu,\"allocs\":%llu,\"frees\":%llu,\"remote_frees\":%llu,\"refills\":%llu}",
         c ? "," : "", st.cls[c].block_size, st.cls[c].allocs, st.cls[c].frees,
         st.cls[c].remote_frees, st.cls[c].refills);
  hak_sink_printf(&j, "],\"slabs_acquired\":%llu,\"slabs_released\":%llu,\"segments_adopted\":%llu,\"threads_exited\":%llu,",
       st.slabs_acquired, st.slabs_released, st.segments_adopted, st.threads_exited);
  hak_sink_printf(&j, "\"large\":{\"allocs\":%llu,\"frees\":%llu,\"cache_hits\":%llu,\"cache_misses\":%llu},",
       st.large_allocs, st.large_frees, st.large_cache_hits, st.large_cache_misses);
  hak_sink_printf(&j, "\"big\":{\"allocs\":%llu,\"frees\":%llu,\"cache_hits\":%llu,\"cache_misses\":%llu},",
       st.big_allocs, st.big_frees, st.bigcache_hits, st.bigcache_misses);
  hak_sink_printf(&j, "\"os\":{\"mmap\":%llu,\"munmap\":%llu,\"madvise\":%llu,\"mremap\":%llu},", st.os_mmap,
       st.os_munmap, st.os_madvise, st.os_mremap);
  hak_sink_printf(&j, "\"mapped\":%llu,\"committed\":%llu,\"peak_committed\":%llu,\"live_bytes\":%llu,",
       st.mapped, st.committed, st.peak_committed, st.live_bytes);
  hak_sink_printf(&j, "\"rss\":%llu,\"peak_rss\":%llu,\"page_faults\":%llu,\"invalid_frees\":%llu,\"double_frees\":%llu}",
       st.rss, st.peak_rss, st.page_faults, st.invalid_frees, st.double_frees);
  return j.total;
}
