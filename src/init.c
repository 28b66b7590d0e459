/* Process start-up and the rules for living inside other programs: lazy,
 * re-entrant initialisation (malloc may run before any constructor), fork
 * handlers around every global lock, the exit summary. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include "internal.h"
#include "msg.h"
#include "options.h"
#include "policy.h"
#include "prof.h"
#include "secure.h"
#include "site.h"
#include "stats.h"
#include "learn/control.h"

/* 0: not started, 1: options being read, 2: ready. */
_Atomic int hak_init_state;


__thread bool hak_fork_owner __attribute__((tls_model("initial-exec")));

static void fork_prepare(void) {
  hak_control_fork_prepare(); /* first: the controller takes the others under it */
  /* The order every thread takes them in: a heap's segment lock, the
   * Large lock (hak_large_release), the segment cache's (large_seg_new). */
  hak_heap_lock();
  hak_large_lock();
  hak_segment_lock_all();
  hak_big_lock();
  hak_fork_owner = true;
}

static void fork_parent(void) {
  hak_fork_owner = false;
  hak_big_unlock(false);
  hak_segment_unlock_all(false);
  hak_large_unlock(false);
  hak_heap_unlock(false);
  hak_control_fork_parent();
}

static void fork_child(void) {
  hak_fork_owner = false;
  hak_big_unlock(true);
  hak_segment_unlock_all(true);
  hak_large_unlock(true);
  hak_heap_fork_child(); /* resets the heap registry lock itself */
  hak_control_fork_child();
}

hak_front void hak_process_init(void) {
  int s = atomic_load_explicit(&hak_init_state, memory_order_acquire);
  if (hak_likely(s == 2)) return;
  int zero = 0;
  if (!atomic_compare_exchange_strong(&hak_init_state, &zero, 1)) {
    /* Another thread is reading the options (which never allocates). */
    while (atomic_load_explicit(&hak_init_state, memory_order_acquire) != 2) hak_os_yield();
    return;
  }
  hak_options_init();
  if (hak_secure) hak_secure_init(); /* its secrets, before any free list exists */
  hak_policy_init();
  hak_prof_init();
  hak_site_init();
  hak_os_note_main_thread(); /* the controller's thread pointer (os.c) */
  hak_control_init();
  /* The thread-exit key exists before any thread can get a heap: a heap
   * made without it would never be abandoned, and its segments would leak
   * when its thread ends.  (pthread_key_create does not allocate.) */
  hak_heap_thread_key_init();
  atomic_store_explicit(&hak_init_state, 2, memory_order_release);
#if !__has_include(<sys/single_threaded.h>)
  hak_forks_register(); /* no way to tell when a second thread comes */
#endif
}

/* The fork handlers are registered only once the process has a second
 * thread: until then no thread but the one calling fork can hold one of
 * our locks.  glibc's pthread_atfork sits on a page of libc that a
 * single-threaded program does not otherwise touch, and registering at
 * start made ~100 KiB of libc resident in every process (the kernel maps
 * 64 KiB around each fault on a file).  So every lock taken while they are
 * missing (hak_lock) asks glibc whether a thread was ever created; the
 * first to find one registers them, before it takes its lock, and the
 * others wait for it.  A fork that races the registration is safe either
 * way: glibc holds its handler lock across fork, so the registration waits
 * for the fork to finish, and the thread registering holds none of ours. */
_Atomic int hak_forks_state;
static __thread bool forks_registering __attribute__((tls_model("initial-exec")));

/* glibc's pthread_atfork is a stub linked into the library (libc_nonshared)
 * that passes our DSO handle on to __register_atfork; the linker puts it at
 * the end of our text, away from the code every process runs, and calling
 * it mapped 16 KiB more of our text into every threaded process. */
#ifdef __GLIBC__
extern void *__dso_handle;
int __register_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void), void *dso);
#define forks_atfork(pre, par, chi) __register_atfork(pre, par, chi, __dso_handle)
#else
#define forks_atfork(pre, par, chi) pthread_atfork(pre, par, chi)
#endif

hak_front void hak_forks_register(void) {
  int z = 0;
  if (atomic_compare_exchange_strong(&hak_forks_state, &z, 1)) {
    forks_registering = true;
    forks_atfork(fork_prepare, fork_parent, fork_child); /* may allocate: back here */
    forks_registering = false;
    atomic_store_explicit(&hak_forks_state, 2, memory_order_release);
    return;
  }
  while (!forks_registering && atomic_load_explicit(&hak_forks_state, memory_order_acquire) != 2)
    hak_os_yield();
}

/* stderr as it was at start: programs such as coreutils close fd 2 in an
 * atexit handler, before our destructor runs. */
static int summary_fd = 2;

/* The summary goes to HAKMEM_STATS_FILE (appended: every process of a
 * `hakmem run` adds its own; a name ending in .json gets one JSON object
 * per line) or to stderr. */
static void write_summary(bool in_signal) {
  int fd = summary_fd;
  const char *path = HAK_OPT_STR(STATS_FILE);
  if (path) {
    fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) fd = summary_fd;
  }
  size_t len = path ? strlen(path) : 0;
  if (len > 5 && !strcmp(path + len - 5, ".json")) {
    hak_stats_write_json(fd, in_signal); /* one object per line, per process */
  } else {
    hak_stats_write(fd, in_signal);
    hak_prof_print(fd);
  }
  if (fd != summary_fd) close(fd);
}

static void on_stats_signal(int sig) {
  (void)sig;
  int saved = errno;
  write_summary(true);
  errno = saved;
}

__attribute__((constructor)) static void hak_ctor(void) {
  hak_process_init();
  if ((HAK_OPT(STATS) || hak_prof_report) && !HAK_OPT_STR(STATS_FILE)) {
    int fd = fcntl(2, F_DUPFD_CLOEXEC, 3);
    if (fd >= 0) summary_fd = fd;
  }
  if (HAK_OPT(STATS_SIGNAL)) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stats_signal;
    sa.sa_flags = SA_RESTART;
    if (sigaction((int)HAK_OPT(STATS_SIGNAL), &sa, NULL) != 0)
      hak_error("HAKMEM_STATS_SIGNAL=%lld: this signal cannot be caught; no summary on signal",
                HAK_OPT(STATS_SIGNAL));
  }
}

__attribute__((destructor)) static void hak_dtor(void) {
  hak_control_exit();
  if (HAK_OPT(STATS) || hak_prof_report) write_summary(false);
  hak_site_at_exit();
}
