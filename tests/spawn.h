/* spawn.h — runs a test binary again as a child process with extra
 * environment variables (hakmem reads its options once, at start-up, so
 * a different setting needs a new process), its stdin, stdout and stderr
 * connected to pipes; and reads those pipes with a deadline.  Used by
 * test_stats_signal.c and test_prof.c. */
#ifndef HAKMEM_TESTS_SPAWN_H
#define HAKMEM_TESTS_SPAWN_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

extern char **environ;

typedef struct {
  pid_t pid;
  int in, out, err;       /* our ends: child's stdin (write), stdout, stderr (read) */
  char obuf[16384], ebuf[256 * 1024];
  size_t olen, elen;      /* what was read so far (NUL-terminated) */
} child_t;

/* Starts `self mode` with the environment of this process minus every
 * HAKMEM_* variable, plus env (NULL-terminated "VAR=value" list). */
static inline int child_start(child_t *c, const char *self, const char *mode, const char *const *env) {
  static char *envp[512];
  int n = 0;
  for (char **e = environ; *e && n < 400; e++)
    if (strncmp(*e, "HAKMEM_", 7) != 0) envp[n++] = *e;
  for (; env && *env && n < 510; env++) envp[n++] = (char *)*env;
  envp[n] = NULL;
  int pin[2], pout[2], perr[2];
  if (pipe2(pin, O_CLOEXEC) || pipe2(pout, O_CLOEXEC) || pipe2(perr, O_CLOEXEC)) return -1;
  memset(c, 0, sizeof *c);
  c->pid = fork();
  if (c->pid < 0) return -1;
  if (c->pid == 0) {
    dup2(pin[0], 0);
    dup2(pout[1], 1);
    dup2(perr[1], 2);
    char *argv[] = {(char *)self, (char *)mode, NULL};
    execve(self, argv, envp);
    _exit(127);
  }
  close(pin[0]);
  close(pout[1]);
  close(perr[1]);
  c->in = pin[1];
  c->out = pout[0];
  c->err = perr[0];
  return 0;
}

/* Reads what the child wrote until until() says so, both pipes are at
 * end of file, or `seconds` pass.  until may be NULL (read to the end). */
static inline bool child_read(child_t *c, double seconds, bool (*until)(child_t *)) {
  double deadline = now_seconds() + seconds;
  for (;;) {
    if (until && until(c)) return true;
    if (c->out < 0 && c->err < 0) return until == NULL;
    double left = deadline - now_seconds();
    if (left <= 0) return false;
    struct pollfd p[2] = {{c->out, POLLIN, 0}, {c->err, POLLIN, 0}};
    int r = poll(p, 2, (int)(left * 1000) + 1);
    if (r < 0 && errno != EINTR) return false;
    for (int i = 0; i < 2; i++) {
      if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char *buf = i ? c->ebuf : c->obuf;
      size_t *len = i ? &c->elen : &c->olen;
      size_t cap = i ? sizeof c->ebuf : sizeof c->obuf;
      ssize_t k = read(p[i].fd, buf + *len, cap - 1 - *len);
      if (k > 0) {
        *len += (size_t)k;
        buf[*len] = 0;
      } else if (k == 0 || *len == cap - 1) {
        close(p[i].fd);
        if (i) c->err = -1;
        else c->out = -1;
      }
    }
  }
}

/* Closes the child's stdin, reads the rest, waits for it; returns the
 * wait status (-1 on timeout: the child is killed). */
static inline int child_finish(child_t *c, double seconds) {
  if (c->in >= 0) close(c->in);
  c->in = -1;
  bool done = child_read(c, seconds, NULL);
  if (!done) kill(c->pid, SIGKILL);
  int status = -1;
  waitpid(c->pid, &status, 0);
  if (c->out >= 0) close(c->out);
  if (c->err >= 0) close(c->err);
  return done ? status : -1;
}

/* Number of lines of s that start with prefix. */
static inline int count_lines(const char *s, const char *prefix) {
  int n = 0;
  size_t k = strlen(prefix);
  for (const char *l = s; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
    n += !strncmp(l, prefix, k);
  return n;
}

/* The rest of the first line of s that starts with prefix, or NULL. */
static inline const char *find_line(const char *s, const char *prefix) {
  size_t k = strlen(prefix);
  for (const char *l = s; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
    if (!strncmp(l, prefix, k)) return l + k;
  return NULL;
}

#endif /* HAKMEM_TESTS_SPAWN_H */
