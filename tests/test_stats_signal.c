/* test_stats_signal — HAKMEM_STATS_SIGNAL: a running process that receives
 * the signal prints the statistics summary (to stderr, or to
 * HAKMEM_STATS_FILE) from the signal handler, and carries on.
 *
 * The test runs itself as a child ("loop" mode: two threads allocating and
 * freeing patterned blocks until stdin is closed, at most 20 s), sends it
 * SIGUSR2 three times with kill(), waiting each time for the summary, then
 * lets it finish: it must verify its blocks and exit 0. */
#define _GNU_SOURCE
#include <libgen.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/stat.h>

#include "spawn.h"

/* ------------------------------------------------------------- the child */

#define CHILD_SLOTS 512
static atomic_bool child_stop;
static atomic_ullong child_iters, child_progress;

static void *child_worker(void *arg) {
  uint64_t rng = (uint64_t)(uintptr_t)arg;
  static _Thread_local block_t slot[CHILD_SLOTS];
  unsigned long long n = 0;
  while (!atomic_load_explicit(&child_stop, memory_order_relaxed)) {
    block_t *b = &slot[rng_range(&rng, 0, CHILD_SLOTS - 1)];
    if (b->p) {
      block_free(b);
    } else {
      uint64_t r = rng_range(&rng, 0, 255);
      *b = block_new(r == 0 ? 3 * MiB : r < 8 ? rng_range(&rng, 33 * KiB, 300 * KiB)
                                              : rng_range(&rng, 1, 4 * KiB));
    }
    if ((++n & 1023) == 0) atomic_fetch_add_explicit(&child_progress, 1024, memory_order_relaxed);
  }
  for (int i = 0; i < CHILD_SLOTS; i++) block_free(&slot[i]);
  atomic_fetch_add(&child_iters, n);
  return NULL;
}

static int child_loop(void) {
  pthread_t t[2];
  for (int i = 0; i < 2; i++) CHECK(pthread_create(&t[i], NULL, child_worker, (void *)(uintptr_t)(i + 7)) == 0);
  /* Some work done (and counted at slow-path refills) before the first signal. */
  while (atomic_load(&child_progress) < 50000) usleep(1000);
  CHECK(write(1, "ready\n", 6) == 6);
  /* Until the parent closes our stdin (a signal may interrupt poll). */
  double end = now_seconds() + 20;
  while (now_seconds() < end) {
    struct pollfd p = {0, POLLIN, 0};
    int r = poll(&p, 1, 100);
    if (r > 0) {
      char c;
      if (read(0, &c, 1) <= 0) break;
    }
  }
  atomic_store(&child_stop, true);
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
  char line[64];
  int n = snprintf(line, sizeof line, "done %llu\n", (unsigned long long)atomic_load(&child_iters));
  CHECK(write(1, line, (size_t)n) == n);
  return check_failures() ? 1 : 0;
}

/* Prints "default" or "handler": SIGUSR2's disposition after start-up. */
static int child_disposition(void) {
  struct sigaction sa;
  CHECK(sigaction(SIGUSR2, NULL, &sa) == 0);
  const char *s = sa.sa_handler == SIG_DFL ? "default\n" : "handler\n";
  CHECK(write(1, s, strlen(s)) == (ssize_t)strlen(s));
  return 0;
}

/* ------------------------------------------------------------ the parent */

static const char *self;
static char header[64]; /* "hakmem: --- COMM (pid " */
static int want_summaries;

static bool ready(child_t *c) { return strstr(c->obuf, "ready\n") != NULL; }
/* The last line of a summary is the "mapped ..." one. */
static bool have_summaries(child_t *c) { return count_lines(c->ebuf, "hakmem: errors ") >= want_summaries; }

static void set_header(pid_t pid) {
  char path[256], comm[16];
  snprintf(path, sizeof path, "%s", self);
  snprintf(comm, sizeof comm, "%s", basename(path)); /* the kernel keeps 15 characters */
  snprintf(header, sizeof header, "hakmem: --- %s (pid %d) ---", comm, (int)pid);
}

/* Checks text for n summaries of the child, each with non-zero Tiny counts. */
static void check_summaries(const char *text, int n) {
  CHECKF(count_lines(text, header) == n, "expected %d summaries starting '%s', got:\n%s", n, header, text);
  CHECKF(count_lines(text, "hakmem: --- ") == n, "summaries of another process?\n%s", text);
  CHECKF(count_lines(text, "hakmem: tiny ") == n && count_lines(text, "hakmem: memory ") == n &&
             count_lines(text, "hakmem: errors ") == n,
         "incomplete summaries:\n%s", text);
  /* Other threads' counts are as of their last slow-path event; after the
   * child's warm-up, some allocations have been counted. */
  unsigned long long sum = 0;
  static const char *const tiers[] = {"hakmem: tiny ", "hakmem: mid ", "hakmem: large ", "hakmem: big "};
  for (int i = 0; i < 4; i++) {
    unsigned long long a = 0, f = 0;
    const char *l = find_line(text, tiers[i]);
    CHECKF(l && sscanf(l, " allocs %llu, frees %llu", &a, &f) == 2, "no '%s' line:\n%s", tiers[i], text);
    sum += a;
  }
  /* (In a minimal build the counters are compiled out and stay 0.) */
  CHECKF(sum > 0 || hak_build_minimal(), "no allocations counted:\n%s", text);
}

static void finish_ok(child_t *c) {
  int status = child_finish(c, 30);
  CHECKF(status != -1, "the child did not finish; stdout:\n%s\nstderr:\n%s", c->obuf, c->ebuf);
  CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child's status is %#x; stderr:\n%s", status,
         c->ebuf);
  CHECKF(strstr(c->obuf, "done ") != NULL, "the child did not carry on to its end: %s", c->obuf);
}

static child_t ch;

/* SIGUSR2 three times: three summaries on stderr, and the program goes on. */
static void signal_stderr(void) {
  const char *env[] = {"HAKMEM_STATS_SIGNAL=12", NULL};
  CHECK(child_start(&ch, self, "loop", env) == 0);
  set_header(ch.pid);
  CHECKF(child_read(&ch, 10, ready), "the child did not start: %s", ch.ebuf);
  for (want_summaries = 1; want_summaries <= 3; want_summaries++) {
    CHECK(kill(ch.pid, SIGUSR2) == 0);
    CHECKF(child_read(&ch, 10, have_summaries), "no summary %d after SIGUSR2; stderr:\n%s", want_summaries,
           ch.ebuf);
  }
  finish_ok(&ch);
  check_summaries(ch.ebuf, 3);
}

/* Many signals while both threads allocate, some surely landing inside the
 * allocator: the handler must neither deadlock nor corrupt anything. */
static void signal_storm(void) {
  const char *env[] = {"HAKMEM_STATS_SIGNAL=12", NULL};
  CHECK(child_start(&ch, self, "loop", env) == 0);
  set_header(ch.pid);
  CHECKF(child_read(&ch, 10, ready), "the child did not start: %s", ch.ebuf);
  for (int i = 0; i < 100; i++) {
    CHECK(kill(ch.pid, SIGUSR2) == 0);
    child_read(&ch, 0.002, NULL); /* 2 ms, reading what comes meanwhile */
  }
  want_summaries = 1;
  CHECKF(child_read(&ch, 10, have_summaries), "no summary after 100 signals; stderr:\n%s", ch.ebuf);
  finish_ok(&ch);
  int n = count_lines(ch.ebuf, header);
  CHECKF(n >= 1 && n <= 100, "%d summaries for 100 signals", n);
  check_summaries(ch.ebuf, n);
}

/* With HAKMEM_STATS_FILE the summary goes to the file; stderr stays quiet. */
static void signal_file(void) {
  char path[] = "/tmp/hakmem-test-signal.XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  if (fd < 0) return;
  char var[64];
  snprintf(var, sizeof var, "HAKMEM_STATS_FILE=%s", path);
  const char *env[] = {"HAKMEM_STATS_SIGNAL=12", var, NULL};
  CHECK(child_start(&ch, self, "loop", env) == 0);
  set_header(ch.pid);
  CHECKF(child_read(&ch, 10, ready), "the child did not start: %s", ch.ebuf);
  CHECK(kill(ch.pid, SIGUSR2) == 0);
  static char text[16384];
  double end = now_seconds() + 10;
  do {
    ssize_t n = pread(fd, text, sizeof text - 1, 0);
    text[n > 0 ? n : 0] = 0;
    if (count_lines(text, "hakmem: errors ") >= 1) break;
    usleep(10000);
  } while (now_seconds() < end);
  finish_ok(&ch);
  ssize_t n = pread(fd, text, sizeof text - 1, 0);
  text[n > 0 ? n : 0] = 0;
  close(fd);
  unlink(path);
  check_summaries(text, 1);
  CHECKF(ch.elen == 0, "stderr should be empty:\n%s", ch.ebuf);
}

static void disposition(const char *const *env, const char *expect, const char *report) {
  CHECK(child_start(&ch, self, "disposition", env) == 0);
  int status = child_finish(&ch, 10);
  CHECKF(status == 0, "child status %#x", status);
  CHECKF(!strcmp(ch.obuf, expect), "%s: SIGUSR2 is '%s', expected '%s'", env[0] ? env[0] : "no setting",
         ch.obuf, expect);
  if (report) CHECKF(!strcmp(ch.ebuf, report), "stderr is '%s', expected '%s'", ch.ebuf, report);
  else CHECKF(ch.elen == 0, "stderr should be empty: %s", ch.ebuf);
}

/* The handler is installed only when asked for, and only for that signal. */
static void signal_setting(void) {
  const char *none[] = {NULL};
  disposition(none, "default\n", NULL);
  const char *off[] = {"HAKMEM_STATS_SIGNAL=0", NULL};
  disposition(off, "default\n", NULL);
  const char *usr2[] = {"HAKMEM_STATS_SIGNAL=12", NULL};
  disposition(usr2, "handler\n", NULL);
  const char *usr1[] = {"HAKMEM_STATS_SIGNAL=10", NULL};
  disposition(usr1, "default\n", NULL);
  const char *bad[] = {"HAKMEM_STATS_SIGNAL=99", NULL};
  disposition(bad, "default\n", "hakmem: HAKMEM_STATS_SIGNAL=99 is not a number in [0, 64]; using 0\n");
}

int main(int argc, char **argv) {
  if (argc == 2 && !strcmp(argv[1], "loop")) return child_loop();
  if (argc == 2 && !strcmp(argv[1], "disposition")) return child_disposition();
  self = argv[0];
  section_select(argc, argv);
  check_hakmem_active();
  RUN_SECTION(signal_stderr);
  RUN_SECTION(signal_storm);
  RUN_SECTION(signal_file);
  RUN_SECTION(signal_setting);
  return check_report("stats_signal");
}
