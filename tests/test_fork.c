/* test_fork — fork() in a multithreaded program while the allocator is busy.
 *
 * Worker threads allocate a set of "held" blocks in every tier, publish
 * them, then churn malloc/free/realloc until told to stop, so that forks
 * happen while other threads are inside the allocator and hold allocations
 * in flight.  Each child (forked from the main thread, or from a helper
 * thread) checks the held blocks, frees them — blocks of threads that do not
 * exist in the child — allocates and frees in all tiers, including from a
 * new thread, and exits 0.  At the end the parent checks the held blocks,
 * which the children's frees must not have disturbed.  Two workers live in
 * the Large and Big tiers, so that a fork often finds a global lock held;
 * one fork comes first, while the program has a single thread; and the
 * program's own fork handlers allocate. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

#define NWORKERS 4
#define NHELD 24 /* per worker */
/* Under TSan a fork copies the huge shadow mappings: fewer forks there. */
#define NFORKS (HAK_TEST_TSAN ? 4 : 12)
#define CHILD_TIMEOUT 15 /* seconds; a deadlocked child is killed by SIGALRM */

static block_t held[NWORKERS][NHELD];
static pthread_barrier_t held_ready;
static atomic_int stop;
/* Workers churn only while `busy` is set: around each fork, not while the
 * parent waits for the child, which would otherwise get a fraction of the
 * two cores of a small machine. */
static atomic_int busy;

static const size_t kTierSizes[] = {8,      24,        100,       1000,    3000,
                                    20000,  40000,     100 * KiB, 300 * KiB,
                                    1 * MiB, 3 * MiB,  5 * MiB};
#define NTIERS (sizeof kTierSizes / sizeof kTierSizes[0])

static void *worker(void *argp) {
  int id = (int)(intptr_t)argp;
  uint64_t rng = 0xF0F0 + (uint64_t)id;
  for (int i = 0; i < NHELD; i++) held[id][i] = block_new(kTierSizes[(size_t)i % NTIERS]);
  pthread_barrier_wait(&held_ready);

  /* Churn: small blocks mostly, some mid and large, rarely big. */
  block_t slot[64] = {{0}};
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    if (!atomic_load_explicit(&busy, memory_order_relaxed)) {
      usleep(500);
      continue;
    }
    block_t *s = &slot[rng_next(&rng) % 64];
    block_free(s);
    uint64_t r = rng_next(&rng) % 1000;
    size_t n = r < 850   ? rng_range(&rng, 1, 1024)
               : r < 980 ? rng_range(&rng, 1025, 64 * KiB)
               : r < 999 ? rng_range(&rng, 64 * KiB, 512 * KiB)
                         : rng_range(&rng, 2 * MiB, 4 * MiB);
    /* Two workers live in the Large and Big tiers, whose locks they hold
     * much of the time (kernel calls included): a fork without handlers
     * would copy one held, and the child would hang. */
    if (id < 2) n = r < 500 ? rng_range(&rng, 64 * KiB, 512 * KiB) : rng_range(&rng, 1 * MiB, 4 * MiB);
    *s = block_new(n);
    if (r % 7 == 0 && s->p) block_resize(s, n / 2 + 1); /* and some realloc */
  }
  for (int i = 0; i < 64; i++) block_free(&slot[i]);
  return NULL;
}

/* Allocation work done in the child, both in its only thread and in a new
 * one: every tier, blocks alive together, realloc across tiers. */
static void *child_churn(void *unused) {
  (void)unused;
  enum { NB = NTIERS * 2 };
  block_t b[NB];
  for (int round = 0; round < 2; round++) {
    for (size_t i = 0; i < NB; i++) b[i] = block_new(kTierSizes[i % NTIERS] + i);
    for (size_t i = 0; i < NB; i += 2) block_free(&b[i]);
    for (size_t i = 1; i < NB; i += 2)
      if (b[i].p) block_resize(&b[i], kTierSizes[(i + 5) % NTIERS]);
    for (size_t i = 1; i < NB; i += 2) block_free(&b[i]);
  }
  return NULL;
}

static void child_main(int which) {
  alarm(CHILD_TIMEOUT);
  /* The held blocks were allocated by threads that do not exist here. Free
   * some first, then churn (which may reuse their memory), then the rest. */
  for (int w = 0; w < NWORKERS; w++)
    for (int i = 0; i < NHELD; i += 2) block_free(&held[w][i]);
  child_churn(NULL);
#if !HAK_TEST_TSAN /* TSan kills children that start threads after fork */
  pthread_t t;
  int rc = pthread_create(&t, NULL, child_churn, NULL);
  CHECKF(rc == 0, "pthread_create in child: %d", rc);
  if (rc == 0) pthread_join(t, NULL);
#endif
  for (int w = 0; w < NWORKERS; w++)
    for (int i = 1; i < NHELD; i += 2) block_free(&held[w][i]);
  child_churn(NULL);
  if (check_failures()) fprintf(stderr, "fork child %d failed\n", which);
  fflush(NULL);
  exit(check_failures() ? 1 : 0);
}

static void fork_and_wait(int which) {
  fflush(NULL); /* nothing buffered may be written twice */
  atomic_store(&busy, 1);
  usleep(10000); /* let the workers get deep into the allocator */
  pid_t pid = fork();
  if (pid == 0) child_main(which);
  atomic_store(&busy, 0);
  CHECKF(pid >= 0, "fork failed");
  if (pid < 0) return;
  int status;
  pid_t w;
  while ((w = waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
  }
  CHECK(w == pid);
  if (WIFSIGNALED(status))
    CHECKF(0, "fork child %d killed by signal %d%s", which, WTERMSIG(status),
           WTERMSIG(status) == SIGALRM ? " (timeout: deadlock?)" : "");
  else
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "fork child %d: status %#x",
           which, status);
}

/* The program's own fork handlers allocate, as some libraries' do.  They
 * are registered before hakmem's (which come with the second thread), so
 * glibc runs the prepare one after hakmem's has taken its locks, and the
 * child one before hakmem's has reset them. */
static atomic_int handler_calls;
static void handler_churn(void) {
  block_t b[4] = {block_new(40), block_new(3000), block_new(200 * KiB), block_new(3 * MiB)};
  for (int i = 0; i < 4; i++) block_free(&b[i]);
  atomic_fetch_add(&handler_calls, 1);
}

static void *forking_thread(void *arg) {
  fork_and_wait((int)(intptr_t)arg);
  return NULL;
}

int main(void) {
  check_hakmem_active();
  CHECK(pthread_atfork(handler_churn, handler_churn, handler_churn) == 0);
  /* First while this is the only thread: no fork handler is registered yet
   * (init.c), and none is needed; the child goes on to start a thread. */
  block_t early = block_new(5 * MiB);
  fork_and_wait(-1);
  block_free(&early);
  pthread_barrier_init(&held_ready, NULL, NWORKERS + 1);
  pthread_t tid[NWORKERS];
  for (int i = 0; i < NWORKERS; i++)
    if (pthread_create(&tid[i], NULL, worker, (void *)(intptr_t)i) != 0) {
      fprintf(stderr, "pthread_create failed\n");
      return 1;
    }
  pthread_barrier_wait(&held_ready);

  for (int f = 0; f < NFORKS; f++) {
    if (f % 4 == 3) { /* fork from a thread other than main */
      pthread_t t;
      if (pthread_create(&t, NULL, forking_thread, (void *)(intptr_t)f) == 0)
        pthread_join(t, NULL);
    } else {
      fork_and_wait(f);
    }
  }

  atomic_store(&stop, 1);
  for (int i = 0; i < NWORKERS; i++) pthread_join(tid[i], NULL);
  /* The parent's copies of the held blocks are untouched by the children. */
  for (int w = 0; w < NWORKERS; w++)
    for (int i = 0; i < NHELD; i++) block_free(&held[w][i]);
  pthread_barrier_destroy(&held_ready);
  /* prepare and parent in the parent, each fork */
  CHECKF(atomic_load(&handler_calls) == 2 * (NFORKS + 1), "%d handler calls", atomic_load(&handler_calls));
  return check_report("fork");
}
