/* debug_checks: the debug build's invariant walkers are live
 * (-DHAKMEM_DEBUG=ON only).  Each case, in a forked child, corrupts a slab
 * the way a buggy program does, through the hak_* API and the knowledge
 * that a free block's first word links it to the next; then it allocates
 * until the slab is refilled.  A normal build hands out the corrupted
 * memory silently; the debug build's refill check must stop the child
 * with a hak_assert report (SIGABRT, "invariant failed") before it
 * follows the bad link. */
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

static volatile uintptr_t sink;

/* Allocates blocks of n bytes until the current slab must be refilled. */
static void drain(size_t n) {
  for (int i = 0; i < 100000; i++) sink ^= (uintptr_t)hak_malloc(n);
}

/* A freed block's link overwritten (a use after free): it now points into
 * a live block.  A normal build would hand out p[5] + 8, overlapping p[5]. */
static void bad_link(void) {
  void *p[8];
  for (int i = 0; i < 8; i++) p[i] = hak_malloc(48);
  hak_free(p[1]);
  hak_free(p[0]); /* the owner's free list: p[0] -> p[1] */
  *(void **)p[0] = (char *)p[5] + 8;
  drain(48);
}

/* A double free of a block that is not the last one freed: the free path
 * only catches the latter, so this one closes a cycle p[1] -> p[2] -> p[1],
 * and a normal build would hand out p[1] and p[2] again and again. */
static void double_free(void) {
  void *p[4];
  for (int i = 0; i < 4; i++) p[i] = hak_malloc(80);
  hak_free(p[1]);
  hak_free(p[2]);
  hak_free(p[1]);
  drain(80);
}

/* Runs fn in a child with stderr into a pipe: it must die of SIGABRT
 * after a hak_assert report saying `what`. */
static void expect_abort(const char *name, void (*fn)(void), const char *what) {
  int fd[2];
  CHECK(pipe(fd) == 0);
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    dup2(fd[1], 2);
    close(fd[0]);
    fn();
    _exit(0);
  }
  close(fd[1]);
  char out[4096];
  size_t len = 0;
  ssize_t r;
  while ((r = read(fd[0], out + len, sizeof out - 1 - len)) > 0) len += (size_t)r;
  out[len] = 0;
  close(fd[0]);
  int st = 0;
  CHECK(waitpid(pid, &st, 0) == pid);
  printf("%s: child %s %d; it said: %s", name, WIFSIGNALED(st) ? "killed by signal" : "exited with",
         WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st), len ? out : "nothing\n");
  CHECKF(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "%s: the child was not stopped by SIGABRT", name);
  CHECKF(strstr(out, "hakmem: ") && strstr(out, "invariant failed") && strstr(out, what),
         "%s: no hak_assert report about \"%s\"", name, what);
}

int main(void) {
  expect_abort("bad_link", bad_link, "leads to");
  expect_abort("double_free", double_free, "on its lists twice");
  return check_report("debug_checks");
}
