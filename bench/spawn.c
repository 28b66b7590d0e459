/* hakmem-bench-spawn: runs one program and reports its wall time and peak
 * RSS, for `hakmem bench --programs`.
 *
 *   hakmem-bench-spawn RESULT PRELOAD TIMEOUT -- PROGRAM ARGS...
 *
 * Forks, sets LD_PRELOAD=PRELOAD in the child (none if PRELOAD is empty),
 * execs PROGRAM and waits for it with wait4.  Then writes one line to the
 * file RESULT:
 *
 *   status=W secs=F maxrss_kb=N timeout=0|1
 *
 * W is the raw wait status.  The program gets its own process group, which
 * is killed after TIMEOUT seconds (0: never).
 *
 * Why not fork from the runner itself: at exec, the kernel folds the peak
 * RSS of the image being replaced into the new program's ru_maxrss, so a
 * program started by a 100 MB Python process reports at least 100 MB.
 * Forked from this small helper, the floor is the helper's ~1 MB.  The
 * helper itself runs without the allocator under test.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t child, timed_out;

static void on_alarm(int sig) {
  (void)sig;
  timed_out = 1;
  if (child > 0)
    kill(-child, SIGKILL);
}

int main(int argc, char **argv) {
  if (argc < 6 || strcmp(argv[4], "--") != 0) {
    fprintf(stderr, "usage: hakmem-bench-spawn RESULT PRELOAD TIMEOUT -- "
                    "PROGRAM ARGS...\n");
    return 2;
  }
  const char *result = argv[1], *preload = argv[2];
  double timeout = atof(argv[3]);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  pid_t pid = fork();
  if (pid < 0) {
    perror("hakmem-bench-spawn: fork");
    return 2;
  }
  if (pid == 0) {
    setpgid(0, 0);
    if (*preload)
      setenv("LD_PRELOAD", preload, 1);
    else
      unsetenv("LD_PRELOAD");
    execvp(argv[5], argv + 5);
    fprintf(stderr, "hakmem-bench-spawn: %s: %s\n", argv[5], strerror(errno));
    _exit(127);
  }
  setpgid(pid, pid); /* also here: no race with the alarm */
  child = pid;
  if (timeout > 0) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, 0}, {(time_t)timeout,
                                    (suseconds_t)((timeout - (time_t)timeout) * 1e6)}};
    setitimer(ITIMER_REAL, &it, NULL);
  }
  int status;
  struct rusage ru;
  while (wait4(pid, &status, 0, &ru) < 0)
    if (errno != EINTR) {
      perror("hakmem-bench-spawn: wait4");
      return 2;
    }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  FILE *f = fopen(result, "w");
  if (!f) {
    perror(result);
    return 2;
  }
  fprintf(f, "status=%d secs=%.6f maxrss_kb=%ld timeout=%d\n", status,
          (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
          ru.ru_maxrss, (int)timed_out);
  return fclose(f) ? 2 : 0;
}
