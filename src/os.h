/* The OS layer: the only code that calls mmap, munmap, madvise or mremap.
 * Every call returns an error code or NULL, never aborts, and is counted. */
#ifndef HAKMEM_OS_H
#define HAKMEM_OS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hak_os_counters {
  _Atomic size_t mapped, committed, peak_committed;
  _Atomic size_t n_mmap, n_munmap, n_madvise, n_mremap;
} hak_os_counters_t;
extern hak_os_counters_t hak_os;

/* Accounting: `mapped` follows map/unmap; `committed` (bytes that may be
 * resident) is kept by the callers, who know which ranges they touch:
 * hak_os_commit_account(+n) when a range is handed out, hak_os_decommit
 * subtracts, and a caller unmapping committed bytes subtracts them first. */
void hak_os_commit_account(ptrdiff_t delta);
/* Maps size bytes aligned to align (a power of two >= page); NULL on failure. */
void *hak_os_map_aligned(size_t size, size_t align);
void hak_os_unmap(void *p, size_t size);
/* Gives pages back (contents lost, next touch reads zeros). */
void hak_os_decommit(void *p, size_t size);
/* The same, for a range that stays counted as committed (a live block's:
 * it reads zeros from now on, and may be written again at once). */
void hak_os_discard(void *p, size_t size);
/* Asks for transparent huge pages on a range, or (on = false) takes the
 * request back, so that khugepaged leaves the range alone (best effort). */
void hak_os_hugepage(void *p, size_t size, bool on);
/* Whether the kernel grants huge pages to a range that asks for them
 * (transparent_hugepage/enabled is not [never]); read once. */
bool hak_os_thp_granted(void);
/* Makes [p, p+size) (2 MiB-aligned) huge pages now, the pages present
 * kept (MADV_COLLAPSE, Linux 6.1; best effort). */
void hak_os_collapse(void *p, size_t size);
/* Moves [p, p+old) to a fresh align-aligned area of new_size bytes without
 * copying; NULL (and p untouched) on failure. */
void *hak_os_remap_aligned(void *p, size_t old_size, size_t new_size, size_t align);
/* Extends [p, p+old) to new_size bytes where it is, if the address space
 * after it is free; false (nothing changed) otherwise. */
bool hak_os_grow_inplace(void *p, size_t old_size, size_t new_size);
/* Guard pages (the secure library): makes [p, p+size) inaccessible
 * (none) or readable and writable again; false if the kernel refused.
 * A guarded page's contents are lost (os.c: guard markers). */
bool hak_os_protect(void *p, size_t size, bool none);
/* Fills buf with random bytes (getrandom, else the kernel's AT_RANDOM
 * bytes mixed with the clock). */
void hak_os_random(void *buf, size_t n);
/* The monotonic clock: coarse, in milliseconds, and precise, in
 * nanoseconds (the vDSO's, no system call where the kernel offers it). */
uint64_t hak_os_now_ms(void);
uint64_t hak_os_now_ns(void);
/* Resident bytes of the process, from /proc/self/statm (0 if unknown). */
size_t hak_os_rss(void);
/* The process's id and short name (/proc/self/comm), without libc caches. */
int hak_os_pid(void);
void hak_os_comm(char *buf, size_t cap);
/* Minor page faults of the process so far. */
uint64_t hak_os_minflt(void);
/* The kernel's peak RSS (VmHWM, updated lazily: it may lag the RSS) and
 * minor page faults of the process; 0 when unknown. */
void hak_os_usage(size_t *peak_rss, uint64_t *minflt);
/* What each kernel call costs here, measured once (the learner's cost). */
typedef struct hak_os_costs {
  double mmap_ns, munmap_ns, madvise_ns, mremap_ns, fault_ns;
  double copy_ns_per_byte; /* memcpy of resident memory, 1 MiB at a time (hak_os_copy_cost) */
} hak_os_costs_t;
void hak_os_costs(hak_os_costs_t *c); /* all but the copy (left 0) */
double hak_os_copy_cost(void);        /* ns per byte */
/* Test hook: fail the next n mappings (0 = never). */
void hak_os_fail_next_maps(int n);

#endif
