/* test_stats — the statistics: counters that match a known sequence of
 * operations exactly (one thread), that add up under multithreaded churn
 * (threads that exited are folded in), and hak_stats_json, malloc_stats
 * and mallinfo2 reporting the same numbers as hak_stats_get.
 *
 * Linked to libhakmem.so; compiled with -fno-builtin so that no malloc/free
 * pair is elided.  Exit 77 (skipped) in a -DHAKMEM_BENCH_MINIMAL=ON build,
 * where the statistics are compiled out.
 *
 * Between two hak_stats_get calls the test itself allocates nothing but
 * what it counts (static arrays; no stdio), so the deltas are exact. */
#define _GNU_SOURCE
#include <ctype.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <unistd.h>

#include "check.h"

/* --------------------------------------------------------------- helpers */

/* The class hakmem puts an n-byte request in: the smallest that fits. */
static unsigned class_for(const hak_stats_t *s, size_t n) {
  for (unsigned c = 0; c < s->nclasses; c++)
    if (s->cls[c].block_size >= n) return c;
  return s->nclasses;
}

static long long d_allocs(const hak_stats_t *a, const hak_stats_t *b, unsigned c) {
  return (long long)(b->cls[c].allocs - a->cls[c].allocs);
}
static long long d_frees(const hak_stats_t *a, const hak_stats_t *b, unsigned c) {
  return (long long)(b->cls[c].frees - a->cls[c].frees);
}

#define CHECK_DELTA(what, a, b, field, expect)                                           \
  CHECKF((b).field - (a).field == (unsigned long long)(expect), "%s: %s grew by %lld, expected %lld", \
         what, #field, (long long)((b).field - (a).field), (long long)(expect))

/* ------------------------------------------------------ a tiny JSON reader
 * Validates the whole text and records every number with its path
 * ("large.allocs", "classes.3.frees").  Static storage only. */
#define JMAX 1024
static struct { char path[64]; unsigned long long v; } jvals[JMAX];
static int jn;

typedef struct {
  const char *p;
  bool bad;
} jp_t;

static void jws(jp_t *j) {
  while (*j->p == ' ' || *j->p == '\n' || *j->p == '\t' || *j->p == '\r') j->p++;
}

static bool jstring(jp_t *j, char *out, size_t cap) {
  size_t n = 0;
  if (*j->p != '"') return false;
  for (j->p++; *j->p != '"'; j->p++) {
    unsigned char ch = (unsigned char)*j->p;
    if (ch < 0x20) return false;
    if (ch == '\\') {
      j->p++;
      if (*j->p == 'u') {
        for (int i = 1; i <= 4; i++)
          if (!isxdigit((unsigned char)j->p[i])) return false;
        j->p += 4;
        ch = '?';
      } else if (strchr("\"\\/bfnrt", *j->p) && *j->p) {
        ch = (unsigned char)*j->p;
      } else {
        return false;
      }
    }
    if (n + 1 < cap) out[n++] = (char)ch;
  }
  j->p++;
  out[n] = 0;
  return true;
}

static bool jvalue(jp_t *j, const char *path, int depth);

static void jpath(char *out, size_t cap, const char *base, const char *key) {
  snprintf(out, cap, "%s%s%s", base, *base ? "." : "", key);
}

static bool jvalue(jp_t *j, const char *path, int depth) {
  char sub[64], key[48];
  if (depth > 16) return false;
  jws(j);
  switch (*j->p) {
    case '{':
      j->p++;
      jws(j);
      if (*j->p == '}') return j->p++, true;
      for (;;) {
        jws(j);
        if (!jstring(j, key, sizeof key)) return false;
        jws(j);
        if (*j->p++ != ':') return false;
        jpath(sub, sizeof sub, path, key);
        if (!jvalue(j, sub, depth + 1)) return false;
        jws(j);
        if (*j->p == ',') {
          j->p++;
          continue;
        }
        if (*j->p == '}') return j->p++, true;
        return false;
      }
    case '[': {
      j->p++;
      jws(j);
      if (*j->p == ']') return j->p++, true;
      for (int i = 0;; i++) {
        snprintf(key, sizeof key, "%d", i);
        jpath(sub, sizeof sub, path, key);
        if (!jvalue(j, sub, depth + 1)) return false;
        jws(j);
        if (*j->p == ',') {
          j->p++;
          continue;
        }
        if (*j->p == ']') return j->p++, true;
        return false;
      }
    }
    case '"':
      return jstring(j, key, sizeof key);
    case 't': case 'f': case 'n': {
      const char *w = *j->p == 't' ? "true" : *j->p == 'f' ? "false" : "null";
      if (strncmp(j->p, w, strlen(w))) return false;
      j->p += strlen(w);
      return true;
    }
    default: {
      /* A JSON number; integral ones are recorded. */
      const char *s = j->p;
      if (*j->p == '-') j->p++;
      if (!isdigit((unsigned char)*j->p)) return false;
      if (*j->p == '0' && isdigit((unsigned char)j->p[1])) return false;
      while (isdigit((unsigned char)*j->p)) j->p++;
      bool integral = true;
      if (*j->p == '.') {
        integral = false;
        j->p++;
        if (!isdigit((unsigned char)*j->p)) return false;
        while (isdigit((unsigned char)*j->p)) j->p++;
      }
      if (*j->p == 'e' || *j->p == 'E') {
        integral = false;
        j->p++;
        if (*j->p == '+' || *j->p == '-') j->p++;
        if (!isdigit((unsigned char)*j->p)) return false;
        while (isdigit((unsigned char)*j->p)) j->p++;
      }
      if (integral && *s != '-' && jn < JMAX) {
        snprintf(jvals[jn].path, sizeof jvals[jn].path, "%s", path);
        jvals[jn].v = strtoull(s, NULL, 10);
        jn++;
      }
      return true;
    }
  }
}

/* Parses text; true if it is one valid JSON value and nothing else. */
static bool json_parse(const char *text) {
  jn = 0;
  jp_t j = {text, false};
  if (!jvalue(&j, "", 0)) return false;
  jws(&j);
  return *j.p == 0;
}

/* The number at path; -1 (and a failed check) when it is missing. */
static int json_count(const char *path) {
  int n = 0;
  for (int i = 0; i < jn; i++) n += !strcmp(jvals[i].path, path);
  return n;
}
static unsigned long long json_get(const char *path) {
  for (int i = 0; i < jn; i++)
    if (!strcmp(jvals[i].path, path)) return jvals[i].v;
  CHECKF(0, "JSON has no number at %s", path);
  return ~0ull;
}

#define CHECK_JSON(path, value)                                                         \
  do {                                                                                  \
    unsigned long long cj_v_ = json_get(path);                                          \
    CHECKF(cj_v_ == (unsigned long long)(value), "JSON %s = %llu, hak_stats_get says %llu", \
           path, cj_v_, (unsigned long long)(value));                                   \
  } while (0)

/* ------------------------------------------------ one thread, exact counts */

#define N24 1000
#define N24_FREE 600
#define N24_CALLOC 300
#define NMID 100
#define NMID_FREE 30
#define MID_SIZE 5000
#define NLARGE 10
#define NLARGE_FREE 4
#define LARGE_SIZE 100000
#define NBIG 3
#define NBIG_FREE 2
#define BIG_SIZE (3 * MiB)

static void *small[N24], *mid[NMID], *large[NLARGE], *big[NBIG];
static hak_stats_t s0, s1, s1b, s2, s3;

/* Every class counter but those of classes c1 and c2 unchanged. */
static void check_other_classes(const char *what, const hak_stats_t *a, const hak_stats_t *b,
                                unsigned c1, unsigned c2) {
  for (unsigned c = 0; c < a->nclasses; c++) {
    if (c == c1 || c == c2) continue;
    CHECKF(d_allocs(a, b, c) == 0 && d_frees(a, b, c) == 0,
           "%s: class %u (%llu B) changed: allocs +%lld, frees +%lld", what, c,
           a->cls[c].block_size, d_allocs(a, b, c), d_frees(a, b, c));
  }
}

static void stats_single(void) {
  CHECK(hak_stats_get(NULL) == -1);
  CHECK(hak_stats_get(&s0) == 0);
  CHECK(s0.version == HAK_STATS_VERSION);
  CHECK(s0.nclasses == HAK_STATS_NCLASSES);
  for (unsigned c = 1; c < s0.nclasses; c++)
    CHECKF(s0.cls[c].block_size > s0.cls[c - 1].block_size, "class sizes not increasing at %u", c);
  CHECK(s0.cls[s0.nclasses - 1].block_size == 64 * KiB);
  unsigned c24 = class_for(&s0, 24), cmid = class_for(&s0, MID_SIZE);
  CHECK(c24 < 32 && cmid >= 32 && cmid < s0.nclasses);

  /* ---- the sequence */
  CHECK(hak_stats_get(&s0) == 0);
  for (int i = 0; i < N24; i++) small[i] = i < N24_CALLOC ? calloc(1, 24) : malloc(24);
  for (int i = 0; i < N24_FREE; i++) free(small[i]);
  for (int i = 0; i < NMID; i++) mid[i] = malloc(MID_SIZE);
  for (int i = 0; i < NMID_FREE; i++) free(mid[i]);
  for (int i = 0; i < NLARGE; i++) large[i] = malloc(LARGE_SIZE);
  for (int i = 0; i < NLARGE_FREE; i++) free(large[i]);
  for (int i = 0; i < NBIG; i++) big[i] = malloc(BIG_SIZE);
  for (int i = 0; i < NBIG_FREE; i++) free(big[i]);
  /* A realloc that must move (24 -> 5000 bytes): one mid alloc, one tiny free. */
  small[N24 - 1] = realloc(small[N24 - 1], MID_SIZE);
  CHECK(hak_stats_get(&s1) == 0);

  for (int i = 0; i < N24; i++) CHECK(small[i] != NULL);
  for (int i = 0; i < NMID; i++) CHECK(mid[i] != NULL);
  for (int i = 0; i < NLARGE; i++) CHECK(large[i] != NULL);
  for (int i = 0; i < NBIG; i++) CHECK(big[i] != NULL);

  CHECKF(d_allocs(&s0, &s1, c24) == N24, "class %u (24 B): allocs +%lld, expected %d", c24,
         d_allocs(&s0, &s1, c24), N24);
  CHECKF(d_frees(&s0, &s1, c24) == N24_FREE + 1, "class %u (24 B): frees +%lld, expected %d", c24,
         d_frees(&s0, &s1, c24), N24_FREE + 1);
  CHECKF(d_allocs(&s0, &s1, cmid) == NMID + 1, "class %u (%d B): allocs +%lld, expected %d", cmid,
         MID_SIZE, d_allocs(&s0, &s1, cmid), NMID + 1);
  CHECKF(d_frees(&s0, &s1, cmid) == NMID_FREE, "class %u (%d B): frees +%lld, expected %d", cmid,
         MID_SIZE, d_frees(&s0, &s1, cmid), NMID_FREE);
  check_other_classes("sequence", &s0, &s1, c24, cmid);
  for (unsigned c = 0; c < s0.nclasses; c++)
    CHECKF(s1.cls[c].remote_frees == s0.cls[c].remote_frees, "class %u: remote frees in one thread", c);
  CHECK(s1.cls[c24].refills > s0.cls[c24].refills);
  CHECK_DELTA("sequence", s0, s1, large_allocs, NLARGE);
  CHECK_DELTA("sequence", s0, s1, large_frees, NLARGE_FREE);
  CHECK_DELTA("sequence", s0, s1, big_allocs, NBIG);
  CHECK_DELTA("sequence", s0, s1, big_frees, NBIG_FREE);
  CHECKF(s1.large_cache_hits - s0.large_cache_hits + s1.large_cache_misses - s0.large_cache_misses == NLARGE,
         "Large cache hits + misses != Large allocations");
  CHECKF(s1.bigcache_hits - s0.bigcache_hits + s1.bigcache_misses - s0.bigcache_misses == NBIG,
         "BigCache hits + misses != Big allocations");
  CHECK_DELTA("sequence", s0, s1, threads_exited, 0);
  CHECK_DELTA("sequence", s0, s1, invalid_frees, 0);
  CHECK_DELTA("sequence", s0, s1, double_frees, 0);
  CHECK(s1.slabs_acquired > s0.slabs_acquired);
  CHECK(s1.os_mmap >= s0.os_mmap + NBIG); /* at least the Big mappings */
  CHECK(s1.mapped >= s1.committed && s1.peak_committed >= s1.committed);
  CHECK(s1.rss > 0 && s1.peak_rss >= s1.rss / 2 && s1.page_faults > 0);

  /* Live bytes: every block at its usable size (Tiny/Mid: the class size;
   * Large and Big: the page-rounded span, with any headroom). */
  unsigned long long expect = (N24 - N24_FREE - 1) * s0.cls[c24].block_size +
                              (NMID - NMID_FREE + 1) * s0.cls[cmid].block_size;
  for (int i = NLARGE_FREE; i < NLARGE; i++) expect += hak_usable_size(large[i]);
  for (int i = NBIG_FREE; i < NBIG; i++) expect += hak_usable_size(big[i]);
  CHECKF(s1.live_bytes - s0.live_bytes == expect, "live bytes grew by %llu, expected %llu",
         s1.live_bytes - s0.live_bytes, expect);
  CHECK(hak_usable_size(large[NLARGE - 1]) >= LARGE_SIZE && hak_usable_size(big[NBIG - 1]) >= BIG_SIZE);

  /* Asking again changes nothing: the sync is not counted twice. */
  CHECK(hak_stats_get(&s1b) == 0);
  check_other_classes("second look", &s1, &s1b, s0.nclasses, s0.nclasses);
  CHECK(s1b.large_allocs == s1.large_allocs && s1b.big_frees == s1.big_frees);
  CHECK(s1b.live_bytes == s1.live_bytes);

  /* ---- free the rest: every count balances, live bytes back where they were */
  for (int i = N24_FREE; i < N24; i++) free(small[i]);
  for (int i = NMID_FREE; i < NMID; i++) free(mid[i]);
  for (int i = NLARGE_FREE; i < NLARGE; i++) free(large[i]);
  for (int i = NBIG_FREE; i < NBIG; i++) free(big[i]);
  CHECK(hak_stats_get(&s2) == 0);
  CHECK(d_allocs(&s0, &s2, c24) == N24 && d_frees(&s0, &s2, c24) == N24);
  CHECK(d_allocs(&s0, &s2, cmid) == NMID + 1 && d_frees(&s0, &s2, cmid) == NMID + 1);
  check_other_classes("all freed", &s0, &s2, c24, cmid);
  CHECK_DELTA("all freed", s0, s2, large_allocs, NLARGE);
  CHECK_DELTA("all freed", s0, s2, large_frees, NLARGE);
  CHECK_DELTA("all freed", s0, s2, big_allocs, NBIG);
  CHECK_DELTA("all freed", s0, s2, big_frees, NBIG);
  CHECKF(s2.live_bytes == s0.live_bytes, "live bytes %llu after freeing everything, %llu before",
         s2.live_bytes, s0.live_bytes);

  /* hak_trim gives slabs back; the counts do not move. */
  hak_trim();
  CHECK(hak_stats_get(&s3) == 0);
  check_other_classes("after trim", &s2, &s3, s0.nclasses, s0.nclasses);
  CHECK(s3.live_bytes == s2.live_bytes);
}

/* One buffer of 48 KiB (a Mid class) taken and given back again and again:
 * the same block every time (the current slab's last block goes back to
 * the head of its list, hak_free_owner_slow), and the class's statistics
 * still count every allocation and free. */
static void stats_one_buffer(void) {
  enum { LOOPS = 5000, SIZE = 48 * 1024 };
  hak_stats_t a, b;
  CHECK(hak_stats_get(&a) == 0);
  unsigned c = class_for(&a, SIZE);
  CHECK(c >= 32 && c < a.nclasses);
  void *first = NULL;
  int moved = 0;
  for (int i = 0; i < LOOPS; i++) {
    char *p = malloc(SIZE);
    CHECK(p != NULL);
    if (!p) return;
    p[0] = p[SIZE - 1] = (char)i;
    if (!first) first = p;
    moved += p != first;
    free(p);
  }
  CHECKF(moved == 0, "%d of %d loops got another block than the first", moved, LOOPS);
  CHECK(hak_stats_get(&b) == 0);
  CHECKF(d_allocs(&a, &b, c) == LOOPS && d_frees(&a, &b, c) == LOOPS, "class %u: allocs +%lld, frees +%lld, expected %d",
         c, d_allocs(&a, &b, c), d_frees(&a, &b, c), LOOPS);
  check_other_classes("one buffer", &a, &b, c, c);
  CHECK_DELTA("one buffer", a, b, large_allocs, 0);
  CHECK(b.live_bytes == a.live_bytes);
}

/* A class whose slabs are packed: 8192 blocks of 64 B, each op freeing a
 * random one and allocating another.  Every free leaves one hole; a
 * refill that took a slab for its single hole would come back at the next
 * malloc (about 600 refills per 1000 mallocs before heap.c's MIN_ROOM:
 * now the current slab, while it has room left, carves a page instead,
 * and the holes gather).
 * The refills counter counts each time the slow path filled a slab's free
 * list, so this is exact for a single thread. */
static void *packed[8192];

static void stats_packed_class(void) {
  enum { N = 8192, OPS = 200000, SIZE = 64 };
  hak_stats_t a, b;
  uint64_t rng = 1;
  for (int i = 0; i < N; i++) packed[i] = malloc(SIZE);
  CHECK(hak_stats_get(&a) == 0);
  unsigned c = class_for(&a, SIZE);
  for (int k = 0; k < OPS; k++) {
    unsigned i = (unsigned)(rng_next(&rng) % N);
    free(packed[i]);
    packed[i] = malloc(SIZE);
    CHECK(packed[i] != NULL);
  }
  CHECK(hak_stats_get(&b) == 0);
  long long refills = (long long)(b.cls[c].refills - a.cls[c].refills);
  CHECKF(d_allocs(&a, &b, c) == OPS, "class %u: allocs +%lld, expected %d", c, d_allocs(&a, &b, c), OPS);
  CHECKF(refills * 1000 < 250LL * OPS, "class %u: %lld refills for %d mallocs (a slow path for most)", c, refills,
         OPS);
  for (int i = 0; i < N; i++) free(packed[i]);
}

/* ------------------------------------------------------------------ JSON */

static char json[64 * 1024], json_small[16];

static void stats_json(void) {
  /* Some live blocks, so that the numbers are not all zero. */
  for (int i = 0; i < 100; i++) small[i] = malloc(40);
  large[0] = malloc(LARGE_SIZE);
  big[0] = malloc(BIG_SIZE);
  CHECK(hak_stats_get(&s1) == 0);
  size_t n = hak_stats_json(json, sizeof json);
  CHECK(hak_stats_get(&s2) == 0);
  CHECKF(n > 0 && n < sizeof json && strlen(json) == n, "hak_stats_json returned %zu, wrote %zu", n,
         strlen(json));
  /* Cut at cap: NUL-terminated, the full length still returned. */
  size_t m = hak_stats_json(json_small, sizeof json_small);
  CHECKF(m + 8 > n && m < n + 8, "truncated call returned %zu, full one %zu", m, n);
  CHECK(strlen(json_small) == sizeof json_small - 1);
  CHECK(!strncmp(json_small, json, sizeof json_small - 1));
  size_t k = hak_stats_json(NULL, 0);
  CHECKF(k + 8 > n && k < n + 8, "hak_stats_json(NULL, 0) returned %zu, full call %zu", k, n);

  CHECKF(json_parse(json), "hak_stats_json does not parse as JSON:\n%s", json);
  /* s1 and s2 bracket the call and nothing allocated in between: the
   * counters are the same in all three. */
  check_other_classes("around hak_stats_json", &s1, &s2, s1.nclasses, s1.nclasses);
  CHECK_JSON("version", s1.version);
  char last[32], past[32];
  snprintf(last, sizeof last, "classes.%u.size", s1.nclasses - 1);
  snprintf(past, sizeof past, "classes.%u.size", s1.nclasses);
  CHECKF(json_count(last) == 1 && json_count(past) == 0,
         "JSON classes: not %u of them", s1.nclasses);
  char path[64];
  for (unsigned c = 0; c < s1.nclasses; c++) {
    snprintf(path, sizeof path, "classes.%u.size", c);
    CHECK_JSON(path, s1.cls[c].block_size);
    snprintf(path, sizeof path, "classes.%u.allocs", c);
    CHECK_JSON(path, s1.cls[c].allocs);
    snprintf(path, sizeof path, "classes.%u.frees", c);
    CHECK_JSON(path, s1.cls[c].frees);
    snprintf(path, sizeof path, "classes.%u.remote_frees", c);
    CHECK_JSON(path, s1.cls[c].remote_frees);
    snprintf(path, sizeof path, "classes.%u.refills", c);
    CHECK_JSON(path, s1.cls[c].refills);
  }
  CHECK_JSON("slabs_acquired", s1.slabs_acquired);
  CHECK_JSON("slabs_released", s1.slabs_released);
  CHECK_JSON("segments_adopted", s1.segments_adopted);
  CHECK_JSON("threads_exited", s1.threads_exited);
  CHECK_JSON("large.allocs", s1.large_allocs);
  CHECK_JSON("large.frees", s1.large_frees);
  CHECK_JSON("large.cache_hits", s1.large_cache_hits);
  CHECK_JSON("large.cache_misses", s1.large_cache_misses);
  CHECK_JSON("big.allocs", s1.big_allocs);
  CHECK_JSON("big.frees", s1.big_frees);
  CHECK_JSON("big.cache_hits", s1.bigcache_hits);
  CHECK_JSON("big.cache_misses", s1.bigcache_misses);
  CHECK_JSON("os.mmap", s1.os_mmap);
  CHECK_JSON("os.munmap", s1.os_munmap);
  CHECK_JSON("os.madvise", s1.os_madvise);
  CHECK_JSON("os.mremap", s1.os_mremap);
  CHECK_JSON("mapped", s1.mapped);
  CHECK_JSON("committed", s1.committed);
  CHECK_JSON("peak_committed", s1.peak_committed);
  CHECK_JSON("live_bytes", s1.live_bytes);
  CHECK_JSON("invalid_frees", s1.invalid_frees);
  CHECK_JSON("double_frees", s1.double_frees);
  /* Process figures move on their own; only their presence is checked. */
  CHECK(json_count("rss") == 1 && json_count("peak_rss") == 1 && json_count("page_faults") == 1);
  CHECK(json_get("rss") > 0);

  for (int i = 0; i < 100; i++) free(small[i]);
  free(large[0]);
  free(big[0]);
}

/* ------------------------------------------------ malloc_stats, mallinfo2 */

static char text[16 * 1024];

/* The line of text that starts with prefix, or NULL. */
static const char *line_after(const char *prefix) {
  for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
    if (!strncmp(l, prefix, strlen(prefix))) return l + strlen(prefix);
  return NULL;
}

static void stats_malloc_stats(void) {
  for (int i = 0; i < 50; i++) small[i] = malloc(24);
  for (int i = 0; i < 5; i++) mid[i] = malloc(MID_SIZE);
  large[0] = malloc(LARGE_SIZE);
  char name[] = "/tmp/hakmem-test-stats.XXXXXX";
  int fd = mkstemp(name);
  CHECK(fd >= 0);
  if (fd < 0) return;
  unlink(name);
  int saved = dup(2);
  CHECK(saved >= 0);
  /* malloc_stats writes to stderr: catch it. */
  CHECK(hak_stats_get(&s1) == 0);
  CHECK(dup2(fd, 2) == 2);
  malloc_stats();
  CHECK(dup2(saved, 2) == 2);
  close(saved);
  CHECK(hak_stats_get(&s2) == 0);
  ssize_t n = pread(fd, text, sizeof text - 1, 0);
  close(fd);
  CHECK(n > 0);
  text[n > 0 ? n : 0] = 0;
  check_other_classes("around malloc_stats", &s1, &s2, s1.nclasses, s1.nclasses);

  char head[64];
  snprintf(head, sizeof head, "hakmem: --- test_stats (pid %d) ---\n", (int)getpid());
  CHECKF(!strncmp(text, head, strlen(head)), "malloc_stats: first line is not '%.*s':\n%s",
         (int)strlen(head) - 1, head, text);
  unsigned long long ta = 0, tf = 0, tr = 0, ma = 0, mf = 0, mr = 0;
  for (unsigned c = 0; c < s1.nclasses; c++) {
    if (s1.cls[c].block_size <= 1024) ta += s1.cls[c].allocs, tf += s1.cls[c].frees, tr += s1.cls[c].remote_frees;
    else ma += s1.cls[c].allocs, mf += s1.cls[c].frees, mr += s1.cls[c].remote_frees;
  }
  unsigned long long a = 0, f = 0, r = 0, h = 0, mi = 0, x1 = 0, x2 = 0, x3 = 0;
  const char *l;
  CHECKF((l = line_after("hakmem: tiny ")) &&
             sscanf(l, " allocs %llu, frees %llu, remote frees %llu", &a, &f, &r) == 3 && a == ta &&
             f == tf && r == tr,
         "malloc_stats tiny line: %llu %llu %llu, hak_stats_get: %llu %llu %llu", a, f, r, ta, tf, tr);
  CHECKF((l = line_after("hakmem: mid ")) &&
             sscanf(l, " allocs %llu, frees %llu, remote frees %llu", &a, &f, &r) == 3 && a == ma &&
             f == mf && r == mr,
         "malloc_stats mid line: %llu %llu %llu, hak_stats_get: %llu %llu %llu", a, f, r, ma, mf, mr);
  CHECKF((l = line_after("hakmem: large ")) &&
             sscanf(l, " allocs %llu, frees %llu, cache hits %llu, misses %llu", &a, &f, &h, &mi) == 4 &&
             a == s1.large_allocs && f == s1.large_frees && h == s1.large_cache_hits &&
             mi == s1.large_cache_misses,
         "malloc_stats large line differs from hak_stats_get:\n%s", text);
  CHECKF((l = line_after("hakmem: big ")) &&
             sscanf(l, " allocs %llu, frees %llu, BigCache hits %llu, misses %llu", &a, &f, &h, &mi) == 4 &&
             a == s1.big_allocs && f == s1.big_frees && h == s1.bigcache_hits &&
             mi == s1.bigcache_misses,
         "malloc_stats big line differs from hak_stats_get:\n%s", text);
  CHECKF((l = line_after("hakmem: slabs ")) &&
             sscanf(l, " taken %llu, given back %llu, segments adopted %llu, threads exited %llu", &f,
                    &x1, &x3, &x2) == 4 &&
             f == s1.slabs_acquired && x1 == s1.slabs_released && x2 == s1.threads_exited &&
             x3 == s1.segments_adopted,
         "malloc_stats slabs line differs from hak_stats_get:\n%s", text);
  CHECKF((l = line_after("hakmem: kernel ")) && sscanf(l, " mmap %llu, munmap %llu", &a, &f) == 2 &&
             a <= s2.os_mmap && f <= s2.os_munmap,
         "malloc_stats: no kernel line:\n%s", text);
  CHECKF((l = line_after("hakmem: memory ")) && strstr(l, "mapped ") && strstr(l, ", live "),
         "malloc_stats: no memory line:\n%s", text);
  CHECKF((l = line_after("hakmem: process ")) && strstr(l, "RSS ") && strstr(l, ", page faults "),
         "malloc_stats: no process line:\n%s", text);
  CHECKF((l = line_after("hakmem: errors ")) &&
             sscanf(l, " invalid frees %llu, double frees %llu", &a, &f) == 2 && a == s1.invalid_frees &&
             f == s1.double_frees,
         "malloc_stats errors line differs from hak_stats_get:\n%s", text);

  /* hak_stats_print writes the same summary to any descriptor. */
  fd = open("/dev/null", O_WRONLY);
  hak_stats_print(fd);
  close(fd);

  /* mallinfo2 and hak_usage: the same mapped and committed figures. */
  struct mallinfo2 m2 = mallinfo2();
  hak_usage_t u;
  hak_usage(&u);
  CHECK(hak_stats_get(&s1) == 0);
  CHECKF(m2.arena == s1.mapped, "mallinfo2.arena %zu, mapped %llu", m2.arena, s1.mapped);
  CHECKF(m2.uordblks <= s1.committed, "mallinfo2.uordblks %zu > committed %llu", m2.uordblks, s1.committed);
  CHECKF(m2.uordblks + m2.fordblks == m2.arena, "mallinfo2: uordblks %zu + fordblks %zu != arena %zu",
         m2.uordblks, m2.fordblks, m2.arena);
  CHECK(m2.keepcost <= s1.committed);
  CHECK(m2.uordblks >= 50 * 32 + 5 * MID_SIZE + LARGE_SIZE);
  CHECK(u.mapped == s1.mapped && u.committed == s1.committed && u.peak_committed == s1.peak_committed);
  CHECK(u.os_mmap == s1.os_mmap && u.os_munmap == s1.os_munmap && u.os_madvise == s1.os_madvise);

  for (int i = 0; i < 50; i++) free(small[i]);
  for (int i = 0; i < 5; i++) free(mid[i]);
  free(large[0]);
}

/* ------------------------------------------------- multithreaded churn
 * Each thread allocates and frees blocks of a few sizes at random, hands
 * some to the next thread to free (remote frees), and keeps some alive
 * when it exits.  All frees happen before any thread exits (barriers), so
 * that each exiting thread's counters are complete when they are folded
 * in.  Afterwards, per class: allocs - frees == the blocks still alive,
 * allocs == what the threads allocated, remote_frees == the handed-over
 * frees; and for Large and Big the same. */

#define NT 4
#define SLOTS 256
#define ITERS 100000
#define MAIL 64
static const size_t churn_sizes[] = {24, 100, 700, 3000, 12000, 100000, 2 * MiB + 4096};
#define NSIZES (sizeof churn_sizes / sizeof churn_sizes[0])

typedef struct {
  pthread_mutex_t lock;
  void *p[MAIL];
  unsigned kind[MAIL];
  int n;
} mailbox_t;

static mailbox_t mail[NT];
static pthread_barrier_t churn_barrier;
/* Per thread and size kind: what it allocated, freed remotely (blocks
 * allocated by another thread), and left alive. */
static unsigned long long t_allocs[NT][NSIZES], t_remote[NT][NSIZES];
static void *kept[NT][SLOTS];
static unsigned kept_kind[NT][SLOTS];
static atomic_int churn_done;

static void *churn_thread(void *arg) {
  int me = (int)(intptr_t)arg;
  uint64_t rng = 0x1234 + (uint64_t)me * 977;
  void *slot[SLOTS] = {0};
  unsigned kind[SLOTS];
  mailbox_t *next = &mail[(me + 1) % NT], *mine = &mail[me];
  for (int it = 0; it < ITERS; it++) {
    unsigned i = (unsigned)rng_range(&rng, 0, SLOTS - 1);
    if (slot[i]) {
      /* Every 4th free goes to the next thread instead (if its box has room). */
      bool sent = false;
      if (rng_range(&rng, 0, 3) == 0) {
        pthread_mutex_lock(&next->lock);
        if (next->n < MAIL) {
          next->p[next->n] = slot[i];
          next->kind[next->n++] = kind[i];
          sent = true;
        }
        pthread_mutex_unlock(&next->lock);
      }
      if (!sent) free(slot[i]);
      slot[i] = NULL;
    } else {
      /* Mostly small; Large 1 in 64, Big 1 in 1024. */
      unsigned k = (unsigned)rng_range(&rng, 0, 4);
      uint64_t r = rng_range(&rng, 0, 1023);
      if (r == 0) k = 6;
      else if (r < 16) k = 5;
      slot[i] = malloc(churn_sizes[k]);
      CHECK(slot[i] != NULL);
      if (!slot[i]) continue;
      memset(slot[i], me, 16);
      kind[i] = k;
      t_allocs[me][k]++;
    }
    if ((it & 63) == 0) {
      pthread_mutex_lock(&mine->lock);
      for (int j = 0; j < mine->n; j++) {
        free(mine->p[j]);
        t_remote[me][mine->kind[j]]++;
      }
      mine->n = 0;
      pthread_mutex_unlock(&mine->lock);
    }
  }
  pthread_barrier_wait(&churn_barrier); /* nobody sends any more */
  pthread_mutex_lock(&mine->lock);
  for (int j = 0; j < mine->n; j++) {
    free(mine->p[j]);
    t_remote[me][mine->kind[j]]++;
  }
  mine->n = 0;
  pthread_mutex_unlock(&mine->lock);
  for (int i = 0; i < SLOTS; i++) {
    kept[me][i] = slot[i];
    kept_kind[me][i] = kind[i];
  }
  pthread_barrier_wait(&churn_barrier); /* every free is done: exit */
  atomic_fetch_add(&churn_done, 1);
  return NULL;
}

static void *nothing(void *arg) { return arg; }

static void stats_threads(void) {
  /* Warm up thread creation (glibc caches stacks and their TLS vectors),
   * so that later thread starts allocate nothing of their own. */
  for (int r = 0; r < 2; r++) {
    pthread_t w[NT];
    for (int i = 0; i < NT; i++) CHECK(pthread_create(&w[i], NULL, nothing, NULL) == 0);
    for (int i = 0; i < NT; i++) pthread_join(w[i], NULL);
  }
  for (int i = 0; i < NT; i++) pthread_mutex_init(&mail[i].lock, NULL);
  pthread_barrier_init(&churn_barrier, NULL, NT);
  hak_stats_t a, b, prev;
  CHECK(hak_stats_get(&a) == 0);
  unsigned cls[NSIZES];
  for (unsigned k = 0; k < NSIZES; k++) cls[k] = class_for(&a, churn_sizes[k]);

  pthread_t t[NT];
  for (int i = 0; i < NT; i++) CHECK(pthread_create(&t[i], NULL, churn_thread, (void *)(intptr_t)i) == 0);
  /* Meanwhile: merged totals never go backwards. */
  prev = a;
  int looks = 0;
  while (atomic_load(&churn_done) < NT) {
    CHECK(hak_stats_get(&b) == 0);
    looks++;
    for (unsigned c = 0; c < b.nclasses; c++) {
      CHECKF(b.cls[c].allocs >= prev.cls[c].allocs && b.cls[c].frees >= prev.cls[c].frees &&
                 b.cls[c].remote_frees >= prev.cls[c].remote_frees,
             "class %u went backwards during churn: allocs %llu -> %llu, frees %llu -> %llu", c,
             prev.cls[c].allocs, b.cls[c].allocs, prev.cls[c].frees, b.cls[c].frees);
    }
    CHECK(b.large_allocs >= prev.large_allocs && b.big_frees >= prev.big_frees);
    prev = b;
    usleep(1000);
  }
  for (int i = 0; i < NT; i++) pthread_join(t[i], NULL);
  CHECK(hak_stats_get(&b) == 0);
  CHECK(looks > 0);

  CHECK_DELTA("churn", a, b, threads_exited, NT);
  long long live[NSIZES] = {0}, allocs[NSIZES] = {0}, remote[NSIZES] = {0};
  for (int i = 0; i < NT; i++)
    for (unsigned k = 0; k < NSIZES; k++) allocs[k] += (long long)t_allocs[i][k], remote[k] += (long long)t_remote[i][k];
  for (int i = 0; i < NT; i++)
    for (int j = 0; j < SLOTS; j++)
      if (kept[i][j]) live[kept_kind[i][j]]++;
  for (unsigned k = 0; k < 5; k++) {
    unsigned c = cls[k];
    long long da = d_allocs(&a, &b, c), df = d_frees(&a, &b, c);
    long long dr = (long long)(b.cls[c].remote_frees - a.cls[c].remote_frees);
    CHECKF(da == allocs[k], "%zu B (class %u): allocs +%lld, the threads made %lld", churn_sizes[k], c,
           da, allocs[k]);
    CHECKF(da - df == live[k], "%zu B (class %u): allocs - frees = %lld, %lld blocks alive",
           churn_sizes[k], c, da - df, live[k]);
    CHECKF(dr == remote[k], "%zu B (class %u): remote frees +%lld, the threads made %lld",
           churn_sizes[k], c, dr, remote[k]);
    CHECK(allocs[k] > 1000 && remote[k] > 0);
  }
  long long dla = (long long)(b.large_allocs - a.large_allocs), dlf = (long long)(b.large_frees - a.large_frees);
  long long dba = (long long)(b.big_allocs - a.big_allocs), dbf = (long long)(b.big_frees - a.big_frees);
  CHECKF(dla == allocs[5] && dla - dlf == live[5], "Large: allocs +%lld frees +%lld; made %lld, alive %lld",
         dla, dlf, allocs[5], live[5]);
  CHECKF(dba == allocs[6] && dba - dbf == live[6], "Big: allocs +%lld frees +%lld; made %lld, alive %lld",
         dba, dbf, allocs[6], live[6]);
  CHECK(allocs[5] > 10 && allocs[6] > 0);
  /* Nothing else allocated or freed anything in the meantime. */
  long long other = 0;
  for (unsigned c = 0; c < b.nclasses; c++) {
    bool used = false;
    for (unsigned k = 0; k < 5; k++) used |= cls[k] == c;
    if (!used) other += llabs(d_allocs(&a, &b, c)) + llabs(d_frees(&a, &b, c));
  }
  CHECKF(other == 0, "%lld allocations or frees in classes the threads did not use", other);

  /* The main thread frees what the threads left (into abandoned slabs). */
  for (int i = 0; i < NT; i++)
    for (int j = 0; j < SLOTS; j++) free(kept[i][j]);
  pthread_barrier_destroy(&churn_barrier);
}

int main(int argc, char **argv) {
  section_select(argc, argv);
  if (hak_build_minimal()) {
    printf("SKIP: statistics are compiled out (-DHAKMEM_BENCH_MINIMAL=ON)\n");
    return 77;
  }
  check_hakmem_active();
  RUN_SECTION(stats_single);
  RUN_SECTION(stats_one_buffer);
  RUN_SECTION(stats_packed_class);
  RUN_SECTION(stats_json);
  RUN_SECTION(stats_malloc_stats);
  RUN_SECTION(stats_threads);
  return check_report("stats");
}
