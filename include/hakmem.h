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

/* ---- call-site profiles ----------------------------------------------------
 * The return address of an allocation call labels its purpose.  With
 * HAKMEM_PROFILE=FILE, malloc and friends are profiled (Tiny/Mid sampled,
 * Large/Big exact) and the report is written at exit.  The explicit calls
 * below record every call's count and bytes exactly, profile or not. */
#define HAK_CALLSITE() __builtin_return_address(0)
/* Allocates like hak_malloc; the site is the call's own location. */
HAK_MALLOC_ATTR void *hak_alloc_cs(size_t size);
/* The same with a site of your choosing (e.g. HAK_CALLSITE() of a wrapper). */
HAK_MALLOC_ATTR void *hak_alloc_at(size_t size, const void *site);
void hak_free_cs(void *ptr);
/* Writes the profile now: FILE (table), FILE.json and FILE.folded.
 * Returns 0 on success, -1 (errno set) on failure. */
int hak_profile_write(const char *path);

/* Returns free memory to the OS now: the calling thread's free slabs, those
 * of exited threads, and the Large, Big and segment caches (decommitted or
 * unmapped).  Other live threads' free slabs go back on their own schedule,
 * after the purge delay.  Returns 1 if some memory was released. */
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

/* ---- statistics --------------------------------------------------------
 * Counters are kept per thread without atomics and merged on demand; the
 * calling thread's own figures are exact, other threads' are as of their
 * last slow-path event.  The struct is versioned: check `version`. */
#define HAK_STATS_VERSION 3
#define HAK_STATS_NCLASSES 80

typedef struct hak_class_stats {
  unsigned long long block_size;
  unsigned long long allocs, frees;  /* frees include collected remote frees */
  unsigned long long remote_frees;   /* frees by a thread other than the owner */
  unsigned long long refills;        /* slow-path refills of the thread cache */
} hak_class_stats_t;

typedef struct hak_stats {
  unsigned version, nclasses;
  hak_class_stats_t cls[HAK_STATS_NCLASSES]; /* Tiny (<= 1 KiB) and Mid (<= 64 KiB) */
  unsigned long long slabs_acquired, slabs_released, segments_adopted, threads_exited;
  unsigned long long large_allocs, large_frees, large_cache_hits, large_cache_misses;
  unsigned long long big_allocs, big_frees, bigcache_hits, bigcache_misses;
  unsigned long long big_moved; /* bytes of resident pages moved (no copy) when a mapping grew */
  unsigned long long os_mmap, os_munmap, os_madvise, os_mremap;
  unsigned long long mapped, committed, peak_committed; /* bytes */
  unsigned long long live_bytes;    /* bytes in blocks handed out and not freed */
  unsigned long long rss, peak_rss; /* of the process, bytes */
  unsigned long long page_faults;   /* minor faults of the process */
  unsigned long long invalid_frees, double_frees;
} hak_stats_t;

/* Fills *out; returns 0 (or -1 if out is NULL). */
int hak_stats_get(hak_stats_t *out);
/* Writes the statistics as one JSON object into buf (NUL-terminated, cut
 * at cap); returns the length the whole object needs. */
size_t hak_stats_json(char *buf, size_t cap);
/* Writes the readable summary (what HAKMEM_STATS=1 prints at exit) to fd. */
void hak_stats_print(int fd);
/* 1 in a -DHAKMEM_BENCH_MINIMAL=ON build (statistics compiled out), else 0. */
int hak_build_minimal(void);

#ifdef __cplusplus
}
#endif
#endif /* HAKMEM_H */
