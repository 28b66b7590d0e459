/* test_fuzz_found — minimal reproducers of bugs that fuzz_api found.
 *
 * aligned_zero_*: hak_aligned_alloc(align, 0) with align >= 2 MiB (the Big
 *   tier, with an alignment that is a multiple of its 64 KiB mapping grain)
 *   maps align_up(align + 0, 64 KiB) = align bytes and puts the block at
 *   offset `align`: the pointer is the END of its own mapping.
 *   - its usable size is 0 and realloc refuses it ("invalid realloc",
 *     EINVAL): aligned_zero_realloc;
 *   - from 4 MiB on, the pointer is the start of the next 4 MiB unit, which
 *     is another segment's header or nothing: free reports an "invalid
 *     free" (or, at 8 MiB, "not allocated by hakmem") and the mapping
 *     leaks: aligned_zero_free;
 *   - when that next unit is a Tiny/Mid segment of the calling thread, the
 *     pointer IS that segment's header, and free takes the owner's fast
 *     path: it pushes the header on slab 0's free list, overwriting the
 *     segment's slab_shift and kind; the allocator then crashes or hands
 *     the header out as a block: aligned_zero_header (in a child process).
 *   The same goes for aligned_alloc, posix_memalign and memalign.  Found by
 *   fuzz_api on its seed tests/fuzz_corpus/aligned. */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

#define SEG (4 * MiB)

static unsigned long long misuse_count(void) {
  hak_stats_t st;
  if (hak_stats_get(&st) != 0) return 0;
  return st.invalid_frees + st.double_frees;
}

/* A zero-size block may grow. */
static void aligned_zero_realloc(void) {
  for (size_t align = 2 * MiB; align <= 8 * MiB; align <<= 1) {
    hak_trim(); /* an empty BigCache: the mapping is fresh */
    void *p = hak_aligned_alloc(opaque_size(align), opaque_size(0));
    CHECKF(p != NULL, "aligned_alloc(%zu, 0) failed", align);
    if (!p) continue;
    CHECKF((uintptr_t)p % align == 0, "aligned_alloc(%zu, 0) = %p misaligned", align, p);
    errno = 0;
    void *q = hak_realloc(p, 100);
    CHECKF(q != NULL, "realloc(aligned_alloc(%zu, 0) = %p, 100) failed, errno %d", align, p, errno);
    if (q) hak_free(q);
    /* On failure p is not freed: freeing it is the next sections' case. */
  }
}

/* free accepts the block, and its mapping goes back to the OS.  A live
 * Large block first, so that the unit after the mapping is likely a Large
 * segment's header (the harmless case: the free is refused). */
static void aligned_zero_free(void) {
  void *neighbour = hak_malloc(100 * KiB);
  CHECK(neighbour != NULL);
  for (size_t align = 2 * MiB; align <= 8 * MiB; align <<= 1) {
    unsigned long long bad0 = misuse_count();
    hak_trim();
    hak_usage_t u0, u1;
    hak_usage(&u0);
    void *p = hak_aligned_alloc(opaque_size(align), opaque_size(0));
    CHECKF(p != NULL, "aligned_alloc(%zu, 0) failed", align);
    if (!p) continue;
    CHECKF(hak_owns(p), "aligned_alloc(%zu, 0) = %p not owned", align, p);
    hak_free(p);
    CHECKF(misuse_count() == bad0, "free(%p) from aligned_alloc(%zu, 0) refused as misuse", p,
           align);
    hak_trim();
    hak_usage(&u1);
    CHECKF(u1.mapped <= u0.mapped, "aligned_alloc(%zu, 0): %zu bytes still mapped after free",
           align, u1.mapped - u0.mapped);
  }
  hak_free(neighbour);
}

/* In a child: small blocks first, so that the Big mapping made next lies
 * right below their Tiny segment (the kernel maps top-down); then
 * aligned_alloc(align, 0) must not be that segment's header, and freeing
 * it must leave the allocator working. */
static int header_child(size_t align) {
  enum { NSMALL = 64 };
  block_t small[NSMALL];
  for (int i = 0; i < NSMALL; i++) small[i] = block_new(100);
  void *p = hak_aligned_alloc(opaque_size(align), opaque_size(0));
  CHECKF(p != NULL, "aligned_alloc(%zu, 0) failed", align);
  for (int i = 0; i < NSMALL; i++)
    if (small[i].p && p == (void *)((uintptr_t)small[i].p & ~(uintptr_t)(SEG - 1))) {
      CHECKF(0, "aligned_alloc(%zu, 0) = %p is the segment header of the live block %p", align,
             p, small[i].p);
      break;
    }
  hak_free(p);
  /* The allocator must still work, and never hand out p. */
  for (int round = 0; round < 200; round++) {
    block_t b[NSMALL];
    for (int i = 0; i < NSMALL; i++) {
      b[i] = block_new(100);
      CHECKF(b[i].p != p, "malloc(100) handed out %p, a segment header", p);
    }
    for (int i = 0; i < NSMALL; i++) block_free(&b[i]);
    if (round % 50 == 0) hak_trim();
  }
  for (int i = 0; i < NSMALL; i++) block_free(&small[i]);
  hak_trim();
  return check_failures() ? 1 : 0;
}

static void aligned_zero_header(void) {
  for (size_t align = 4 * MiB; align <= 8 * MiB; align <<= 1) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
      alarm(10); /* the corrupted heap may loop */
      _exit(header_child(align));
    }
    CHECKF(pid > 0, "fork failed");
    if (pid <= 0) return;
    int st = 0;
    waitpid(pid, &st, 0);
    if (WIFSIGNALED(st))
      CHECKF(0, "aligned_alloc(%zu, 0), free, then malloc/free/trim: child killed by signal %d",
             align, WTERMSIG(st));
    else
      CHECKF(WEXITSTATUS(st) == 0, "aligned_alloc(%zu, 0): the child failed (status %d)", align,
             WEXITSTATUS(st));
  }
}

int main(int argc, char **argv) {
  section_select(argc, argv);
  RUN_SECTION(aligned_zero_realloc);
  RUN_SECTION(aligned_zero_free);
  RUN_SECTION(aligned_zero_header);
  return check_report("fuzz_found");
}
