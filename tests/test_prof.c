/* test_prof — HAKMEM_PROF=1 with HAKMEM_PROF_SAMPLE=N: at exit, one line
 * per slow-path category, `hakmem: prof CATEGORY N calls, M ns avg`, after
 * a `hakmem: prof: 1 in N slow-path events timed` header.
 *
 * The test runs itself as a child ("work" mode: Tiny, Mid, Large and Big
 * allocations; it prints its own Big counts on stdout) with various
 * settings and reads what the child printed at exit.  With
 * HAKMEM_PROF_SAMPLE=1 every event is timed, so the Big categories count
 * exactly the Big allocations and frees.  Exit 77 (skipped) in a
 * -DHAKMEM_BENCH_MINIMAL=ON build, where the profiler is compiled out. */
#define _GNU_SOURCE
#include <stdbool.h>

#include "spawn.h"

#define NBIG 6

static int child_work(void) {
  static void *p[4096];
  for (int r = 0; r < 4; r++) {
    for (int i = 0; i < 4096; i++) p[i] = malloc(16 + (size_t)(i % 100) * 40);
    for (int i = 0; i < 4096; i++) free(p[i]);
  }
  for (int i = 0; i < 64; i++) p[i] = malloc(72 * KiB + (size_t)i * 8 * KiB);
  for (int i = 0; i < 64; i++) free(p[i]);
  for (int i = 0; i < NBIG; i++) p[i] = malloc(3 * MiB + (size_t)i * MiB);
  for (int i = 0; i < NBIG; i++) free(p[i]);
  hak_stats_t s;
  hak_stats_get(&s);
  printf("big %llu %llu large %llu %llu\n", s.big_allocs, s.big_frees, s.large_allocs, s.large_frees);
  return 0;
}

/* A malloc/free loop of one Big block (BigCache hits, nothing else on a
 * slow path): the profiler times events of both kinds alike. */
#define ALTERNATE_N 25600
static int child_alternate(void) {
  for (int i = 0; i < ALTERNATE_N; i++) {
    void *p = malloc(3 * MiB);
    if (!p) return 1;
    *(volatile char *)p = 1;
    free(p);
  }
  return 0;
}

static const char *self;
static child_t ch;

/* Runs the child with env; its status must be 0. */
static void run(const char *const *env) {
  CHECK(child_start(&ch, self, "work", env) == 0);
  int status = child_finish(&ch, 30);
  CHECKF(status == 0, "child status %#x; stderr:\n%s", status, ch.ebuf);
}

typedef struct {
  unsigned long long calls, ns;
  int lines;
} prof_line_t;

/* The figures of one category in text. */
static prof_line_t prof_of(const char *text, const char *category) {
  prof_line_t r = {0, 0, 0};
  for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
    char name[32];
    unsigned long long calls, ns;
    if (sscanf(l, "hakmem: prof %31s %llu calls, %llu ns avg", name, &calls, &ns) == 3 &&
        !strcmp(name, category)) {
      r.calls = calls, r.ns = ns;
      r.lines++;
    }
  }
  return r;
}

static void check_category(const char *text, const char *cat, unsigned long long lo, unsigned long long hi) {
  prof_line_t p = prof_of(text, cat);
  CHECKF(p.lines == 1, "%d lines for category %s:\n%s", p.lines, cat, text);
  CHECKF(p.calls >= lo && p.calls <= hi, "%s: %llu calls, expected %llu to %llu", cat, p.calls, lo, hi);
  CHECKF(p.ns < 1000000000ull, "%s: %llu ns avg", cat, p.ns);
}

/* Every slow-path event timed: the categories the work hits all appear,
 * and the Big ones count exactly what the child's statistics say. */
static void prof_every_event(void) {
  const char *env[] = {"HAKMEM_PROF=1", "HAKMEM_PROF_SAMPLE=1", NULL};
  run(env);
  CHECKF(count_lines(ch.ebuf, "hakmem: prof: 1 in 1 slow-path events timed") == 1,
         "no (or more than one) profiler header:\n%s", ch.ebuf);
  unsigned long long ba = 0, bf = 0, la = 0, lf = 0;
  CHECKF(sscanf(ch.obuf, "big %llu %llu large %llu %llu", &ba, &bf, &la, &lf) == 4, "child said: %s", ch.obuf);
  CHECK(ba >= NBIG && bf >= NBIG && la >= 64 && lf >= 64);
  check_category(ch.ebuf, "refill", 100, ~0ull);
  check_category(ch.ebuf, "slab-acquire", 1, ~0ull);
  check_category(ch.ebuf, "os-call", 1, ~0ull);
  check_category(ch.ebuf, "large-alloc", 1, la);
  check_category(ch.ebuf, "large-free", 1, lf);
  check_category(ch.ebuf, "big-alloc", ba, ba);
  check_category(ch.ebuf, "big-free", bf, bf);
  /* Mapping fresh memory is not free: Big allocations take some time. */
  CHECKF(prof_of(ch.ebuf, "big-alloc").ns > 0, "big-alloc: 0 ns avg");
  CHECKF(count_lines(ch.ebuf, "hakmem: prof ") == count_lines(ch.ebuf, "hakmem: prof") - 1,
         "stray profiler lines:\n%s", ch.ebuf);
}

/* One in 64 (the default): far fewer events timed. */
static void prof_sampled(void) {
  const char *env[] = {"HAKMEM_PROF=1", NULL};
  run(env);
  CHECKF(count_lines(ch.ebuf, "hakmem: prof: 1 in 64 slow-path events timed") == 1,
         "no profiler header for the default sampling:\n%s", ch.ebuf);
  const char *env1[] = {"HAKMEM_PROF=1", "HAKMEM_PROF_SAMPLE=1", NULL};
  const char *env64[] = {"HAKMEM_PROF=1", "HAKMEM_PROF_SAMPLE=64", NULL};
  run(env64);
  unsigned long long r64 = prof_of(ch.ebuf, "refill").calls;
  run(env1);
  unsigned long long r1 = prof_of(ch.ebuf, "refill").calls;
  CHECKF(r1 > 0 && r64 * 16 < r1, "refill: %llu timed 1 in 64, %llu timed 1 in 1", r64, r1);
}

/* Sampled, each category's share of the timed events is its share of the
 * events: a loop that alternates two kinds of event (a Big malloc, a Big
 * free) gets both timed about equally often (a fixed gap, even, timed one
 * kind only). */
static void prof_no_aliasing(void) {
  const char *env[] = {"HAKMEM_PROF=1", "HAKMEM_PROF_SAMPLE=64", NULL};
  CHECK(child_start(&ch, self, "alternate", env) == 0);
  int status = child_finish(&ch, 30);
  CHECKF(status == 0, "child status %#x; stderr:\n%s", status, ch.ebuf);
  unsigned long long expect = ALTERNATE_N / 64; /* 400 each, 3.5 % their standard deviation */
  check_category(ch.ebuf, "big-alloc", expect * 7 / 10, expect * 13 / 10);
  check_category(ch.ebuf, "big-free", expect * 7 / 10, expect * 13 / 10);
}

/* Off: not a word.  HAKMEM_PROF_SAMPLE alone does not turn it on. */
static void prof_off(void) {
  const char *none[] = {NULL};
  run(none);
  CHECKF(ch.elen == 0, "stderr should be empty:\n%s", ch.ebuf);
  const char *sample[] = {"HAKMEM_PROF_SAMPLE=1", NULL};
  run(sample);
  CHECKF(ch.elen == 0, "stderr should be empty:\n%s", ch.ebuf);
  const char *off[] = {"HAKMEM_PROF=0", "HAKMEM_STATS=1", NULL};
  run(off);
  CHECKF(count_lines(ch.ebuf, "hakmem: --- ") == 1 && count_lines(ch.ebuf, "hakmem: prof") == 0,
         "HAKMEM_STATS=1 alone: a summary and no profile expected:\n%s", ch.ebuf);
}

/* With HAKMEM_STATS_FILE the profile goes to the file too. */
static void prof_to_file(void) {
  char path[] = "/tmp/hakmem-test-prof.XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  if (fd < 0) return;
  char var[64];
  snprintf(var, sizeof var, "HAKMEM_STATS_FILE=%s", path);
  const char *env[] = {"HAKMEM_PROF=1", "HAKMEM_PROF_SAMPLE=1", var, NULL};
  run(env);
  static char text[16384];
  ssize_t n = pread(fd, text, sizeof text - 1, 0);
  text[n > 0 ? n : 0] = 0;
  close(fd);
  unlink(path);
  CHECKF(ch.elen == 0, "stderr should be empty:\n%s", ch.ebuf);
  CHECKF(count_lines(text, "hakmem: prof: 1 in 1 ") == 1, "no profile in the file:\n%s", text);
  check_category(text, "big-alloc", NBIG, ~0ull);
}

int main(int argc, char **argv) {
  if (argc == 2 && !strcmp(argv[1], "work")) return child_work();
  if (argc == 2 && !strcmp(argv[1], "alternate")) return child_alternate();
  self = argv[0];
  if (hak_build_minimal()) {
    printf("SKIP: the profiler is compiled out (-DHAKMEM_BENCH_MINIMAL=ON)\n");
    return 77;
  }
  section_select(argc, argv);
  check_hakmem_active();
  RUN_SECTION(prof_every_event);
  RUN_SECTION(prof_sampled);
  RUN_SECTION(prof_no_aliasing);
  RUN_SECTION(prof_off);
  RUN_SECTION(prof_to_file);
  return check_report("prof");
}
