/* hakmem — a fast general-purpose memory allocator for Linux/x86-64.
 *
 * Linked (-lhakmem) or preloaded (LD_PRELOAD=libhakmem.so), hakmem replaces
 * the whole malloc family.  The hak_* calls below are the same allocator
 * under its own names; they work in every build, including the one without
 * the malloc override (used under sanitizers, which own malloc).
 */
#ifndef HAKMEM_H
#define HAKMEM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HAKMEM_VERSION_MAJOR 0
#define HAKMEM_VERSION_MINOR 1
#define HAKMEM_VERSION_PATCH 0

#if defined(__GNUC__)
#define HAK_MALLOC_ATTR __attribute__((malloc, warn_unused_result))
#else
#define HAK_MALLOC_ATTR
#endif

/* The malloc family under hakmem's own names (glibc semantics: errno is
 * ENOMEM on exhaustion, EINVAL for a bad alignment). */
HAK_MALLOC_ATTR void *hak_malloc(size_t size);
HAK_MALLOC_ATTR void *hak_calloc(size_t count, size_t size);
void *hak_realloc(void *ptr, size_t size);
HAK_MALLOC_ATTR void *hak_aligned_alloc(size_t alignment, size_t size);
void hak_free(void *ptr);
/* Bytes the block can hold (>= the size asked for); 0 for NULL. */
size_t hak_usable_size(const void *ptr);
/* 1 when ptr lies in memory hakmem manages (any interior pointer), else 0. */
int hak_owns(const void *ptr);

/* Returns every free page hakmem holds to the OS now (decommit, unmap
 * cached mappings).  Returns 1 if some memory was released. */
int hak_trim(void);

/* Process-wide figures, cheap enough to call at any time. */
typedef struct hak_usage {
  size_t mapped;      /* bytes of address space hakmem has mapped */
  size_t committed;   /* bytes of that which may be resident (not decommitted) */
  size_t peak_committed;
  size_t big_cached;  /* bytes held in the BigCache */
  size_t os_mmap, os_munmap, os_madvise; /* kernel calls so far */
} hak_usage_t;
void hak_usage(hak_usage_t *out);

#ifdef __cplusplus
}
#endif
#endif /* HAKMEM_H */
