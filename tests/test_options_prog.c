/* The tiny program test_options.sh runs under LD_PRELOAD=libhakmem.so with
 * various HAKMEM_* settings.  It allocates from the main thread, from four
 * threads and from a forked child, so that a report printed more than once
 * (options read again) would show.  Prints nothing itself; exit 0 when
 * every allocation worked, and (a check that the preload is in effect) the
 * blocks are hakmem's. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

static void *churn(void *arg) {
  (void)arg;
  for (int i = 0; i < 1000; i++) {
    block_t b = block_new(16 + (size_t)(i % 64) * 24);
    block_free(&b);
  }
  block_t big = block_new(3 * MiB);
  block_free(&big);
  return NULL;
}

int main(void) {
  check_hakmem_active();
  pthread_t t[4];
  for (int i = 0; i < 4; i++) CHECK(pthread_create(&t[i], NULL, churn, NULL) == 0);
  churn(NULL);
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    churn(NULL);
    exit(check_failures() ? 1 : 0); /* exit, not _exit: its summary too */
  }
  int status = 0;
  CHECK(waitpid(pid, &status, 0) == pid);
  CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
  /* check_report() would print to stdout; the script wants silence. */
  return check_failures() ? 1 : 0;
}
