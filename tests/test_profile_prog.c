/* test_profile_prog.c — allocation sites with known figures, for the
 * call-site profile tests (check_profile.py runs it and reads the profile).
 *
 *   test_profile_prog sites    json_site 1000 x 64000 B, mir_site 100 x
 *                              256000 B, vm_site 10 x 2 MiB, each block freed
 *                              at once; with HAK_TEST_PRELOAD also small_site
 *                              2,000,000 x 48 B, all alive, then all freed
 *   test_profile_prog leak     leak_large_site 3 x 100000 B and leak_small_site
 *                              50,000 x 64 B left alive at exit; freed_large_site
 *                              100 x 100000 B and freed_small_site 50,000 x 64 B
 *                              freed
 *   test_profile_prog exit3    a child (child_site) allocates and exits first,
 *                              then the seed's three sites; exits with status 3
 *   test_profile_prog mid      mid_alloc 20,000 x 4096 B, all alive, then freed
 *   test_profile_prog stuck    startup_alloc 10 x 48 B kept, then hot_alloc
 *                              1,000,000 x 64 B, each freed at once
 *   test_profile_prog mixed    mixed_a_alloc 32 B and mixed_b_alloc 512 B, 200,000
 *                              each, interleaved, all alive, then freed
 *   test_profile_prog cs-small cs_small_site 100,000 x hak_alloc_cs(48), freed
 *                              (linked build only)
 *
 * Built twice: linked to hakmem, where the seed's three sites go through
 * hak_alloc_cs/hak_free_cs (every call counted exactly), and with
 * HAK_TEST_PRELOAD, not linked to hakmem, where every site is plain malloc
 * (run under LD_PRELOAD).  The site functions are exported (-rdynamic) and
 * never inlined, so dladdr names them.  Nothing here prints unless a call
 * fails: stdio's buffers would be allocations of their own.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#if !defined(HAK_TEST_PRELOAD)
#include "hakmem.h"
#define SITE_ALLOC(n) hak_alloc_cs(n)
#define SITE_FREE(p) hak_free_cs(p)
#else
#define SITE_ALLOC(n) malloc(n)
#define SITE_FREE(p) free(p)
#endif

/* noipa: no constant-propagated clone (a local "f.constprop.0" symbol,
 * which dladdr cannot name) */
#if defined(__clang__)
#define EXPORT __attribute__((noinline, used, visibility("default")))
#else
#define EXPORT __attribute__((noinline, noipa, used, visibility("default")))
#endif

void *volatile sink;        /* keeps every allocation observable */
void **volatile leaked[2];  /* reachable at exit: not freed, on purpose */

static void fail(const char *what, size_t n) {
  fprintf(stderr, "test_profile_prog: %s(%zu) failed\n", what, n);
  exit(1);
}

/* Touches a block so that the allocation cannot be elided. */
static void use(void *p, size_t n) {
  if (!p) fail("allocation", n);
  memset(p, 0xA5, n < 64 ? n : 64);
  sink = p;
}

EXPORT void json_site(void) {
  for (int i = 0; i < 1000; i++) {
    void *p = SITE_ALLOC(64000);
    use(p, 64000);
    SITE_FREE(p);
  }
}

EXPORT void mir_site(void) {
  for (int i = 0; i < 100; i++) {
    void *p = SITE_ALLOC(256000);
    use(p, 256000);
    SITE_FREE(p);
  }
}

EXPORT void vm_site(void) {
  for (int i = 0; i < 10; i++) {
    void *p = SITE_ALLOC((size_t)2 << 20);
    use(p, (size_t)2 << 20);
    SITE_FREE(p);
  }
}

/* n blocks of `size` bytes from one call site; the array of them is
 * allocated by the caller (its own site). */
static void **small_blocks(void **v, size_t n, size_t size, void *(*alloc)(size_t)) {
  for (size_t i = 0; i < n; i++) {
    v[i] = alloc(size);
    if (!v[i]) fail("malloc", size);
  }
  return v;
}

/* One malloc call site per function: the calls below are the sites. */
EXPORT void *small_site_alloc(size_t n) { void *p = malloc(n); sink = p; return p; }
EXPORT void *leak_small_alloc(size_t n) { void *p = malloc(n); sink = p; return p; }
EXPORT void *freed_small_alloc(size_t n) { void *p = malloc(n); sink = p; return p; }

EXPORT void *mid_alloc(size_t n) { void *p = malloc(n); sink = p; return p; }
EXPORT void *startup_alloc(size_t n) { void *p = malloc(n); sink = p; return p; }
EXPORT void *hot_alloc(size_t n) { void *p = malloc(n); sink = p; return p; }
EXPORT void *mixed_a_alloc(size_t n) { void *p = malloc(n); sink = p; return p; }
EXPORT void *mixed_b_alloc(size_t n) { void *p = malloc(n); sink = p; return p; }

EXPORT void small_site(void) {
  size_t n = 2000000;
  void **v = malloc(n * sizeof *v);
  if (!v) fail("malloc", n * sizeof *v);
  small_blocks(v, n, 48, small_site_alloc);
  for (size_t i = 0; i < n; i++) free(v[i]);
  free(v);
}

EXPORT void leak_large_site(void) {
  static void *keep[3];
  for (int i = 0; i < 3; i++) {
    keep[i] = malloc(100000);
    use(keep[i], 100000);
  }
  leaked[0] = keep;
}

EXPORT void leak_small_site(void) {
  size_t n = 50000;
  void **v = malloc(n * sizeof *v);
  if (!v) fail("malloc", n * sizeof *v);
  leaked[1] = small_blocks(v, n, 64, leak_small_alloc);
}

EXPORT void freed_large_site(void) {
  for (int i = 0; i < 100; i++) {
    void *p = malloc(100000);
    use(p, 100000);
    free(p);
  }
}

EXPORT void freed_small_site(void) {
  size_t n = 50000;
  void **v = malloc(n * sizeof *v);
  if (!v) fail("malloc", n * sizeof *v);
  small_blocks(v, n, 64, freed_small_alloc);
  for (size_t i = 0; i < n; i++) free(v[i]);
  free(v);
}

EXPORT void child_site(void) {
  for (int i = 0; i < 5; i++) {
    void *p = malloc(300000);
    use(p, 300000);
    free(p);
  }
}

EXPORT void mid_site(void) {
  size_t n = 20000;
  void **v = malloc(n * sizeof *v);
  if (!v) fail("malloc", n * sizeof *v);
  small_blocks(v, n, 4096, mid_alloc);
  for (size_t i = 0; i < n; i++) free(v[i]);
  free(v);
}

EXPORT void stuck_site(void) {
  static void *keep[10];
  for (int i = 0; i < 10; i++) keep[i] = startup_alloc(48);
  leaked[0] = keep;
  for (int i = 0; i < 1000000; i++) free(hot_alloc(64));
}

EXPORT void mixed_site(void) {
  size_t n = 200000;
  void **v = malloc(2 * n * sizeof *v);
  if (!v) fail("malloc", 2 * n * sizeof *v);
  for (size_t i = 0; i < n; i++) {
    v[2 * i] = mixed_a_alloc(32);
    v[2 * i + 1] = mixed_b_alloc(512);
    if (!v[2 * i] || !v[2 * i + 1]) fail("malloc", 512);
  }
  for (size_t i = 0; i < 2 * n; i++) free(v[i]);
  free(v);
}

#if !defined(HAK_TEST_PRELOAD)
EXPORT void cs_small_site(void) {
  for (int i = 0; i < 100000; i++) {
    void *p = hak_alloc_cs(48);
    use(p, 48);
    hak_free_cs(p);
  }
}
#endif

/* The seed's sites, reached through a caller of their own (for stacks). */
EXPORT void run_sites(void) {
  json_site();
  mir_site();
  vm_site();
#ifdef HAK_TEST_PRELOAD
  small_site();
#endif
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "sites";
  if (strcmp(mode, "sites") == 0) {
    run_sites();
    return 0;
  }
  if (strcmp(mode, "leak") == 0) {
    leak_large_site();
    leak_small_site();
    freed_large_site();
    freed_small_site();
    return 0;
  }
  if (strcmp(mode, "exit3") == 0) {
    pid_t pid = fork();
    if (pid < 0) fail("fork", 0);
    if (pid == 0) {
      child_site();
      exit(0); /* not _exit: the child writes its profile at exit */
    }
    int st = 0;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) fail("child", 0);
    json_site();
    mir_site();
    vm_site();
    return 3;
  }
  if (strcmp(mode, "mid") == 0) {
    mid_site();
    return 0;
  }
  if (strcmp(mode, "mixed") == 0) {
    mixed_site();
    return 0;
  }
  if (strcmp(mode, "stuck") == 0) {
    stuck_site();
    return 0;
  }
#if !defined(HAK_TEST_PRELOAD)
  if (strcmp(mode, "cs-only") == 0 && argc > 2) {
    /* Without HAKMEM_PROFILE: the explicit calls are recorded, and they
     * turn nothing on for plain malloc (freed_large_site's blocks). */
    run_sites();
    freed_large_site();
    return hak_profile_write(argv[2]) == 0 ? 0 : 1;
  }
  if (strcmp(mode, "cs-small") == 0) {
    cs_small_site();
    return 0;
  }
#endif
  fprintf(stderr, "usage: test_profile_prog sites|leak|exit3|mid|stuck|mixed|cs-small|cs-only FILE\n");
  return 2;
}
