/* The OS layer (see os.h).  Nothing here allocates. */
#define _GNU_SOURCE
#include "os.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "prof.h"

/* Every kernel call here is made directly (hak_os_sys, os.h); under TSan
 * and ASan the mappings go through libc (below). */
#define OS_SYS(n, a, b, c, d, e, f) hak_os_sys(n, (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), (long)(f))
/* TSan and ASan watch the mappings through libc's mmap family (a range
 * unmapped and mapped again is new memory to them): under them the
 * mappings go through libc, errno kept, and the controller is a pthread
 * (its errno its own; hak_os_side_thread_start). */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define OS_SIDE_PTHREAD 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define OS_SIDE_PTHREAD 1
#endif
#endif
/* An address from mmap or mremap, or NULL. */
static void *os_addr(long r) { return r < 0 && r > -4096 ? NULL : (void *)r; }
#ifdef OS_SIDE_PTHREAD
/* libc's call, its result in the kernel's terms (-errno), errno kept. */
#define OS_LIBC(call)              \
  ({                               \
    int saved_ = errno;            \
    long r_ = (long)(call);        \
    if (r_ == -1) r_ = -errno;     \
    errno = saved_;                \
    r_;                            \
  })
static void *os_sys_mmap(void *hint, size_t size, int prot, int flags) {
  return os_addr(OS_LIBC(mmap(hint, size, prot, flags, -1, 0)));
}
static void *os_sys_mremap(void *p, size_t old_size, size_t new_size, int flags, void *to) {
  return os_addr(OS_LIBC(mremap(p, old_size, new_size, flags, to)));
}
static int os_sys_munmap(void *p, size_t size) { return (int)OS_LIBC(munmap(p, size)); }
static int os_sys_madvise(void *p, size_t size, int advice) { return (int)OS_LIBC(madvise(p, size, advice)); }
#else
static void *os_sys_mmap(void *hint, size_t size, int prot, int flags) {
  return os_addr(OS_SYS(SYS_mmap, hint, size, prot, flags, -1, 0));
}
static void *os_sys_mremap(void *p, size_t old_size, size_t new_size, int flags, void *to) {
  return os_addr(OS_SYS(SYS_mremap, p, old_size, new_size, flags, to, 0));
}
static int os_sys_munmap(void *p, size_t size) { return (int)OS_SYS(SYS_munmap, p, size, 0, 0, 0, 0); }
static int os_sys_madvise(void *p, size_t size, int advice) { return (int)OS_SYS(SYS_madvise, p, size, advice, 0, 0, 0); }
#endif

hak_os_counters_t hak_os;
static _Atomic int os_fail_maps; /* test hook */

void hak_os_fail_next_maps(int n) { atomic_store(&os_fail_maps, n); }
/* A test hook's turn: true while it has failures left to hand out. */
static inline bool os_hook_fails(_Atomic int *left) {
  return hak_unlikely(atomic_load_explicit(left, memory_order_relaxed) > 0) && atomic_fetch_sub(left, 1) > 0;
}

static void os_account_commit(ptrdiff_t delta) {
  size_t c = atomic_fetch_add_explicit(&hak_os.committed, (size_t)delta, memory_order_relaxed) +
             (size_t)delta;
  size_t peak = atomic_load_explicit(&hak_os.peak_committed, memory_order_relaxed);
  while (delta > 0 && c > peak &&
         !atomic_compare_exchange_weak_explicit(&hak_os.peak_committed, &peak, c,
                                                memory_order_relaxed, memory_order_relaxed)) {
  }
}

static void *os_mmap_raw(void *hint, size_t size);
hak_front static void *os_mmap(void *hint, size_t size) {
  uint64_t t0 = hak_prof_begin();
  void *p = os_mmap_raw(hint, size);
  hak_prof_end(HAK_PROF_OS_CALL, t0);
  return p;
}

static void *os_mmap_raw(void *hint, size_t size) {
  if (os_hook_fails(&os_fail_maps)) return NULL;
  /* No MAP_NORESERVE: the kernel's overcommit policy judges every mapping
   * as it judges glibc's, so a request no machine can back fails here
   * (NULL, ENOMEM) instead of handing out a reservation. */
  void *p = os_sys_mmap(hint, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  atomic_fetch_add_explicit(&hak_os.n_mmap, 1, memory_order_relaxed);
  return p;
}

static void os_munmap_raw(void *p, size_t size) {
  if (!size) return;
  uint64_t t0 = hak_prof_begin();
  os_sys_munmap(p, size);
  hak_prof_end(HAK_PROF_OS_CALL, t0);
  atomic_fetch_add_explicit(&hak_os.n_munmap, 1, memory_order_relaxed);
}

/* Where the next aligned mapping is asked for: just below the last one.
 * The kernel hands out addresses top-down, so that area is usually free
 * and, a multiple of the alignment away, aligned; without the hint a hole
 * left by someone else's mapping often is not, and an unaligned answer
 * costs four more calls (unmap, map bigger, trim both ends).  A hint the
 * kernel cannot honour is only a hint: it maps elsewhere.  With no hint
 * yet, the bigger mapping and its trim at once.  os_top: the end of the
 * aligned mapping the kernel's search last placed, or of any higher one
 * since. */
static _Atomic uintptr_t os_hint, os_top;

hak_front void *hak_os_map_aligned(size_t size, size_t align) {
  if (size > HAK_MAX_REQUEST || align > HAK_MAX_REQUEST) return NULL;
  bool aligned = align > HAK_PAGE;
  uintptr_t hint = aligned ? atomic_load_explicit(&os_hint, memory_order_relaxed) : 0;
  /* Each mapping a little below the last (the alignment), the hint creeps
   * down the address space as mappings come and go (20,000 Big blocks
   * mapped and unmapped: 246 GiB apart), and every 16 GiB of it is a page
   * of the segment map.  Once it is further below the highest mapping than
   * all that is mapped plus 1 GiB, the kernel is asked afresh: its search
   * takes the highest free gap. */
  uintptr_t top = atomic_load_explicit(&os_top, memory_order_relaxed);
  size_t span = atomic_load_explicit(&hak_os.mapped, memory_order_relaxed) + ((size_t)1 << 30);
  if (hint && top > hint && top - hint > span) hint = 0;
  hint = hint > size ? (hint - size) & ~(uintptr_t)(align - 1) : 0;
  void *p = NULL;
  bool searched = false; /* placed by the kernel's search, not the hint */
  if (!aligned || hint) {
    p = os_mmap((void *)hint, size);
    if (!p) return NULL;
    if (((uintptr_t)p & (align - 1)) != 0) os_munmap_raw(p, size), p = NULL;
  }
  if (!p) { /* no hint yet (the first is rarely aligned), or not honoured */
    p = os_mmap(NULL, size + align);
    if (!p) return NULL;
    uintptr_t a = ((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1);
    os_munmap_raw(p, a - (uintptr_t)p);
    os_munmap_raw((void *)(a + size), (uintptr_t)p + align - a);
    p = (void *)a;
    searched = true;
  }
  if (aligned) {
    /* Where the kernel's search placed one is the new top: it found
     * nothing free higher. */
    atomic_store_explicit(&os_hint, (uintptr_t)p, memory_order_relaxed);
    if (searched || (uintptr_t)p + size > top) atomic_store_explicit(&os_top, (uintptr_t)p + size, memory_order_relaxed);
  }
  atomic_fetch_add_explicit(&hak_os.mapped, size, memory_order_relaxed);
  return p;
}

void hak_os_unmap(void *p, size_t size) {
  os_munmap_raw(p, size);
  atomic_fetch_sub_explicit(&hak_os.mapped, size, memory_order_relaxed);
}

/* One madvise, counted; 0 or the error (advice is best effort). */
static int os_madvise_raw(void *p, size_t size, int advice) {
  int err = -os_sys_madvise(p, size, advice);
  atomic_fetch_add_explicit(&hak_os.n_madvise, 1, memory_order_relaxed);
  return err;
}
static void os_madvise(void *p, size_t size, int advice) {
  uint64_t t0 = hak_prof_begin();
  os_madvise_raw(p, size, advice);
  hak_prof_end(HAK_PROF_OS_CALL, t0);
}

void hak_os_discard(void *p, size_t size) {
  if (size) os_madvise(p, size, MADV_DONTNEED);
}

void hak_os_decommit(void *p, size_t size) {
  hak_os_discard(p, size);
  os_account_commit(-(ptrdiff_t)size);
}

hak_front void hak_os_commit_account(ptrdiff_t delta) { os_account_commit(delta); }

hak_front void hak_os_hugepage(void *p, size_t size, bool on) {
#ifdef MADV_HUGEPAGE
  os_madvise(p, size, on ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
#else
  (void)p, (void)size, (void)on;
#endif
}

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25 /* Linux 6.1; older kernels answer EINVAL */
#endif
void hak_os_collapse(void *p, size_t size) { os_madvise(p, size, MADV_COLLAPSE); }

/* Bytes of [p, p + size) resident, by mincore(2), which faults nothing in;
 * what it could not look at (a range unmapped meanwhile) counts as not. */
size_t hak_os_resident(const void *p, size_t size) {
  unsigned char vec[512];
  size_t pages = 0;
  uint64_t t0 = hak_prof_begin();
  for (size_t off = 0; off < size; off += sizeof vec * HAK_PAGE) {
    size_t len = size - off < sizeof vec * HAK_PAGE ? size - off : sizeof vec * HAK_PAGE;
    if (OS_SYS(SYS_mincore, (const uint8_t *)p + off, len, vec, 0, 0, 0) != 0) break;
    for (size_t i = 0; i < (len + HAK_PAGE - 1) >> HAK_PAGE_SHIFT; i++) pages += vec[i] & 1;
  }
  hak_prof_end(HAK_PROF_OS_CALL, t0);
  return pages << HAK_PAGE_SHIFT;
}

void *hak_os_remap_aligned(void *p, size_t old_size, size_t new_size, size_t align) {
  if (new_size > HAK_MAX_REQUEST) return NULL;
  /* Reserve an aligned target, then move the pages into it. */
  void *r = os_sys_mmap(NULL, new_size + align, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
  atomic_fetch_add_explicit(&hak_os.n_mmap, 1, memory_order_relaxed);
  if (!r) return NULL;
  uintptr_t a = ((uintptr_t)r + align - 1) & ~(uintptr_t)(align - 1);
  os_munmap_raw(r, a - (uintptr_t)r);
  os_munmap_raw((void *)(a + new_size), (uintptr_t)r + align - a);
  void *q = os_sys_mremap(p, old_size, new_size, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)a);
  atomic_fetch_add_explicit(&hak_os.n_mremap, 1, memory_order_relaxed);
  if (!q) {
    os_munmap_raw((void *)a, new_size);
    return NULL;
  }
  atomic_fetch_add_explicit(&hak_os.mapped, new_size - old_size, memory_order_relaxed);
  return q;
}

bool hak_os_grow_inplace(void *p, size_t old_size, size_t new_size) {
  if (new_size > HAK_MAX_REQUEST) return false;
  void *q = os_sys_mremap(p, old_size, new_size, 0, NULL);
  atomic_fetch_add_explicit(&hak_os.n_mremap, 1, memory_order_relaxed);
  if (!q) return false;
  atomic_fetch_add_explicit(&hak_os.mapped, new_size - old_size, memory_order_relaxed);
  return true;
}

/* Guard pages are the kernel's guard markers where it has them (Linux
 * 6.13): an entry in the page table, where mprotect splits the mapping in
 * three and merges it back, so that a process with many guards pays for a
 * large tree of mappings at every call (a guard laid and lifted: 1.6 us
 * against 7.8 us with mprotect, on a mapping of one piece).  A marker
 * discards its page (a guard holds no data), survives MADV_DONTNEED, fork
 * and mremap as PROT_NONE does, and is refused where mprotect is not (a
 * locked mapping): then the page is not guarded.  One mechanism for the
 * whole process, chosen by a probe, so that no guard laid by one is lifted
 * by the other. */
#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#define MADV_GUARD_REMOVE 103
#endif
enum { GUARD_UNKNOWN, GUARD_MARKER, GUARD_PROTECT };
static _Atomic int os_guard_kind;

static int os_guard_probe(void) {
  int kind = GUARD_PROTECT;
  void *p = os_sys_mmap(NULL, HAK_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  if (p) {
    if (os_sys_madvise(p, HAK_PAGE, MADV_GUARD_INSTALL) == 0) kind = GUARD_MARKER;
    os_sys_munmap(p, HAK_PAGE);
  }
  atomic_store_explicit(&os_guard_kind, kind, memory_order_relaxed);
  return kind;
}

bool hak_os_protect(void *p, size_t size, bool none) {
  int kind = atomic_load_explicit(&os_guard_kind, memory_order_relaxed);
  if (kind == GUARD_UNKNOWN) kind = os_guard_probe();
  long r = kind == GUARD_MARKER ? os_sys_madvise(p, size, none ? MADV_GUARD_INSTALL : MADV_GUARD_REMOVE)
                                : OS_SYS(SYS_mprotect, p, size, none ? PROT_NONE : PROT_READ | PROT_WRITE, 0, 0, 0);
  return r == 0;
}

void hak_os_random(void *buf, size_t n) {
  uint8_t *b = buf;
  size_t got = 0;
  while (got < n) {
    long r = OS_SYS(SYS_getrandom, b + got, n - got, GRND_NONBLOCK, 0, 0, 0);
    if (r == -EINTR) continue;
    if (r <= 0) break;
    got += (size_t)r;
  }
  if (got == n) return;
  /* No entropy yet (early boot): the 16 bytes the kernel gave this process. */
  const uint8_t *at = (const uint8_t *)getauxval(AT_RANDOM);
  uint64_t x = hak_os_now_ns() * 0x9E3779B97F4A7C15ull ^ (uint64_t)(uintptr_t)buf;
  for (size_t i = 0; i < n; i++) {
    x ^= at ? at[i & 15] : 0;
    x = (x ^ (x >> 29)) * 0xBF58476D1CE4E5B9ull;
    b[i] ^= (uint8_t)(x >> 32);
  }
}

/* The clocks are read through the vDSO's clock_gettime, found once in the
 * image the kernel maps into every process, rather than through libc's
 * wrapper: that wrapper's page, with the 64 KiB the kernel maps around a
 * fault on a file, made ~110 KiB of libc resident in every program that
 * would not otherwise touch it.  The system call is the fallback. */
typedef int (*os_clock_fn)(clockid_t, struct timespec *);

static bool os_streq(const char *a, const char *b) {
  while (*a && *a == *b) a++, b++;
  return *a == *b;
}

/* The vDSO is a small ELF image: its dynamic section names the symbol and
 * string tables, and DT_HASH's second word is the number of symbols. */
static os_clock_fn os_vdso_find(const char *name) {
  const unsigned char *img = (const unsigned char *)getauxval(AT_SYSINFO_EHDR);
  if (!img) return NULL;
  const Elf64_Ehdr *eh = (const Elf64_Ehdr *)img;
  const Elf64_Phdr *ph = (const Elf64_Phdr *)(img + eh->e_phoff);
  uintptr_t bias = 0;
  const Elf64_Dyn *dyn = NULL;
  bool loaded = false;
  for (unsigned i = 0; i < eh->e_phnum; i++) {
    if (ph[i].p_type == PT_LOAD && !loaded) {
      bias = (uintptr_t)img + ph[i].p_offset - ph[i].p_vaddr;
      loaded = true;
    } else if (ph[i].p_type == PT_DYNAMIC) {
      dyn = (const Elf64_Dyn *)(img + ph[i].p_offset);
    }
  }
  if (!loaded || !dyn) return NULL;
  const Elf64_Sym *sym = NULL;
  const char *str = NULL;
  const Elf32_Word *hash = NULL;
  for (; dyn->d_tag != DT_NULL; dyn++) {
    if (dyn->d_tag == DT_SYMTAB) sym = (const Elf64_Sym *)(bias + dyn->d_un.d_ptr);
    else if (dyn->d_tag == DT_STRTAB) str = (const char *)(bias + dyn->d_un.d_ptr);
    else if (dyn->d_tag == DT_HASH) hash = (const Elf32_Word *)(bias + dyn->d_un.d_ptr);
  }
  if (!sym || !str || !hash) return NULL;
  for (Elf32_Word i = 0; i < hash[1]; i++)
    if (ELF64_ST_TYPE(sym[i].st_info) == STT_FUNC && sym[i].st_shndx != SHN_UNDEF &&
        os_streq(str + sym[i].st_name, name))
      return (os_clock_fn)(bias + sym[i].st_value);
  return NULL;
}

hak_front static int os_clock_syscall(clockid_t id, struct timespec *ts) {
  return (int)OS_SYS(SYS_clock_gettime, id, ts, 0, 0, 0, 0);
}

/* The vDSO's clock_gettime, or os_clock_syscall where there is none (under
 * valgrind); NULL until the first read looks. */
static _Atomic(os_clock_fn) os_clock_read;

hak_front static uint64_t os_clock(clockid_t id) {
  os_clock_fn fn = atomic_load_explicit(&os_clock_read, memory_order_relaxed);
  if (hak_unlikely(!fn)) {
    fn = os_vdso_find("__vdso_clock_gettime");
    if (!fn) fn = os_clock_syscall;
    atomic_store_explicit(&os_clock_read, fn, memory_order_relaxed);
  }
  struct timespec ts = {0, 0};
  if (fn(id, &ts) != 0) os_clock_syscall(id, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

hak_front uint64_t hak_os_now_ms(void) { return os_clock(CLOCK_MONOTONIC_COARSE) / 1000000u; }
hak_front uint64_t hak_os_now_ns(void) { return os_clock(CLOCK_MONOTONIC); }

/* Where huge pages cost more than they save.  A virtual machine whose
 * balloon reports free memory to the host hands it back in 2 MiB blocks,
 * just the blocks a huge page is made of: the first write to such a page
 * faults the host in 512 times, 3-10 ms here, while the small pages of a
 * 4 KiB fault come warm from the guest's split blocks (512 of them: 0.7
 * ms).  large-ws after 4 s idle: 0.25-0.65 s of system time on huge pages
 * against 0.06-0.09 s on small ones; 0.02 s on huge pages run back to back.
 * Memory comes warm or cold as the machine goes (huge pages a process
 * has just freed come back warm until the balloon reports them, some 2 s
 * later), so the first write to every fresh huge mapping is timed, on the
 * thread's CPU clock (a thread preempted meanwhile does not count the
 * wait; the two reads cost ~0.3 us against a fault of 0.1-10 ms): a slow
 * one counts up, a fast one down, and two more slow than fast give huge
 * pages up.  A second later one mapping asks again, and the count goes on
 * from its answer. */
#define HUGE_SLOW_NS 1000000u
#define HUGE_RETRY_MS 1000u
static _Atomic int os_huge_score; /* 0..2: slow first writes, net */
static _Atomic uint64_t os_huge_retry_ms;
static _Atomic bool os_huge_trusted; /* tests: whatever the writes cost */
static _Atomic uint64_t os_huge_fake_ns; /* tests: the next write's time */

bool hak_os_huge_pays(void) {
  return atomic_load_explicit(&os_huge_score, memory_order_relaxed) < 2 ||
         hak_os_now_ms() >= atomic_load_explicit(&os_huge_retry_ms, memory_order_relaxed) ||
         atomic_load_explicit(&os_huge_trusted, memory_order_relaxed);
}

void hak_os_huge_note(uint64_t ns) {
  /* Racy between threads, as is fine for a count that only steers. */
  int s = atomic_load_explicit(&os_huge_score, memory_order_relaxed) + (ns > HUGE_SLOW_NS ? 1 : -1);
  s = s < 0 ? 0 : s > 2 ? 2 : s;
  if (s == 2) atomic_store_explicit(&os_huge_retry_ms, hak_os_now_ms() + HUGE_RETRY_MS, memory_order_relaxed);
  atomic_store_explicit(&os_huge_score, s, memory_order_relaxed);
}

/* A slow first write also takes the request back from its mapping (the
 * page just written stays huge): the kernel hands out the freshest free
 * blocks first, so the blocks after a cold one are cold too (45 huge
 * pages written after 3 s idle: the first 0-5 at 0.3-0.4 ms, then all at
 * 7-9 ms).  (A warm head says nothing of the rest: sort's 90 MiB buffer
 * after 3 s idle still took 0.20-0.39 s of system time on huge pages in
 * 3 runs of 12, against 0.04-0.10 s in the others.) */
bool hak_os_hugepage_fresh(void *p, size_t size) {
  hak_os_hugepage(p, size, true);
  if (size < HAK_HUGE_PAGE) return true; /* cannot be one: its write tells nothing */
  uint64_t t0 = os_clock(CLOCK_THREAD_CPUTIME_ID);
  *(volatile uint8_t *)p = 0;
  uint64_t ns = os_clock(CLOCK_THREAD_CPUTIME_ID) - t0;
  uint64_t fake = atomic_exchange_explicit(&os_huge_fake_ns, 0, memory_order_relaxed);
  if (fake) ns = fake;
  hak_os_huge_note(ns);
  if (ns <= HUGE_SLOW_NS || size == HAK_HUGE_PAGE || atomic_load_explicit(&os_huge_trusted, memory_order_relaxed))
    return true;
  hak_os_hugepage(p, size, false);
  return false;
}

void hak_os_huge_trust(bool on) { atomic_store_explicit(&os_huge_trusted, on, memory_order_relaxed); }
void hak_os_huge_fake_next(uint64_t ns) { atomic_store_explicit(&os_huge_fake_ns, ns, memory_order_relaxed); }

/* Not getpid(): libc's wrapper sits on the page of pthread_atfork (init.c). */
hak_front int hak_os_pid(void) { return (int)OS_SYS(SYS_getpid, 0, 0, 0, 0, 0, 0); }

int hak_os_open(const char *path, int flags, int mode) {
  long r;
  do r = OS_SYS(SYS_openat, AT_FDCWD, path, flags | O_CLOEXEC, mode, 0, 0);
  while (r == -EINTR);
  return r < 0 ? -1 : (int)r;
}
long hak_os_read(int fd, void *buf, size_t n) {
  long r;
  do r = OS_SYS(SYS_read, fd, buf, n, 0, 0, 0);
  while (r == -EINTR);
  return r < 0 ? -1 : r;
}
long hak_os_pread(int fd, void *buf, size_t n, uint64_t at) {
  long r;
  do r = OS_SYS(SYS_pread64, fd, buf, n, at, 0, 0);
  while (r == -EINTR);
  return r < 0 ? -1 : r;
}
void hak_os_close(int fd) {
  if (fd >= 0) OS_SYS(SYS_close, fd, 0, 0, 0, 0, 0);
}
void hak_os_sleep_until_ns(uint64_t t) {
  struct timespec ts = {(time_t)(t / 1000000000u), (long)(t % 1000000000u)};
  while (OS_SYS(SYS_clock_nanosleep, CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL, 0, 0) == -EINTR) {
  }
}

/* A small file's contents, NUL-terminated (at most cap - 1 bytes); the
 * length read, or -1. */
static ssize_t os_read_small(const char *path, char *buf, size_t cap) {
  int fd = hak_os_open(path, O_RDONLY, 0);
  ssize_t n = fd >= 0 ? hak_os_read(fd, buf, cap - 1) : -1;
  hak_os_close(fd);
  buf[n > 0 ? n : 0] = 0;
  return n;
}

bool hak_os_thp_granted(void) {
  static _Atomic int state; /* 0 not read yet, 1 granted, 2 not */
  int st = atomic_load_explicit(&state, memory_order_relaxed);
  if (!st) {
    char buf[64];
    ssize_t n = os_read_small("/sys/kernel/mm/transparent_hugepage/enabled", buf, sizeof buf);
    st = n > 0 && !strstr(buf, "[never]") ? 1 : 2;
    atomic_store_explicit(&state, st, memory_order_relaxed);
  }
  return st == 1;
}

void hak_os_comm(char *buf, size_t cap) {
  char tmp[64];
  ssize_t n = os_read_small("/proc/self/comm", tmp, cap < sizeof tmp ? cap : sizeof tmp);
  if (n <= 0) return; /* buf as it was */
  if (tmp[n - 1] == '\n') tmp[n - 1] = 0;
  memcpy(buf, tmp, (size_t)n + 1);
}

size_t hak_os_rss(void) {
  char buf[128];
  if (os_read_small("/proc/self/statm", buf, sizeof buf) <= 0) return 0;
  const char *s = buf;
  while (*s && *s != ' ') s++;
  size_t pages = 0;
  while (*s == ' ') s++;
  while (*s >= '0' && *s <= '9') pages = pages * 10 + (size_t)(*s++ - '0');
  return pages * HAK_PAGE;
}

uint64_t hak_os_minflt(void) {
  uint64_t n = 0;
  hak_os_usage(NULL, &n);
  return n;
}

void hak_os_usage(size_t *peak_rss, uint64_t *minflt) {
  struct rusage ru;
  bool ok = OS_SYS(SYS_getrusage, RUSAGE_SELF, &ru, 0, 0, 0, 0) == 0;
  if (peak_rss) peak_rss[0] = ok ? (size_t)ru.ru_maxrss * 1024 : 0;
  if (minflt) minflt[0] = ok ? (uint64_t)ru.ru_minflt : 0;
}

/* One timing of each: a 4 MiB mmap and munmap, a page fault (16 fresh
 * pages touched), an madvise of those pages, an mremap that moves them.
 * False if nothing could be mapped. */
static bool costs_once(hak_os_costs_t *c) {
  size_t len = (size_t)4 << 20, touch = 16 * HAK_PAGE;
  uint64_t t0 = hak_os_now_ns();
  uint8_t *p = os_sys_mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  uint64_t t1 = hak_os_now_ns();
  if (!p) return false;
  for (size_t i = 0; i < touch; i += HAK_PAGE) ((volatile uint8_t *)p)[i] = 1;
  uint64_t t2 = hak_os_now_ns();
  os_sys_madvise(p, touch, MADV_DONTNEED);
  uint64_t t3 = hak_os_now_ns();
  void *q = os_sys_mremap(p, len, 2 * len, MREMAP_MAYMOVE, NULL);
  uint64_t t4 = hak_os_now_ns();
  if (q) p = q, len *= 2;
  uint64_t t5 = hak_os_now_ns();
  os_sys_munmap(p, len);
  uint64_t t6 = hak_os_now_ns();
  c->mmap_ns = (double)(t1 - t0);
  c->fault_ns = (double)(t2 - t1) / (double)(touch / HAK_PAGE);
  c->madvise_ns = (double)(t3 - t2);
  c->mremap_ns = (double)(t4 - t3);
  c->munmap_ns = (double)(t6 - t5);
  c->copy_ns_per_byte = 0;
  return true;
}

/* What the allocator's kernel calls cost on this machine, for the
 * learner: the least of five timings of each (costs_once), with the raw
 * calls, so hakmem's own counters do not see them.  One timing was taken
 * before 2026-11-30, and on a shared machine a preemption inside it made
 * a price vary 5 x from one process to the next.  Each round faults 16
 * fresh pages, ~80 in all (64 a round put 2,400 faults into the phase
 * tier_shift was measuring). */
#define COSTS_ROUNDS 5
void hak_os_costs(hak_os_costs_t *c) {
  hak_os_costs_t best = {0}, one;
  bool any = false;
  for (int r = 0; r < COSTS_ROUNDS; r++) {
    if (!costs_once(&one)) continue;
    if (!any) best = one;
    any = true;
#define LEAST(f) best.f = one.f < best.f ? one.f : best.f
    LEAST(mmap_ns), LEAST(munmap_ns), LEAST(madvise_ns), LEAST(mremap_ns), LEAST(fault_ns);
#undef LEAST
  }
  *c = any ? best : (hak_os_costs_t){2000, 2000, 1000, 1000, 2000, 0};
}

/* What a moving realloc costs per byte: a memcpy of one resident MiB, the
 * least of five.  Its two MiB are resident while it runs, so it is asked
 * for only once a program has copied (ace.c): at the controller's start
 * they were 2 MiB on the peak RSS of every small process that lived 200
 * ms (`thread-churn` 2.2 -> 4.2 MiB, glibc 2.2) and 512 of its ~600 page
 * faults.  The source is written (unwritten, it would be the zero page,
 * always in cache), the destination made resident by a first, untimed
 * copy. */
double hak_os_copy_cost(void) {
  size_t mib = (size_t)1 << 20;
  uint8_t *area = os_sys_mmap(NULL, 2 * mib, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  double best = 0.1;
  if (area) {
    memset(area, 1, mib);
    memcpy(area + mib, area, mib);
    for (int r = 0; r < COSTS_ROUNDS; r++) {
      uint64_t c0 = hak_os_now_ns();
      memcpy(area + mib, area, mib);
      __asm__ volatile("" ::"r"(area) : "memory"); /* not a dead store */
      double one = (double)(hak_os_now_ns() - c0) / (double)mib;
      if (r == 0 || one < best) best = one;
    }
    os_sys_munmap(area, 2 * mib);
  }
  return best;
}

/* ---- a thread of our own ------------------------------------------------- */

/* The controller's thread is made with clone(2), not pthread_create.
 * glibc marks a process that ever had a second pthread as multi-threaded
 * for good: from then on every stdio call takes its FILE's lock (feof and
 * ferror: 6 -> 47 ns a pair here), libstdc++'s shared_ptr counts become
 * atomic, and so on; jq and gcc ran 3 % slower with one idle pthread
 * beside them.  A thread libc does not know of leaves a single-threaded
 * program single-threaded to libc.  The price is that it must not use
 * libc's thread state: it runs on the main thread's thread pointer (the
 * clone's TLS), so it calls no libc function that sets errno or takes a
 * libc lock (the OS layer makes its own system calls), and it writes no
 * thread variable (tests/check_side_thread.py reads the code for both).
 * Under TSan or ASan (OS_SIDE_PTHREAD, above), whose runtimes must know
 * every thread, and in a library first set up on another thread than the
 * main one, it is a pthread as before. */

_Atomic uintptr_t hak_os_side_lo, hak_os_side_hi;
static uintptr_t os_main_tp; /* the main thread's thread pointer */

hak_front void hak_os_note_main_thread(void) {
  if (OS_SYS(SYS_gettid, 0, 0, 0, 0, 0, 0) != OS_SYS(SYS_getpid, 0, 0, 0, 0, 0, 0)) return;
  uintptr_t tp;
  __asm__("mov %%fs:0, %0" : "=r"(tp)); /* the TCB's pointer to itself */
  os_main_tp = tp;
}

#ifdef OS_SIDE_PTHREAD
static bool os_side_clone(void *(*fn)(void *), size_t stack) {
  (void)fn, (void)stack, (void)os_main_tp;
  return false;
}
#else
static void *(*os_side_fn)(void *);
static int os_side_tid;

static int os_side_entry(void *arg) {
  os_side_fn(arg);
  return 0;
}

static bool os_side_clone(void *(*fn)(void *), size_t stack) {
  if (!os_main_tp) return false;
  size_t guard = HAK_PAGE;
  uint8_t *lo = os_sys_mmap(NULL, stack + guard, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK);
  if (!lo) return false;
  OS_SYS(SYS_mprotect, lo, guard, PROT_NONE, 0, 0, 0);
  os_side_fn = fn;
  atomic_store_explicit(&hak_os_side_lo, (uintptr_t)lo, memory_order_relaxed);
  atomic_store_explicit(&hak_os_side_hi, (uintptr_t)lo + stack + guard, memory_order_relaxed);
  /* pthread_create's flags (a sandbox that checks them lets these pass). */
  int flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM | CLONE_SETTLS |
              CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID;
  int saved = errno; /* the caller's thread: clone's wrapper sets it on failure */
  int tid = clone(os_side_entry, lo + stack + guard, flags, NULL, &os_side_tid, (void *)os_main_tp, &os_side_tid);
  errno = saved;
  if (tid > 0) return true;
  atomic_store_explicit(&hak_os_side_hi, 0, memory_order_relaxed);
  atomic_store_explicit(&hak_os_side_lo, 0, memory_order_relaxed);
  os_sys_munmap(lo, stack + guard);
  return false;
}
#endif

bool hak_os_side_thread_start(void *(*fn)(void *), size_t stack) {
  /* It takes no signals: they are the program's. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  bool ok = os_side_clone(fn, stack);
  if (!ok) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, stack);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    ok = pthread_create(&t, &attr, fn, NULL) == 0;
    pthread_attr_destroy(&attr);
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return ok;
}

void hak_os_side_thread_forget(void) {
  uintptr_t lo = atomic_load_explicit(&hak_os_side_lo, memory_order_relaxed);
  uintptr_t hi = atomic_load_explicit(&hak_os_side_hi, memory_order_relaxed);
  atomic_store_explicit(&hak_os_side_hi, 0, memory_order_relaxed);
  atomic_store_explicit(&hak_os_side_lo, 0, memory_order_relaxed);
  if (hi) os_sys_munmap((void *)lo, hi - lo);
}
