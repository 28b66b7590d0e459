/* oom: when the kernel refuses memory, every path returns NULL with errno
 * ENOMEM, nothing crashes, and the allocator works again once memory comes
 * back.  Failures are injected through the OS layer's test hook
 * (hak_os_fail_next_maps, internal: reachable because this test links the
 * static hak_* library). */
#include <errno.h>
#include <pthread.h>

#include "check.h"

void hak_os_fail_next_maps(int n); /* src/os.c */

static void *fresh_thread_small(void *arg) {
  (void)arg;
  /* A new thread has no segment yet: its first allocation must map one. */
  errno = 0;
  void *p = hak_malloc(64);
  int e = errno;
  hak_free(p);
  return p ? (void *)1 : (e == ENOMEM ? NULL : (void *)2);
}

int main(void) {
  void *keep = hak_malloc(64); /* the main thread's heap and segment exist */
  CHECK(keep != NULL);

  hak_os_fail_next_maps(1 << 30);
  errno = 0;
  CHECKF(hak_malloc(3u << 20) == NULL && errno == ENOMEM, "Big allocation without memory");
  errno = 0;
  CHECKF(hak_malloc(100u << 10) == NULL && errno == ENOMEM, "Large allocation without memory");
  errno = 0;
  CHECKF(hak_aligned_alloc(1u << 20, 10) == NULL && errno == ENOMEM, "aligned Large without memory");
  errno = 0;
  CHECKF(hak_calloc(1, 5u << 20) == NULL && errno == ENOMEM, "calloc without memory");
  void *r = hak_malloc(100);
  CHECK(r != NULL); /* served from the existing slab: no mapping needed */
  if (r) {
    memset(r, 7, 100);
    errno = 0;
    CHECKF(hak_realloc(r, 8u << 20) == NULL && errno == ENOMEM, "growing realloc without memory");
    CHECKF(((unsigned char *)r)[99] == 7, "the old block is intact after a failed realloc");
  }
  pthread_t t;
  void *res = (void *)3;
  CHECK(pthread_create(&t, NULL, fresh_thread_small, NULL) == 0);
  pthread_join(t, &res);
  CHECKF(res == NULL, "a new thread's first allocation without memory: NULL and ENOMEM (got %p)", res);

  hak_os_fail_next_maps(0);
  void *big = hak_malloc(3u << 20), *large = hak_malloc(100u << 10);
  CHECKF(big && large, "allocations work again once memory comes back");
  if (big) memset(big, 1, 3u << 20);
  if (large) memset(large, 1, 100u << 10);
  hak_free(big);
  hak_free(large);
  hak_free(r);
  hak_free(keep);
  CHECK(pthread_create(&t, NULL, fresh_thread_small, NULL) == 0);
  pthread_join(t, &res);
  CHECKF(res == (void *)1, "a new thread allocates again");
  return check_report("oom");
}
