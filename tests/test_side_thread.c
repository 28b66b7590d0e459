/* side_thread: the controller runs on a thread libc does not know about
 * (src/os.c, hak_os_side_thread_start), so a single-threaded program stays
 * single-threaded to libc (unlocked stdio, ...).  Checked in a real
 * process under `balanced`: once the controller runs (a second task in
 * /proc/self/task), libc still says one thread; the controller, purging
 * what the main thread freed, never changes the main thread's errno;
 * forks made while it works leave parent and child whole. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <sys/single_threaded.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

static int tasks(void) {
  DIR *d = opendir("/proc/self/task");
  if (!d) return -1;
  int n = 0;
  for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

/* Large and Big blocks allocated, written and freed: work for the
 * controller's purges (and 8 MiB committed, what starts it). */
static void churn(int rounds) {
  enum { N = 16 };
  void *p[N];
  for (int r = 0; r < rounds; r++) {
    for (int i = 0; i < N; i++) {
      size_t n = (size_t)(64 + 97 * ((r * N + i) % 40)) << 10; /* 64 KiB - 3.9 MiB */
      p[i] = malloc(n);
      CHECK(p[i] != NULL);
      if (p[i]) memset(p[i], i, n);
    }
    for (int i = 0; i < N; i++) free(p[i]);
  }
}

int main(void) {
  /* The controller starts from a slow path once the process is 200 ms old. */
  int n = 1;
  for (int i = 0; i < 1000 && (n = tasks()) < 2; i++) {
    churn(1);
    usleep(5000);
  }
  CHECKF(n == 2, "%d tasks: the controller did not start", n);
  CHECKF(__libc_single_threaded, "libc counts the controller's thread: the process is multi-threaded to it");

  /* errno: the main thread's, set and read back for 60 ms after each
   * batch of frees, while the controller purges them (20 ms purge delay,
   * 10 ms windows). */
  long bad = 0, checks = 0;
  for (int r = 0; r < 15; r++) {
    churn(1);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    do {
      for (int k = 1; k < 1000; k++) {
        errno = k;
        for (int spin = 0; spin < 20; spin++) __asm__ volatile("" ::: "memory"); /* errno read again */
        bad += errno != k;
        checks++;
      }
      clock_gettime(CLOCK_MONOTONIC, &b);
    } while ((b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec) < 60000000L);
  }
  CHECKF(bad == 0, "errno changed under the main thread %ld times in %ld", bad, checks);

  /* Forks while the controller works: the child allocates in every tier. */
  for (int f = 0; f < 20; f++) {
    churn(1);
    pid_t pid = fork();
    if (pid == 0) {
      churn(2);
      void *q = malloc(100);
      _exit(q ? 0 : 3);
    }
    int st = 0;
    CHECK(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
  }
  CHECKF(__libc_single_threaded, "libc counts a thread after the forks");
  CHECKF(tasks() == 2, "the controller is gone after the forks");
  return check_report("side_thread");
}
