/* The OS layer: the only code that calls mmap, munmap, madvise or mremap.
 * Every call returns an error code or NULL, never aborts, and is counted. */
#ifndef HAKMEM_OS_H
#define HAKMEM_OS_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/syscall.h>

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
#define HAK_HUGE_PAGE ((size_t)2 << 20) /* a transparent huge page */
/* Whether the kernel grants huge pages to a range that asks for them
 * (transparent_hugepage/enabled is not [never]); read once. */
bool hak_os_thp_granted(void);
/* Whether huge pages pay here: false once the first writes to them have
 * proved slower than the small faults they replace (os.c).  Callers stop
 * asking for them then. */
bool hak_os_huge_pays(void);
/* Asks for huge pages on a fresh mapping [p, p+size) (2 MiB-aligned,
 * reading zero, its first byte the caller's to write) and makes its first
 * write, a zero byte at p, timed: what decides hak_os_huge_pays.  Returns
 * false when that write was slow and the request was taken back from the
 * mapping (a mapping of one huge page keeps it: nothing is left to spare). */
bool hak_os_hugepage_fresh(void *p, size_t size);
/* What it does with the time one took, in ns (a test hook too). */
void hak_os_huge_note(uint64_t ns);
/* Test hook: huge pages pay whatever the first writes cost (on), so that
 * a test of where they are asked for does not depend on the machine's
 * memory being warm; off, the writes decide again. */
void hak_os_huge_trust(bool on);
/* Test hook: the next timed first write took ns (nonzero), whatever it took. */
void hak_os_huge_fake_next(uint64_t ns);
/* Makes [p, p+size) (2 MiB-aligned) huge pages now, the pages present
 * kept (MADV_COLLAPSE, Linux 6.1; best effort). */
void hak_os_collapse(void *p, size_t size);
size_t hak_os_resident(const void *p, size_t size);
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
/* A system call made directly, not through libc's wrapper: those set
 * errno, a thread's, and the controller runs on a thread of our own that
 * shares the main thread's thread variables (hak_os_side_thread_start),
 * so it must leave them alone.  Returns what the kernel does: -errno on
 * failure. */
static inline long hak_os_sys(long n, long a, long b, long c, long d, long e, long f) {
  register long r10 __asm__("r10") = d, r8 __asm__("r8") = e, r9 __asm__("r9") = f;
  long ret;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return ret;
}

/* Files and sleep, by system calls made directly: errno untouched (the
 * controller's thread shares the main thread's, below).  -1 on failure;
 * interrupted calls are made again.  O_CLOEXEC is always added. */
int hak_os_open(const char *path, int flags, int mode);
long hak_os_read(int fd, void *buf, size_t n);
long hak_os_pread(int fd, void *buf, size_t n, uint64_t at);
static inline void hak_os_yield(void) { hak_os_sys(SYS_sched_yield, 0, 0, 0, 0, 0, 0); }
static inline long hak_os_write(int fd, const void *buf, size_t n) {
  long r;
  do r = hak_os_sys(SYS_write, fd, (long)buf, (long)n, 0, 0, 0);
  while (r == -EINTR);
  return r < 0 ? -1 : r;
}
void hak_os_close(int fd);
void hak_os_sleep_until_ns(uint64_t t); /* until hak_os_now_ns() reads t */
/* The controller's thread (os.c: why it is not a pthread): fn runs on a
 * stack of `stack` bytes with every signal blocked; false if no thread
 * could be made.  hak_os_note_main_thread is called at start-up, on the
 * main thread; a fork child, which has no such thread, forgets its stack. */
void hak_os_note_main_thread(void);
bool hak_os_side_thread_start(void *(*fn)(void *), size_t stack);
void hak_os_side_thread_forget(void);
extern _Atomic uintptr_t hak_os_side_lo, hak_os_side_hi;
/* Whether the caller runs on that thread (a pthread one is never it: it
 * has thread variables of its own). */
static inline bool hak_os_on_side_thread(void) {
  uintptr_t lo = atomic_load_explicit(&hak_os_side_lo, memory_order_relaxed);
  uintptr_t hi = atomic_load_explicit(&hak_os_side_hi, memory_order_relaxed);
  return (uintptr_t)__builtin_frame_address(0) - lo < hi - lo;
}
/* Test hook: fail the next n mappings (0 = never). */
void hak_os_fail_next_maps(int n);

#endif
