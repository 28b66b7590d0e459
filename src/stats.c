/* Statistics: the rows of stats.def collected from per-thread, process-wide
 * and OS counters, and written out as the readable summary and as JSON.
 * Everything below that names a statistic is generated from stats.def. */
#define _GNU_SOURCE
#include "stats.h"

#include <stddef.h>
#include <string.h>

#include "internal.h"
#include "msg.h"
#include "os.h"

hak_global_stats_t hak_gstats;

#define LOAD(c) atomic_load_explicit(&(c), memory_order_relaxed)

/* ---- the public struct is stats.def's rows, in order ------------------ */
typedef struct stats_layout {
  unsigned version, nclasses;
  hak_class_stats_t cls[HAK_STATS_NCLASSES];
#define HAK_STAT(name, ...) unsigned long long name;
#define HAK_STAT_INTERNAL(field, src)
#include "stats.def"
#undef HAK_STAT
#undef HAK_STAT_INTERNAL
} stats_layout_t;
_Static_assert(sizeof(stats_layout_t) == sizeof(hak_stats_t), "hak_stats_t and stats.def disagree");
_Static_assert(HAK_STATS_NCLASSES == HAK_NCLASS, "hak_stats_t has a slot per size class");
#define HAK_STAT(name, ...)                                                            \
  _Static_assert(offsetof(stats_layout_t, name) == offsetof(hak_stats_t, name), \
                 "hak_stats_t." #name " is not where stats.def puts it");
#define HAK_STAT_INTERNAL(field, src)
#include "stats.def"
#undef HAK_STAT
#undef HAK_STAT_INTERNAL

/* ---- folding and collecting --------------------------------------------- */

#define FOLD_HEAP(f)                                                          \
  if (LOAD(from->f)) atomic_fetch_add_explicit(&into->f, LOAD(from->f), memory_order_relaxed);
#define FOLD_GLOBAL(f)
#define FOLD_OS(f)
#define FOLD_MISUSE(f)
#define FOLD_PROC(f)

/* An exiting thread's counters into `dead` (under the registry lock). */
void hak_heap_stats_add(hak_heap_stats_t *into, const hak_heap_stats_t *from) {
  for (unsigned c = 0; c < HAK_NCLASS; c++) {
    FOLD_HEAP(cls[c].allocs)
    FOLD_HEAP(cls[c].frees)
    FOLD_HEAP(cls[c].remote_frees)
    FOLD_HEAP(cls[c].refills)
    FOLD_HEAP(carves[c])
  }
  for (unsigned b = 0; b < HAK_LB_BINS; b++) FOLD_HEAP(lb_size[b])
#define HAK_STAT(name, src, field, ...) FOLD_##src(field)
#define HAK_STAT_INTERNAL(field, src) FOLD_##src(field)
#include "stats.def"
#undef HAK_STAT
#undef HAK_STAT_INTERNAL
}

/* Per-thread counters summed over all heaps, plain numbers. */
#define SUM_FIELD_HEAP(f) unsigned long long f;
#define SUM_FIELD_GLOBAL(f)
#define SUM_FIELD_OS(f)
#define SUM_FIELD_MISUSE(f)
#define SUM_FIELD_PROC(f)
typedef struct heap_sum {
  hak_class_stats_t cls[HAK_NCLASS];
#define HAK_STAT(name, src, field, ...) SUM_FIELD_##src(field)
#define HAK_STAT_INTERNAL(field, src) SUM_FIELD_##src(field)
#include "stats.def"
#undef HAK_STAT
#undef HAK_STAT_INTERNAL
} heap_sum_t;

#define SUM_HEAP(f) o->f += LOAD(st->f);
#define SUM_GLOBAL(f)
#define SUM_OS(f)
#define SUM_MISUSE(f)
#define SUM_PROC(f)
static void add_heap(const hak_heap_stats_t *st, void *arg) {
  heap_sum_t *o = arg;
  for (unsigned c = 0; c < HAK_NCLASS; c++) {
    o->cls[c].allocs += LOAD(st->cls[c].allocs);
    o->cls[c].frees += LOAD(st->cls[c].frees);
    o->cls[c].remote_frees += LOAD(st->cls[c].remote_frees);
    o->cls[c].refills += LOAD(st->cls[c].refills);
  }
#define HAK_STAT(name, src, field, ...) SUM_##src(field)
#define HAK_STAT_INTERNAL(field, src) SUM_##src(field)
#include "stats.def"
#undef HAK_STAT
#undef HAK_STAT_INTERNAL
}

/* ---- the controller's view: volume and mix ----------------------------- */

static void add_learn(const hak_heap_stats_t *st, void *arg) {
  hak_learn_counts_t *o = arg;
  for (unsigned c = 0; c < HAK_NCLASS; c++) {
    o->allocs[c] += LOAD(st->cls[c].allocs);
    o->refills[c] += LOAD(st->cls[c].refills);
    o->carves[c] += LOAD(st->carves[c]);
  }
  for (unsigned b = 0; b < HAK_LB_BINS; b++) o->lb_size[b] += LOAD(st->lb_size[b]);
  o->realloc_copied += LOAD(st->realloc_copied);
}

void hak_stats_learn(hak_learn_counts_t *o) {
  memset(o, 0, sizeof *o);
  hak_heaps_foreach(add_learn, o, false);
}

HAK_EXPORT int hak_stats_get(hak_stats_t *o) {
  if (!o) return -1;
  hak_stats_collect(o, false);
  return 0;
}

#define READ_HEAP(f) sum.f
#define READ_GLOBAL(f) LOAD(hak_gstats.f)
#define READ_OS(f) LOAD(hak_os.f)
#define READ_MISUSE(f) LOAD(hak_misuse.f)
#define READ_PROC(f) 0

/* In a signal handler the interrupted thread may be inside the allocator:
 * its slabs are not touched and the heap registry is only tried. */
bool hak_stats_collect(hak_stats_t *o, bool in_signal) {
  memset(o, 0, sizeof *o);
  o->version = HAK_STATS_VERSION;
  o->nclasses = HAK_NCLASS;
  /* The calling thread's slabs are brought up to date: its figures are exact. */
  if (!in_signal) hak_heap_sync_stats(hak_tls_heap);
  heap_sum_t sum;
  memset(&sum, 0, sizeof sum);
  bool complete = hak_heaps_foreach(add_heap, &sum, in_signal);
#define HAK_STAT(name, src, field, ...) o->name = READ_##src(field);
#define HAK_STAT_INTERNAL(field, src)
#include "stats.def"
#undef HAK_STAT
#undef HAK_STAT_INTERNAL
  unsigned long long small_live = 0;
  for (unsigned c = 0; c < HAK_NCLASS; c++) {
    o->cls[c] = sum.cls[c];
    o->cls[c].block_size = hak_class_size(c);
    if (o->cls[c].allocs > o->cls[c].frees)
      small_live += (o->cls[c].allocs - o->cls[c].frees) * o->cls[c].block_size;
  }
  o->live_bytes = small_live + sum.large_live + LOAD(hak_gstats.big_live);
  o->rss = hak_os_rss();
  size_t peak;
  uint64_t faults;
  hak_os_usage(&peak, &faults);
  /* The kernel updates its peak lazily: never report one below the RSS. */
  o->peak_rss = peak > o->rss ? peak : o->rss;
  o->page_faults = faults;
  return complete;
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

/* ---- the readable summary ------------------------------------------------ */

static void fmt_value(char *buf, size_t cap, unsigned long long v, bool bytes) {
  if (!bytes) hak_fmt(buf, cap, "%llu", v);
  else if (v >= (10ull << 30)) hak_fmt(buf, cap, "%llu GiB", v >> 30);
  else if (v >= (10ull << 20)) hak_fmt(buf, cap, "%llu MiB", v >> 20);
  else if (v >= (10ull << 10)) hak_fmt(buf, cap, "%llu KiB", v >> 10);
  else hak_fmt(buf, cap, "%llu B", v);
}

typedef struct stat_row {
  const char *line, *label;
  size_t offset;
  bool bytes;
} stat_row_t;

static const stat_row_t stat_rows[] = {
#define HAK_STAT(name, src, field, jgroup, jkey, line, label, unit) \
  {line, label, offsetof(hak_stats_t, name), #unit[0] == 'B'},
#define HAK_STAT_INTERNAL(field, src)
#include "stats.def"
#undef HAK_STAT
#undef HAK_STAT_INTERNAL
};
#define NROWS (sizeof stat_rows / sizeof stat_rows[0])

static unsigned long long row_value(const hak_stats_t *st, const stat_row_t *r) {
  return *(const unsigned long long *)((const char *)st + r->offset);
}

HAK_EXPORT void hak_stats_print(int fd) { hak_stats_write(fd, false); }

/* One line per tier of small blocks, then one per `line` of stats.def:
 *   hakmem: large    allocs 12, frees 10, cache hits 8, misses 4 */
void hak_stats_write(int fd, bool in_signal) {
  hak_stats_t st;
  bool complete = hak_stats_collect(&st, in_signal);
  char comm[32] = "?";
  hak_os_comm(comm, sizeof comm);
  hak_fdprintf(fd, "hakmem: --- %s (pid %d) ---\n", comm, hak_os_pid());
  unsigned long long t[2][3] = {{0}};
  for (unsigned c = 0; c < HAK_NCLASS; c++) {
    unsigned k = c >= HAK_NTINY;
    t[k][0] += st.cls[c].allocs, t[k][1] += st.cls[c].frees, t[k][2] += st.cls[c].remote_frees;
  }
  for (unsigned k = 0; k < 2; k++)
    hak_fdprintf(fd, "hakmem: %-8s allocs %llu, frees %llu, remote frees %llu\n", k ? "mid" : "tiny",
                 t[k][0], t[k][1], t[k][2]);
  char buf[512];
  size_t n = 0;
  for (size_t i = 0; i < NROWS; i++) {
    const stat_row_t *r = &stat_rows[i];
    bool first = i == 0 || strcmp(stat_rows[i - 1].line, r->line) != 0;
    char v[32];
    fmt_value(v, sizeof v, row_value(&st, r), r->bytes);
    if (first) n = hak_fmt(buf, sizeof buf, "hakmem: %-8s %s %s", r->line, r->label, v);
    else n += hak_fmt(buf + n, sizeof buf - n, ", %s %s", r->label, v);
    if (i + 1 == NROWS || strcmp(stat_rows[i + 1].line, r->line) != 0) hak_fdprintf(fd, "%s\n", buf);
  }
  if (!complete)
    hak_fdprintf(fd, "hakmem: (per-thread counters left out: the allocator was busy when the signal came)\n");
}

HAK_EXPORT int hak_build_minimal(void) { return HAKMEM_BENCH_MINIMAL; }

/* ---- JSON: one object, written with the no-allocation formatter --------- */

typedef struct json_row {
  const char *group, *key;
  size_t offset;
} json_row_t;

static const json_row_t json_rows[] = {
#define HAK_STAT(name, src, field, jgroup, jkey, ...) {jgroup, jkey, offsetof(hak_stats_t, name)},
#define HAK_STAT_INTERNAL(field, src)
#include "stats.def"
#undef HAK_STAT
#undef HAK_STAT_INTERNAL
};

/* One JSON object: the program, then the rows of stats.def. */
static void stats_json(hak_sink_t *j, const hak_stats_t *st, bool complete) {
  char comm[32] = "?";
  hak_os_comm(comm, sizeof comm);
  hak_sink_printf(j, "{\"version\":%u,\"program\":\"", st->version);
  for (const char *c = comm; *c; c++) /* a process name has no quotes to speak of */
    hak_sink_printf(j, "%c", *c == '"' || *c == '\\' || (unsigned char)*c < 0x20 ? '?' : *c);
  hak_sink_printf(j, "\",\"pid\":%d,\"complete\":%s,\"classes\":[", hak_os_pid(), complete ? "true" : "false");
  for (unsigned c = 0; c < st->nclasses; c++)
    hak_sink_printf(j, "%s{\"size\":%llu,\"allocs\":%llu,\"frees\":%llu,\"remote_frees\":%llu,\"refills\":%llu}",
                    c ? "," : "", st->cls[c].block_size, st->cls[c].allocs, st->cls[c].frees,
                    st->cls[c].remote_frees, st->cls[c].refills);
  hak_sink_printf(j, "]");
  const char *open = "";
  for (size_t i = 0; i < sizeof json_rows / sizeof json_rows[0]; i++) {
    const json_row_t *r = &json_rows[i];
    unsigned long long v = *(const unsigned long long *)((const char *)st + r->offset);
    bool in_group = *open != 0;
    if (strcmp(open, r->group) != 0) {
      if (in_group) hak_sink_printf(j, "}");
      if (*r->group) hak_sink_printf(j, ",\"%s\":{\"%s\":%llu", r->group, r->key, v);
      else hak_sink_printf(j, ",\"%s\":%llu", r->key, v);
      open = r->group;
      continue;
    }
    hak_sink_printf(j, ",\"%s\":%llu", r->key, v);
  }
  if (*open) hak_sink_printf(j, "}");
  hak_sink_printf(j, "}");
}

HAK_EXPORT size_t hak_stats_json(char *buf, size_t cap) {
  hak_stats_t st;
  bool complete = hak_stats_collect(&st, false);
  hak_sink_t j = {.buf = buf, .cap = buf ? cap : 0, .fd = -1};
  if (j.cap) buf[0] = 0;
  stats_json(&j, &st, complete);
  return j.total;
}

void hak_stats_write_json(int fd, bool in_signal) {
  hak_stats_t st;
  bool complete = hak_stats_collect(&st, in_signal);
  char buf[2048];
  hak_sink_t j = {.buf = buf, .cap = sizeof buf, .fd = fd};
  stats_json(&j, &st, complete);
  hak_sink_printf(&j, "\n");
  hak_sink_flush(&j);
}
