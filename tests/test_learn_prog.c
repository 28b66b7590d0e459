/* test_learn_prog — programs for check_learn.py, run under LD_PRELOAD with
 * the learning layer's options.  Modes:
 *   phases LOG [back]  small-object churn until the learn log (LOG) shows
 *                   the policy frozen and a canary watching, then Large
 *                   blocks until the log shows LEARN again (the shift
 *                   noticed); with `back`, the Large blocks go on until
 *                   that mix is frozen and watched too, then small objects
 *                   again for 4 s (a canary's watch comes within 2 s) or
 *                   until the log shows LEARN; exits 1 if a step does not
 *                   come within 30 s
 *   lifecycle LOG   threads churning, three fork children (each churns and
 *                   exits 0), threads exiting, then one thread calls
 *                   exit(3) while the others still allocate
 *   churn MS [MB]   churns small blocks (and, unless MB is 0, Large ones) for
 *                   MS ms holding MB MiB (default 16), then prints the
 *                   number of threads
 *   sites           Large and Big blocks from five call sites, one of each
 *                   kind per-site decisions tell apart: long-lived, short-
 *                   lived, a reused Big buffer, a one-off Big buffer, and a
 *                   buffer grown by realloc again and again
 *   bursts MS       small objects in bursts, as a logic minimiser makes them
 *                   (passes of 20-400 blocks of 16-200 B, pairs combined,
 *                   one survivor in 16 kept in one of 8 covers that are
 *                   freed whole when full), for MS ms: one stationary
 *                   workload whose slabs take turns
 *   tiers MS        Large blocks of 256 KiB-1.5 MiB churned for MS ms, a
 *                   page written each: lowering the big threshold to 1 MiB
 *                   makes some of them Big
 *   mixes MS        256 live blocks of 8 KiB-1 MiB (log-uniform: Mid and
 *                   Large) replaced at random for MS ms, the first byte
 *                   written: a stationary mix whose Mid slabs are mostly
 *                   refilled by the owner's own frees (few slow calls)
 *   bigs MS         Big blocks of 3-6 MiB in 8 slots (a byte written per
 *                   page) beside small objects, for MS ms: nothing in the
 *                   Large tier
 *   grow MS         16 buffers grown by realloc 1 B-4 KiB at a time, each
 *                   freed at 4 KiB-1 MiB, for MS ms
 *   slack           a 200 KiB buffer realloc'd to 300 KiB where it must
 *                   move: whether it moved, and its usable size
 *   quick           a few allocations, then the number of threads
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static unsigned long long rng = 88172645463325252ull;
static __thread unsigned long long trng;
static unsigned long long next(unsigned long long *x) {
  *x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
  return *x;
}

static int threads_now(void) {
  DIR *d = opendir("/proc/self/task");
  int n = 0;
  if (!d) return -1;
  for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

/* Does the log hold a line with `state`, after byte offset *from?  Moves
 * *from past the line found. */
static int log_has(const char *path, const char *state, long *from) {
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  char want[64], line[4096];
  snprintf(want, sizeof want, "\"state\":\"%s\"", state);
  int found = 0;
  if (fseek(f, *from, SEEK_SET) == 0)
    while (fgets(line, sizeof line, f))
      if (strstr(line, want)) {
        found = 1;
        *from = ftell(f);
        break;
      }
  fclose(f);
  return found;
}

#define SLOTS 4096
static void *slots[SLOTS];

static void churn_small(int rounds) {
  for (int i = 0; i < rounds; i++) {
    unsigned k = (unsigned)(next(&rng) % SLOTS);
    free(slots[k]);
    slots[k] = malloc(16 + next(&rng) % 400);
    if (slots[k]) memset(slots[k], 1, 16);
  }
}

/* Blocks of lo to lo + span bytes in the first `nslots` slots, a byte
 * written per page. */
static void churn_blocks(int rounds, unsigned nslots, size_t lo, size_t span) {
  for (int i = 0; i < rounds; i++) {
    unsigned k = (unsigned)(next(&rng) % nslots);
    free(slots[k]);
    size_t n = lo + next(&rng) % span;
    slots[k] = malloc(n);
    if (slots[k])
      for (size_t j = 0; j < n; j += 4096) ((char *)slots[k])[j] = 1;
  }
}

static void churn_large(int rounds) { churn_blocks(rounds, 64, 64u << 10, 192u << 10); }

/* Churns small objects (small) or Large blocks until the log shows a
 * FROZEN line and then a CANARY one after *at; 0 if not within 30 s. */
static int until_watched(const char *log, long *at, int small) {
  double t0 = now();
  int frozen = 0;
  while (!frozen || !log_has(log, "CANARY", at)) {
    if (!frozen) frozen = log_has(log, "FROZEN", at);
    if (small) churn_small(20000);
    else churn_large(200);
    if (now() - t0 > 30) return 0;
  }
  return 1;
}

static void free_slots(void) {
  for (int i = 0; i < SLOTS; i++) free(slots[i]), slots[i] = NULL;
}

static int phases(const char *log, int back) {
  long at = 0;
  if (!until_watched(log, &at, 1)) {
    fprintf(stderr, "phases: no FROZEN then CANARY within 30 s\n");
    return 1;
  }
  free_slots();
  double t0 = now();
  while (!log_has(log, "LEARN", &at)) {
    churn_large(200);
    if (now() - t0 > 30) {
      fprintf(stderr, "phases: the shift to Large blocks was not noticed within 30 s\n");
      return 1;
    }
  }
  printf("walked\n");
  if (!back) return 0;
  if (!until_watched(log, &at, 0)) {
    fprintf(stderr, "phases: the Large blocks' mix not frozen and watched within 30 s\n");
    return 1;
  }
  free_slots();
  t0 = now();
  while (now() - t0 < 4 && !log_has(log, "LEARN", &at)) churn_small(20000);
  printf("came back\n");
  return 0;
}

static volatile int stop_threads;

static void *worker(void *arg) {
  long id = (long)arg;
  void *mine[256] = {0};
  trng = 0x9E3779B97F4A7C15ull * (unsigned long long)(id + 1);
  while (!stop_threads) {
    unsigned k = (unsigned)(next(&trng) % 256);
    free(mine[k]);
    mine[k] = malloc(next(&trng) % 2 ? 24 + next(&trng) % 1000 : 40000 + next(&trng) % 100000);
    if (id == 99 && next(&trng) % 50000 == 0) exit(3); /* exit() from another thread */
  }
  for (int i = 0; i < 256; i++) free(mine[i]);
  return NULL;
}

static int lifecycle(void) {
  pthread_t t[6];
  for (long i = 0; i < 4; i++) pthread_create(&t[i], NULL, worker, (void *)i);
  usleep(300000);
  for (int c = 0; c < 3; c++) {
    pid_t pid = fork();
    if (pid == 0) {
      double t0 = now();
      while (now() - t0 < 0.3) churn_small(1000);
      _exit(0);
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      fprintf(stderr, "lifecycle: fork child %d failed (status %#x)\n", c, st);
      return 1;
    }
  }
  stop_threads = 1; /* threads exit with the controller running */
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  stop_threads = 0;
  pthread_create(&t[4], NULL, worker, (void *)5L);
  pthread_create(&t[5], NULL, worker, (void *)99L); /* will call exit(3) */
  for (;;) churn_small(1000);
}

/* Five sites (noinline, and bodies that differ, so each has its own return
 * address; the asm keeps malloc a call, not a jump). */
#define SITE_FN(name, k)                                  \
  __attribute__((noinline)) static void *name(size_t n) { \
    static volatile int calls;                            \
    calls = calls + k; /* read too: clang counts it used */ \
    void *p = malloc(n);                                  \
    __asm__ volatile("" : : "r"(p) : "memory");           \
    return p;                                             \
  }
SITE_FN(long_site, 1)
SITE_FN(short_site, 2)
SITE_FN(reuse_site, 3)
SITE_FN(oneoff_site, 4)
__attribute__((noinline)) static void *grow_site(void *p, size_t n) {
  void *q = realloc(p, n);
  __asm__ volatile("" : : "r"(q) : "memory");
  return q;
}

void learn_prog_twin(void); /* learn_prog_twin.c: another file's long_site */

static int sites(void) {
  learn_prog_twin();
  void *keep[16];
  for (int i = 0; i < 16; i++) keep[i] = long_site(96 << 10), memset(keep[i], 1, 4096);
  free(oneoff_site(6 << 20));
  double t0 = now();
  for (int round = 0; now() - t0 < 0.6; round++) {
    for (int i = 0; i < 50; i++) {
      char *p = short_site(100 << 10);
      p[0] = 1;
      free(p);
    }
    char *b = reuse_site(4 << 20);
    memset(b, 2, 4096);
    free(b);
    char *g = NULL;
    for (size_t n = 80 << 10; n <= (1 << 20); n += 40 << 10) {
      g = grow_site(g, n);
      g[n - 1] = 3;
    }
    free(g);
    usleep(20000);
  }
  for (int i = 0; i < 16; i++) free(keep[i]);
  printf("sites done\n");
  return 0;
}

#define COVERS 8
#define COVER_MAX 4096
static int bursts(double ms) {
  static void *pass[400], *cover[COVERS][COVER_MAX];
  static unsigned cover_n[COVERS], cover_limit[COVERS];
  double t0 = now();
  unsigned long long sum = 0;
  for (int c = 0; c < COVERS; c++) cover_limit[c] = 256u << (next(&rng) % 5);
  while ((now() - t0) * 1000 < ms) {
    for (int r = 0; r < 200; r++) {
      unsigned n = 20 + (unsigned)(next(&rng) % 381);
      for (unsigned i = 0; i < n; i++) {
        pass[i] = malloc(16 + next(&rng) % 185);
        if (pass[i]) memset(pass[i], (int)i, 16);
      }
      for (unsigned i = 0; i < n / 2; i++) { /* combine: a new block replaces a parent */
        unsigned a = (unsigned)(next(&rng) % n);
        free(pass[a]);
        pass[a] = malloc(16 + next(&rng) % 185);
        if (pass[a]) memset(pass[a], 2, 16);
      }
      for (unsigned i = n; i > 0; i--) { /* the survivors, in random order */
        unsigned k = (unsigned)(next(&rng) % i);
        void *p = pass[k];
        pass[k] = pass[i - 1];
        if (!p) continue;
        if (next(&rng) % 16) {
          sum += *(unsigned char *)p;
          free(p);
          continue;
        }
        /* one in 16 joins a cover; a full cover goes with all its blocks */
        unsigned c = (unsigned)(next(&rng) % COVERS);
        cover[c][cover_n[c]++] = p;
        if (cover_n[c] == cover_limit[c]) {
          for (unsigned j = 0; j < cover_n[c]; j++) free(cover[c][j]);
          cover_n[c] = 0;
          cover_limit[c] = 256u << (next(&rng) % 5);
        }
      }
    }
  }
  for (int c = 0; c < COVERS; c++)
    for (unsigned j = 0; j < cover_n[c]; j++) free(cover[c][j]);
  printf("bursts %llu\n", sum & 1);
  return 0;
}

static int tiers(double ms) {
  double t0 = now();
  while ((now() - t0) * 1000 < ms) churn_blocks(100, 128, 256u << 10, 1280u << 10);
  for (int k = 0; k < 128; k++) free(slots[k]);
  printf("tiers\n");
  return 0;
}

static int mixes(double ms) {
  double t0 = now();
  while ((now() - t0) * 1000 < ms)
    for (int i = 0; i < 1000; i++) {
      unsigned k = (unsigned)(next(&rng) % 256);
      free(slots[k]);
      unsigned octave = 13 + (unsigned)(next(&rng) % 7); /* 8 KiB .. 1 MiB */
      size_t n = ((size_t)1 << octave) + next(&rng) % ((size_t)1 << octave);
      slots[k] = malloc(n);
      if (slots[k]) *(char *)slots[k] = 1;
    }
  for (int k = 0; k < 256; k++) free(slots[k]);
  printf("mixes\n");
  return 0;
}

/* Big blocks of 3-6 MiB in 8 slots, a byte written per page, beside small
 * objects in the others: nothing between the Mid tier's top and 2 MiB. */
static int bigs(double ms) {
  double t0 = now();
  while ((now() - t0) * 1000 < ms) {
    churn_blocks(4, 8, 3u << 20, 3u << 20);
    for (int i = 0; i < 400; i++) {
      unsigned k = 8 + (unsigned)(next(&rng) % (SLOTS - 8));
      free(slots[k]);
      slots[k] = malloc(16 + next(&rng) % 400);
      if (slots[k]) memset(slots[k], 1, 16);
    }
  }
  free_slots();
  printf("bigs\n");
  return 0;
}

static int grow(double ms) {
  static char *buf[16];
  static size_t size[16], limit[16];
  double t0 = now();
  while ((now() - t0) * 1000 < ms)
    for (int i = 0; i < 1000; i++) {
      unsigned k = (unsigned)(next(&rng) % 16);
      if (size[k] >= limit[k]) {
        free(buf[k]);
        buf[k] = NULL;
        size[k] = 0;
        limit[k] = (4096u << (next(&rng) % 9)) + next(&rng) % 4096;
      }
      size_t n = size[k] + 1 + next(&rng) % 4096;
      char *p = realloc(buf[k], n);
      if (!p) return 1;
      memset(p + size[k], 'x', n - size[k]);
      buf[k] = p;
      size[k] = n;
    }
  for (int k = 0; k < 16; k++) free(buf[k]);
  printf("grow\n");
  return 0;
}

/* A Large buffer grown by realloc from main (a site no policy file
 * names) where it cannot grow in place: the new block's usable size. */
static int slack(void) {
  char *p = malloc(200 << 10), *next = malloc(200 << 10);
  if (!p || !next) return 1;
  memset(p, 1, 200 << 10);
  char *q = realloc(p, 300 << 10);
  if (!q) return 1;
  printf("slack moved %d usable %zu\n", q != p, malloc_usable_size(q));
  free(q);
  free(next);
  return 0;
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "quick";
  if (!strcmp(mode, "phases") && argc > 2) return phases(argv[2], argc > 3 && !strcmp(argv[3], "back"));
  if (!strcmp(mode, "lifecycle")) return lifecycle();
  if (!strcmp(mode, "sites")) return sites();
  if (!strcmp(mode, "bursts") && argc > 2) return bursts(atof(argv[2]));
  if (!strcmp(mode, "tiers") && argc > 2) return tiers(atof(argv[2]));
  if (!strcmp(mode, "grow") && argc > 2) return grow(atof(argv[2]));
  if (!strcmp(mode, "bigs") && argc > 2) return bigs(atof(argv[2]));
  if (!strcmp(mode, "mixes") && argc > 2) return mixes(atof(argv[2]));
  if (!strcmp(mode, "slack")) return slack();
  if (!strcmp(mode, "churn") && argc > 2) {
    double ms = atof(argv[2]), t0 = now();
    size_t mb = argc > 3 ? (size_t)atol(argv[3]) : 16;
    char *hold = malloc(mb << 20);
    if (hold) memset(hold, 1, mb << 20);
    while ((now() - t0) * 1000 < ms) {
      churn_small(10000);
      if (mb) churn_large(20);
    }
    printf("threads %d\n", threads_now());
    free(hold);
    return 0;
  }
  if (!strcmp(mode, "quick")) {
    for (int i = 0; i < 100; i++) free(malloc((size_t)i * 100));
    printf("threads %d\n", threads_now());
    return 0;
  }
  fprintf(stderr, "usage: test_learn_prog phases LOG [back] | lifecycle | churn MS [MB] | bursts MS | tiers MS | mixes MS | grow MS | sites | slack | quick\n");
  return 2;
}
