/* test_wrong_use — misuse that hakmem must survive and report.
 *
 * Each case runs in a forked child whose stderr goes into a pipe.  The child
 * commits the misuse, then checks that the allocator still works correctly
 * (blocks distinct, contents kept) and exits 0.  The parent requires that
 * exit status and the expected "hakmem: " report in the captured stderr. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

/* Called through a volatile pointer: the compiler may neither warn about
 * (-Wfree-nonheap-object, -Wuse-after-free) nor reason about these frees. */
static void (*volatile free_fn)(void *) = free;

/* After the misuse: allocations in every tier, several of each size alive
 * together, must be distinct, usable and keep their contents.  `n0` (the
 * size involved in the misuse) is included: a double free that corrupted a
 * free list tends to hand the same block out twice. */
static void check_allocator_sane(size_t n0) {
  static const size_t sizes[] = {16, 32, 100, 1000, 5000, 40000, 100 * KiB, 300 * KiB, 4 * MiB, 0};
  enum { PER = 8, NS = sizeof sizes / sizeof sizes[0] };
  void *p[NS][PER];
  for (size_t s = 0; s < NS; s++) {
    size_t n = s == NS - 1 ? n0 : sizes[s];
    for (int i = 0; i < PER; i++) {
      p[s][i] = malloc(n);
      CHECKF(p[s][i] != NULL, "malloc(%zu) failed after misuse", n);
      if (p[s][i]) pattern_fill(p[s][i], n);
    }
  }
  for (size_t s = 0; s < NS; s++) {
    size_t n = s == NS - 1 ? n0 : sizes[s];
    for (int i = 0; i < PER; i++) {
      if (!p[s][i]) continue;
      CHECK_PATTERN(p[s][i], n); /* fails if another block overlaps it */
      for (int j = 0; j < i; j++)
        CHECKF(p[s][i] != p[s][j], "malloc(%zu) returned %p twice", n, p[s][i]);
    }
  }
  for (size_t s = 0; s < NS; s++)
    for (int i = 0; i < PER; i++) free(p[s][i]);
}

/* ---- the cases (each runs in its own child) */

static void free_stack(void) {
  char buf[64];
  memset(buf, 1, sizeof buf);
  free_fn(buf);
  check_allocator_sane(64);
}

static void free_mmap(void) {
  size_t len = 64 * KiB;
  char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(m != MAP_FAILED);
  if (m == MAP_FAILED) return;
  memset(m, 7, len);
  free_fn(m);
  /* hakmem must not have unmapped or changed memory it does not own. */
  for (size_t i = 0; i < len; i += 4096) CHECK(m[i] == 7);
  munmap(m, len);
  check_allocator_sane(len);
}

static void free_interior_big(void) {
  size_t n = 4 * MiB;
  char *p = malloc(n);
  CHECK(p != NULL);
  if (!p) return;
  pattern_fill(p, n);
  free_fn(p + 64 * KiB + 16);
  CHECK_PATTERN(p, n); /* the block is intact and still ours */
  check_allocator_sane(n);
  CHECK_PATTERN(p, n);
  free(p);
  check_allocator_sane(n);
}

static void double_free_of(size_t n) {
  char *p = malloc(n);
  CHECK(p != NULL);
  if (!p) return;
  memset(p, 3, n);
  free(p);
  free_fn(p);
  check_allocator_sane(n);
}
static void double_free_big(void) { double_free_of(4 * MiB); }
static void double_free_large(void) { double_free_of(100 * KiB); }
static void double_free_small(void) { double_free_of(32); }

/* ---- running a case in a child with stderr captured */

typedef struct {
  const char *name;
  void (*run)(void);
  const char *must_report; /* expected in stderr besides "hakmem: " */
} wrong_case_t;

static const wrong_case_t kCases[] = {
    {"free of a stack address", free_stack, "invalid free"},
    {"free of an mmap'ed pointer", free_mmap, "invalid free"},
    {"free of an interior pointer of a 4 MiB block", free_interior_big, NULL},
    {"double free of a 4 MiB block", double_free_big, NULL},
    {"double free of a 100 KiB block", double_free_large, NULL},
    {"immediate double free of a 32 B block", double_free_small, "double free"},
};

static void run_case(const wrong_case_t *c) {
  int pfd[2];
  if (pipe(pfd) != 0) {
    CHECKF(0, "pipe: %s", strerror(errno));
    return;
  }
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    close(pfd[0]);
    dup2(pfd[1], 2);
    close(pfd[1]);
    alarm(15); /* a hang counts as a failure */
    c->run();
    fflush(NULL);
    _exit(check_failures() ? 1 : 0);
  }
  close(pfd[1]);
  CHECKF(pid > 0, "fork: %s", strerror(errno));
  /* Read to EOF before waiting, so a chatty child cannot block on a full
   * pipe; keep the first 64 KiB. */
  static char err[64 * KiB];
  size_t len = 0;
  for (;;) {
    char chunk[4096];
    ssize_t r = read(pfd[0], chunk, sizeof chunk);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    size_t take = (size_t)r < sizeof err - 1 - len ? (size_t)r : sizeof err - 1 - len;
    memcpy(err + len, chunk, take);
    len += take;
  }
  err[len] = '\0';
  close(pfd[0]);
  if (pid <= 0) return;

  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  int before = check_failures();
  if (WIFSIGNALED(status))
    CHECKF(0, "%s: child killed by signal %d (%s)", c->name, WTERMSIG(status),
           strsignal(WTERMSIG(status)));
  else
    CHECKF(WEXITSTATUS(status) == 0, "%s: child exited %d", c->name, WEXITSTATUS(status));
#if HAK_TEST_EXPECT_HAKMEM
  CHECKF(strstr(err, "hakmem: ") != NULL, "%s: no \"hakmem: \" report", c->name);
  if (c->must_report)
    CHECKF(strstr(err, c->must_report) != NULL, "%s: report lacks \"%s\"", c->name,
           c->must_report);
#endif
  printf("%-48s %s\n", c->name, check_failures() == before ? "ok" : "FAILED");
  if (check_failures() != before || getenv("VERBOSE"))
    fprintf(stderr, "--- stderr of \"%s\" ---\n%s--- end ---\n", c->name, err);
}

int main(void) {
  check_hakmem_active();
  for (size_t i = 0; i < sizeof kCases / sizeof kCases[0]; i++) run_case(&kCases[i]);
  return check_report("wrong_use");
}
