/* Internal types and helpers shared by every hakmem source file.
 * Layout in one sentence: memory comes in 4 MiB self-aligned segments
 * (SuperSlabs); a segment is either cut into slabs of one size class
 * (Tiny/Mid), or into page spans (Large), or holds one Big block. */
#ifndef HAKMEM_INTERNAL_H
#define HAKMEM_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hakmem.h"
#include "os.h"
#include "policy.h"

#define HAK_EXPORT __attribute__((visibility("default")))
#define hak_likely(x) __builtin_expect(!!(x), 1)
#define hak_unlikely(x) __builtin_expect(!!(x), 0)
#define hak_noinline __attribute__((noinline))
#define hak_cold __attribute__((cold, noinline))
#define hak_inline static inline __attribute__((always_inline))
/* Code that nearly every process runs — start-up and exit, the malloc
 * family's entry points and first slow paths — goes to the front of .text,
 * together.  The kernel maps a file's pages 64 KiB around each fault
 * (fault-around), and a process's RSS counts every page mapped: scattered
 * over the library, this code mapped all of its text (112 KiB); together,
 * one such window. */
#define hak_front __attribute__((section(".text.hot.hakmem")))

/* Large zeroed tables (the segment map, the site tables, the learner's
 * state) go to a section of their own, which the linker places after
 * .bss: the small variables that every process writes at start-up then
 * share a few pages instead of one page each between the tables (a
 * preloaded /bin/true wrote 8 pages of our .bss).  The name starts with
 * ".sbss." so that gcc and clang both make it NOBITS. */
#define hak_big_bss __attribute__((section(".sbss.hakmem")))

/* ---- geometry ---------------------------------------------------------- */
#define HAK_PAGE_SHIFT 12
#define HAK_PAGE ((size_t)1 << HAK_PAGE_SHIFT)
#define HAK_SEG_SHIFT 22
#define HAK_SEG_SIZE ((size_t)1 << HAK_SEG_SHIFT)
#define HAK_SEG_MASK (HAK_SEG_SIZE - 1)
/* Tiny segments: 64 slabs of 64 KiB; Mid segments: 8 slabs of 512 KiB. */
#define HAK_TINY_SLAB_SHIFT 16
#define HAK_MID_SLAB_SHIFT 19
#define HAK_MAX_SLABS 64
/* Where the blocks of slab 0 start (the header lives before).  Keeps every
 * slab start aligned to >= 8 KiB (Tiny) / 64 KiB (Mid), which is what
 * aligned allocation from size classes relies on. */
#define HAK_TINY_SLAB0_OFFSET ((size_t)16 << 10)
#define HAK_MID_SLAB0_OFFSET ((size_t)64 << 10)

/* ---- size classes ------------------------------------------------------ */
/* 16-byte steps up to 256 B, then 8 classes per power of two: a block
 * wastes < 12.5 % of its size above 256 B (below, 16-byte alignment rules). */
#define HAK_TINY_MAX 1024u
#define HAK_MID_MAX 65536u
#define HAK_NCLASS 80
#define HAK_NTINY 32
#define HAK_NDIRECT (HAK_TINY_MAX / 16 + 1)
/* Largest request we even try: beyond it mmap cannot succeed anyway, and
 * size arithmetic (rounding, headers) must not overflow. */
#define HAK_MAX_REQUEST ((size_t)1 << 46)

hak_inline unsigned hak_bsr(size_t x) { return 63u - (unsigned)__builtin_clzl(x); }
/* Bits set in x.  __builtin_popcountll is a call into libgcc on baseline
 * x86-64 (no -mpopcnt), to code that lies outside hak_front's pages. */
hak_inline unsigned hak_popcount(uint64_t x) {
  x -= (x >> 1) & 0x5555555555555555ull;
  x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
  x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
  return (unsigned)((x * 0x0101010101010101ull) >> 56);
}

/* Bits [i, i+n) of a page bitmap (a bit per page of a segment), set or
 * cleared, and counted, a word at a time (large.c). */
void hak_bits_set(uint64_t *m, unsigned i, unsigned n, bool on);
unsigned hak_bits_count(const uint64_t *m, unsigned i, unsigned n);

/* xorshift64: the next draw of a generator kept by its user (a heap's
 * sampling, the secure library's shuffles).  A state of 0 is seeded from
 * its own address: xorshift never leaves 0. */
hak_inline uint64_t hak_xorshift(uint64_t *state) {
  uint64_t x = *state ? *state : 0x2545F4914F6CDD1Dull ^ (uint64_t)(uintptr_t)state;
  x ^= x << 13, x ^= x >> 7, x ^= x << 17;
  return *state = x;
}

hak_inline unsigned hak_class_of(size_t n) {
  if (n <= 256) return n <= 16 ? 0 : (unsigned)((n + 15) >> 4) - 1;
  unsigned b = hak_bsr(n - 1);
  return 16 + (b - 8) * 8 + (unsigned)(((n - 1) >> (b - 3)) & 7);
}

/* The same as a constant expression, for tables (no negative shift in
 * the branch not taken: compilers check those of constants too). */
#define HAK_CLASS_G_(c) ((c) < 16 ? 0 : ((c) - 16) / 8)
#define HAK_CLASS_SIZE(c)                                                                   \
  ((c) < 16 ? ((size_t)(c) + 1) * 16                                                        \
            : ((size_t)256 << HAK_CLASS_G_(c)) +                                            \
                  ((size_t)((c) - 16) % 8 + 1) * ((size_t)32 << HAK_CLASS_G_(c)))
hak_inline size_t hak_class_size(unsigned c) { return HAK_CLASS_SIZE(c); }

/* ---- blocks, slabs, segments ------------------------------------------ */
typedef struct hak_block { struct hak_block *next; } hak_block_t;
typedef struct hak_heap hak_heap_t;
typedef struct hak_segment hak_segment_t;

/* slab->owner: the owning heap's address, with HAK_SLAB_FULL set while the
 * slab is full and off its queue (so the owner's free takes the slow path
 * and puts it back), and HAK_SLAB_SAMPLED while profiling samples (so the
 * owner's free takes the slow path to local_free, and the fast path tests
 * no option).  0 when free, abandoned, Large or Big.
 * slab->thread_free: other threads' frees, a push-only list; HAK_TF_NOTIFY
 * asks the next remote free to hand its block to the owner's `delayed` list
 * instead, which is how the owner learns that a full slab has room again.
 * Its top 16 bits count the blocks on the list (a slab holds at most 4096),
 * so that the owner takes the list without walking it: each block was
 * last written by another core, and a walk is a cache miss per block.
 * The count is 0 when the list is: the word is above HAK_TF_NOTIFY exactly
 * when it holds blocks. */
#define HAK_SLAB_FULL ((uintptr_t)1)
#define HAK_SLAB_SAMPLED ((uintptr_t)2)
#define HAK_SLAB_TAGS (HAK_SLAB_FULL | HAK_SLAB_SAMPLED)
#define HAK_TF_NOTIFY ((uintptr_t)1)
#define HAK_TF_COUNT_SHIFT 48
#define HAK_TF_ONE ((uintptr_t)1 << HAK_TF_COUNT_SHIFT)
#define HAK_TF_LIST(w) ((hak_block_t *)((w) & (HAK_TF_ONE - 1) & ~HAK_TF_NOTIFY))
#define HAK_TF_COUNT(w) ((uint32_t)((w) >> HAK_TF_COUNT_SHIFT))

#define HAK_ST_BLOCKS_SHIFT 24 /* 2^24 refills of one slab between two folds cannot happen */
#define HAK_FOLD_EVERY 16384  /* slow calls between two folds of a heap's current slabs (heap.c) */

typedef struct hak_slab {
  /* First cache line: the owner's. */
  hak_block_t *free;       /* the owner allocates from here, and frees onto it (LIFO) */
  uint32_t used;           /* blocks handed out, including pending remote frees */
  uint32_t capacity;       /* blocks carved from the slab area so far */
  /* The owner's frees while sampling and in the secure and debug builds
   * (fastpath.h), and a retiring slab's last one. */
  hak_block_t *local_free;
  _Atomic uintptr_t owner;
  /* The owner's free takes its slow path when `used` drops to this or
   * below: 0, where the slab's last block retires it; -1 while the slab is
   * its class's current one (set_current in heap.c), whose emptying keeps
   * it current and takes nothing but the fast path's steps (a round that
   * empties the current slab, in an order the branch predictor cannot
   * learn, then mispredicts no more: xmalloc 1 thread, one free in four);
   * HAK_FLOOR_SLOW, every free, while the owner word is tagged or 0
   * (hak_slab_set_owner), so that the fast path reads no owner word. */
  int32_t used_floor;
  uint32_t reserved;       /* blocks the slab area can hold */
  uint8_t cls;
  uint8_t index;           /* position in its segment */
  uint8_t where;           /* HAK_IN_NONE, HAK_IN_QUEUE or HAK_IN_FULL */
  /* Blocks put on `free` since the last refill and at it (statistics): the
   * owner's free counts here, in the line it writes anyway. */
  uint32_t handed;
  struct hak_slab *next, *prev; /* the owner heap's queue of this class, or its full list */
  /* Second line: written by other threads, kept apart to avoid false sharing
   * (the owner's fields here are touched on slow paths only). */
  _Atomic uintptr_t thread_free __attribute__((aligned(64)));
  hak_block_t *free_rest;  /* blocks held back behind a sampling cut */
  uint32_t synced_used;    /* `used` at the last fold */
  /* `reserved` (0 while the slab is not in use) and `cls` again, for
   * another thread's free: it reads this line, never the first, which the
   * owner writes at every malloc and free (a read there costs the owner
   * its line back: xmalloc 8 threads +28 %, larson 8 +9 %). */
  uint32_t blk_reserved;
  /* Counts since the last fold into the heap's class counters: refills in
   * the low HAK_ST_BLOCKS_SHIFT bits, blocks allocated above them.  A
   * refill adds to it and tests nothing: the heap folds its current slabs
   * every HAK_FOLD_EVERY slow calls and when the controller asks (and a
   * slab whenever it is looked at for another reason), so the refills'
   * field cannot fill up.  The frees follow at
   * the fold from these and `used`. */
  uint64_t st_count;
  /* Where the blocks start, the block size's trailing zero bits and odd
   * part inverted mod 2^64, which turn "a block boundary, and which block"
   * into a multiply and a rotate (hak_slab_block_index: a remote free's
   * check, and the secure library's). */
  uint8_t blk_shift;
  uint8_t blk_cls;
  /* Read on slow paths and by malloc_usable_size (from any thread). */
  uint32_t block_size;     /* 0 while the slab is not in use */
  uint8_t *blk_start;
  uint64_t blk_inv;
} __attribute__((aligned(64))) hak_slab_t;
_Static_assert(sizeof(hak_slab_t) == 128, "free() finds a slab as segment + 128 + index * 128");
_Static_assert(offsetof(hak_slab_t, prev) < 64, "the owner's fields share one cache line");

/* Block index of p in slab s, or UINT32_MAX if p is not a block start
 * inside the slab's block area.  With size = odd * 2^shift: (p - start)
 * times the inverse of odd (mod 2^64), rotated right by shift, is the
 * quotient when p - start is a multiple of size, and at least 2^64 / size
 * otherwise (low bits rotate to the top); p below start wraps the same
 * way.  So "below reserved" checks everything at once. */
hak_inline uint32_t hak_slab_block_index(const hak_slab_t *s, const void *p) {
  uint64_t x = (uint64_t)((uintptr_t)p - (uintptr_t)s->blk_start) * s->blk_inv;
  unsigned k = s->blk_shift;
  uint64_t q = (x >> k) | (x << ((64 - k) & 63));
  return q < s->blk_reserved ? (uint32_t)q : UINT32_MAX;
}

enum { HAK_IN_NONE = 0, HAK_IN_QUEUE = 1, HAK_IN_FULL = 2 };
enum { HAK_SEG_TINY = 1, HAK_SEG_MID = 2, HAK_SEG_LARGE = 3, HAK_SEG_BIG = 4 };

/* Segment header.  slabs[] must stay at a fixed offset: free() indexes it
 * before it knows the kind (Large/Big use slab_shift 22, hence slabs[0],
 * whose owner is always 0). */
struct hak_segment {
  uint32_t slab_shift;
  uint8_t kind;
  uint8_t nslabs;
  uint8_t huge;                  /* halves asked for huge pages, a bit each (segment.c) */
  uint8_t pad;
  _Atomic(hak_heap_t *) heap;    /* owner of a Tiny/Mid segment */
  uint64_t free_mask;            /* slabs not in use */
  uint64_t dirty_mask;           /* free slabs whose pages may be resident */
  uint64_t young_mask;           /* dirty slabs freed since the last purge tick */
  uint64_t purge_at;             /* ms: the next purge tick (0: nothing dirty) */
  uint32_t used_slabs;
  uint32_t cached_ms;            /* ms (mod 2^32): when it entered the segment cache */
  hak_segment_t *next, *prev;    /* owner's segment list / global lists */
  size_t map_size;               /* bytes mapped from the segment start */
  uint64_t sec_guard_mask;       /* secure library: slabs whose last page is PROT_NONE */
  uint8_t sec_guard_kind;        /* ... for this kind of segment (0: none) */
  hak_slab_t slabs[1] __attribute__((aligned(128)));           /* Tiny: 64, Mid: 8, Large/Big: 1 (unused) */
};

hak_inline hak_segment_t *hak_seg_of(const void *p) {
  return (hak_segment_t *)((uintptr_t)p & ~(uintptr_t)HAK_SEG_MASK);
}

/* ---- segment map: one byte per 4 MiB of address space ------------------ */
/* 0: not hakmem's; 1: a segment header starts here; k > 1: inside a Big
 * mapping whose header is k-1 units lower (254 at most: walk again). */
#define HAK_MAP_BITS 47
extern _Atomic(uint8_t) hak_segmap[(size_t)1 << (HAK_MAP_BITS - HAK_SEG_SHIFT)];

hak_inline uint8_t hak_segmap_get(uintptr_t a) {
  uintptr_t i = a >> HAK_SEG_SHIFT;
  if (hak_unlikely(i >= ((uintptr_t)1 << (HAK_MAP_BITS - HAK_SEG_SHIFT)))) return 0;
  return atomic_load_explicit(&hak_segmap[i], memory_order_relaxed);
}
/* The free path's variant: the index is masked instead of checked.  Any
 * address below 2^47 (all user space) reads its own entry; a wild pointer
 * beyond that aliases one, and then faults as it would with glibc. */
hak_inline uint8_t hak_segmap_get_fast(uintptr_t a) {
  return atomic_load_explicit(
      &hak_segmap[(a >> HAK_SEG_SHIFT) & (((uintptr_t)1 << (HAK_MAP_BITS - HAK_SEG_SHIFT)) - 1)],
      memory_order_relaxed);
}
void hak_segmap_set(void *base, size_t size, bool on);
hak_segment_t *hak_segmap_lookup(const void *p); /* header of any interior pointer, or NULL */
/* Zeroes n bytes for calloc, writing only the pages that are not zero
 * already (src/zero.c). */
void hak_clear(void *p, size_t n);

/* ---- statistics ---------------------------------------------------------- */
/* HAKMEM_BENCH_MINIMAL builds compile statistics out (the gap between the
 * two builds is the price of observability). */
#ifndef HAKMEM_BENCH_MINIMAL
#define HAKMEM_BENCH_MINIMAL 0
#endif
static const bool hak_stats_on = !HAKMEM_BENCH_MINIMAL;
/* The secure library (libhakmem-secure.so) is built from the same sources
 * with HAKMEM_SECURE=1: encoded free lists, guard pages, block records,
 * canaries, quarantine (secure.c).  In the normal one every `if
 * (hak_secure)` folds away. */
#ifndef HAKMEM_SECURE
#define HAKMEM_SECURE 0
#endif
static const bool hak_secure = HAKMEM_SECURE;
typedef _Atomic unsigned long long hak_counter_t;
/* A counter only its owner thread writes: no lock prefix, yet readable. */
#define HAK_STAT_ADD(c, n)                                                                   \
  do {                                                                                       \
    if (hak_stats_on)                                                                        \
      atomic_store_explicit(&(c), atomic_load_explicit(&(c), memory_order_relaxed) + (n),    \
                            memory_order_relaxed);                                           \
  } while (0)
/* A counter any thread may bump (slow paths only). */
#define HAK_STAT_INC(c)                                                   \
  do {                                                                    \
    if (hak_stats_on) atomic_fetch_add_explicit(&(c), 1, memory_order_relaxed); \
  } while (0)

typedef struct hak_class_counters {
  hak_counter_t allocs, frees, remote_frees, refills;
} hak_class_counters_t;

/* The counters of stats.def, by where they are kept. */
#define HAK_STAT_KEEP_HEAP(f) hak_counter_t f;
#define HAK_STAT_KEEP_GLOBAL(f)
#define HAK_STAT_KEEP_OS(f)
#define HAK_STAT_KEEP_MISUSE(f)
#define HAK_STAT_KEEP_PROC(f)
/* Large and Big allocations by requested size, for the controller's
 * size-class histogram: under 128 KiB, 128-256 KiB, ..., 1-2 MiB, 2 MiB
 * and up.  The bounds are the big threshold's ladder (learn/knobs.def),
 * so that moving the threshold moves no allocation from one bin to
 * another: by tier, a window on a lower threshold looked like another
 * workload, and a learner that compares windows of one workload never
 * counted it (blocks of 256 KiB-1.5 MiB: a 1 MiB threshold played in 25
 * of 78 windows, the learn_tiers check). */
#define HAK_LB_BINS 6
hak_inline unsigned hak_lb_bin(size_t n) {
  return n < ((size_t)128 << 10) ? 0 : n >= ((size_t)2 << 20) ? HAK_LB_BINS - 1 : hak_bsr(n) - 16;
}
/* The controller's histogram: the small classes, then those bins. */
#define HAK_HIST_BINS (HAK_NCLASS + HAK_LB_BINS)

typedef struct hak_heap_stats {
  hak_class_counters_t cls[HAK_NCLASS];
  hak_counter_t lb_size[HAK_LB_BINS]; /* Large and Big allocations by size (hak_lb_bin) */
  /* Refills that had to carve fresh blocks, per class (the controller
   * sizes Mid refill batches from these and the refills). */
  hak_counter_t carves[HAK_NCLASS];
#define HAK_STAT(name, src, field, ...) HAK_STAT_KEEP_##src(field)
#define HAK_STAT_INTERNAL(field, src) HAK_STAT_KEEP_##src(field)
#include "stats.def"
#undef HAK_STAT
#undef HAK_STAT_INTERNAL
} hak_heap_stats_t;
#undef HAK_STAT_KEEP_HEAP
#undef HAK_STAT_KEEP_GLOBAL
#define HAK_STAT_KEEP_HEAP(f)
#define HAK_STAT_KEEP_GLOBAL(f) hak_counter_t f;

/* Process-wide counters (stats.c); `dead` holds the heaps of exited threads. */
typedef struct hak_global_stats {
  hak_heap_stats_t dead;
#define HAK_STAT(name, src, field, ...) HAK_STAT_KEEP_##src(field)
#define HAK_STAT_INTERNAL(field, src) HAK_STAT_KEEP_##src(field)
#include "stats.def"
#undef HAK_STAT
#undef HAK_STAT_INTERNAL
} hak_global_stats_t;
#undef HAK_STAT_KEEP_HEAP
#undef HAK_STAT_KEEP_GLOBAL
#undef HAK_STAT_KEEP_OS
#undef HAK_STAT_KEEP_MISUSE
#undef HAK_STAT_KEEP_PROC
extern hak_global_stats_t hak_gstats;

/* lock.c: a spin-then-yield lock; every global one is taken around fork. */
typedef struct { _Atomic int v; } hak_lock_t;
#define HAK_LOCK_INIT {0}
void hak_lock_slow(hak_lock_t *l);
/* init.c: the fork handlers, registered by the first lock taken once the
 * process has a second thread (0 none, 1 being registered, 2 done). */
extern _Atomic int hak_forks_state;
void hak_forks_register(void);
#if __has_include(<sys/single_threaded.h>)
#include <sys/single_threaded.h> /* glibc 2.32 */
#define HAK_SINGLE_THREADED() (__libc_single_threaded != 0)
#else
#define HAK_SINGLE_THREADED() false /* no way to tell: init.c registers at start */
#endif
hak_inline void hak_forks_need(void) {
  if (hak_unlikely(atomic_load_explicit(&hak_forks_state, memory_order_relaxed) != 2) &&
      !HAK_SINGLE_THREADED())
    hak_forks_register();
}
/* init.c: set in the thread that forks, from our prepare handler to our
 * parent or child one.  Every lock is its own then, so the allocations
 * other fork handlers make in between (glibc runs them in an order set by
 * when each was registered, ours maybe among the last) pass through.  The
 * controller's thread reads the main thread's flag (os.c): when the main
 * thread forks, it must wait like any other. */
extern __thread bool hak_fork_owner __attribute__((tls_model("initial-exec")));
hak_inline void hak_lock(hak_lock_t *l) {
  hak_forks_need();
  if (hak_unlikely(hak_fork_owner) && !hak_os_on_side_thread()) return;
  int z = 0;
  if (hak_likely(atomic_compare_exchange_weak_explicit(&l->v, &z, 1, memory_order_acquire,
                                                       memory_order_relaxed)))
    return;
  hak_lock_slow(l);
}
/* Without the registration: for a signal handler (pthread_atfork is not
 * async-signal-safe), where a lock held a moment is only waited for. */
hak_inline bool hak_lock_try_raw(hak_lock_t *l) {
  int z = 0;
  return atomic_compare_exchange_strong_explicit(&l->v, &z, 1, memory_order_acquire,
                                                 memory_order_relaxed);
}
hak_inline bool hak_lock_try(hak_lock_t *l) {
  hak_forks_need();
  if (hak_unlikely(hak_fork_owner) && !hak_os_on_side_thread()) return true;
  return hak_lock_try_raw(l);
}
hak_inline void hak_unlock(hak_lock_t *l) {
  if (hak_unlikely(hak_fork_owner)) return;
  atomic_store_explicit(&l->v, 0, memory_order_release);
}
hak_inline void hak_lock_reset(hak_lock_t *l) { atomic_store_explicit(&l->v, 0, memory_order_relaxed); }
/* After fork: the parent unlocks what it locked; the child, where the
 * holder may be a thread that no longer exists, resets. */
hak_inline void hak_lock_after_fork(hak_lock_t *l, bool child) {
  if (child) hak_lock_reset(l);
  else hak_unlock(l);
}


/* ---- per-thread heap ---------------------------------------------------- */
typedef struct hak_slabq { hak_slab_t *first, *last; } hak_slabq_t;

struct hak_heap {
  hak_slab_t *direct[HAK_NDIRECT]; /* (n+15)/16 -> current slab, n <= 1 KiB */
  hak_slab_t *cur[HAK_NCLASS];     /* current slab of each class */
  hak_slabq_t queue[HAK_NCLASS];   /* slabs of the class that may have room */
  hak_slabq_t full;                /* slabs found full, of every class */
  _Atomic(hak_block_t *) delayed;  /* remote frees into full slabs */
  hak_segment_t *segs[2];          /* owned Tiny / Mid segments */
  uint64_t slow_calls;
  /* hak_fold_epoch when it last folded its current slabs (the controller
   * reads it: hak_heaps_folded) */
  _Atomic uint32_t fold_epoch;
  uint32_t measure_tick;           /* refills since the last timed one (HAKMEM_PROF, heap.c) */
  _Atomic uint64_t next_purge;     /* ms: the earliest purge due in its segments, 0 none */
  hak_lock_t seg_lock;             /* its segments (see segment.c) */
  hak_heap_t *next_all, *prev_all; /* registry of live heaps */
  hak_heap_t *park_next, *park_prev; /* parked: its thread exited, kept whole for the next */
  uint64_t parked_ms;
  /* Call-site sampling (profiling on): each class samples its own byte
   * stream; a cut in the current slab's free list ends the fast path at
   * the sampled allocation. */
  int64_t sample_left[HAK_NCLASS]; /* per class: bytes before its next sample */
  uint64_t rng;
  bool sample_off;                 /* an explicit hak_alloc_cs call counts itself */
  uint32_t site_skip;              /* learning alone: Large blocks before the next recorded one */
  /* lcache: a few freed Large spans kept by this thread (large.c). */
  void *lcache[HAK_LCACHE_SLOTS_MAX];
  uint16_t lcache_pages[HAK_LCACHE_SLOTS_MAX];
  unsigned lcache_n;
  uint32_t slab_takes;             /* slabs it acquired (heap.c) */
  uint32_t slab_takes_seen;        /* ... when the Large tier last asked for idle segments */
  hak_heap_stats_t stats;
};

extern hak_slab_t hak_slab_empty;
extern hak_heap_t hak_heap_empty;
extern __thread hak_heap_t *hak_tls_heap __attribute__((tls_model("initial-exec")));

/* A per-thread counter, in heap h's statistics (no atomics: the owner
 * writes it), or, for a thread without a heap, in the exited threads'
 * total, atomically. */
#define HAK_HEAP_STAT(h, field, n)                                                   \
  do {                                                                               \
    hak_heap_t *h_ = (h);                                                            \
    if (h_ != &hak_heap_empty) HAK_STAT_ADD(h_->stats.field, (n));                    \
    else if (hak_stats_on)                                                           \
      atomic_fetch_add_explicit(&hak_gstats.dead.field, (n), memory_order_relaxed); \
  } while (0)

/* ---- module entry points ------------------------------------------------ */
/* Layers (docs/design.md): alloc.c (the API and the one size router) calls
 * the tiers: heap.c (slabs, per thread) over segment.c and slab.c; large.c
 * (spans); big.c (mappings).  All of them use os.c, msg.c, policy.h. */

/* init.c: the one initialisation point (a thread getting its heap, or
 * hak_ensure_init in alloc.c). */
void hak_process_init(void);
extern _Atomic int hak_init_state;
/* heap.c */
/* site: the caller's, for the call-site profiler's samples: an allocation
 * at a sample point goes back up to hak_alloc_sampled (alloc.c), which
 * serves it elsewhere and then calls hak_heap_sample_done. */
void *hak_heap_alloc_class(hak_heap_t *h, unsigned cls, void *site);
void hak_heap_sample_done(hak_heap_t *h, unsigned cls);
void hak_heap_sync_stats(hak_heap_t *h);
/* The controller, each window it reads the counts (`fresh`; not in FROZEN:
 * folds are work nobody reads): a slab a class leaves with many blocks
 * counted is folded then (set_current), and shortly before the window
 * ends every heap is asked to fold its current slabs' counts at its next
 * slow call (hak_heap_fold_now), and waited for a little (hak_heaps_folded:
 * every heap that folded for the last ask folded for this one). */
extern _Atomic uint32_t hak_fold_epoch;
void hak_heap_fold_watch(bool fresh);
void hak_heap_fold_now(void);
bool hak_heaps_folded(void);
void hak_heap_fold_current(hak_heap_t *h);
/* At a slow call: the fold asked for, if it was.  Besides the small
 * classes' slow paths, the Large and Big ones and a moving realloc look:
 * a thread whose small blocks all come back to its current slabs through
 * its own frees makes no small slow call for windows on end (realloc-grow:
 * 4,000 allocations counted in most windows, 100,000 in one of eight). */
hak_inline void hak_heap_fold_due(hak_heap_t *h) {
  if (hak_unlikely(atomic_load_explicit(&h->fold_epoch, memory_order_relaxed) !=
                   atomic_load_explicit(&hak_fold_epoch, memory_order_relaxed)) &&
      hak_stats_on && h != &hak_heap_empty)
    hak_heap_fold_current(h);
}
/* This thread's heap, created if needed (the empty heap if that fails). */
hak_heap_t *hak_heap_get(void);
void hak_heap_stats_add(hak_heap_stats_t *into, const hak_heap_stats_t *from);
/* Calls fn for the counters of exited threads, then of every live heap,
 * under the registry lock.  In a signal handler (`in_signal`) the lock is
 * only tried a bounded number of times: false if it could not be taken. */
bool hak_heaps_foreach(void (*fn)(const hak_heap_stats_t *st, void *arg), void *arg, bool in_signal);
void hak_heap_retire(hak_heap_t *h, hak_slab_t *slab);
void hak_heap_purge_all(uint64_t now_ms); /* the controller: due purges of every heap */
void hak_heap_park_tick(uint64_t now_ms, bool all); /* parked heaps idle past the purge delay (all: every one) are abandoned */
void hak_heap_collect(hak_heap_t *h, bool force, bool purge);
void hak_heap_fork_child(void);
void hak_heap_lock(void);
void hak_heap_unlock(bool child);
bool hak_heap_adopt_slab(hak_heap_t *h, hak_slab_t *slab);
void hak_heap_free_full(hak_heap_t *h, hak_slab_t *s, hak_block_t *b);
void hak_heap_drain_delayed(hak_heap_t *h);
void hak_heap_thread_key_init(void);
/* segment.c */
hak_slab_t *hak_segment_slab_acquire(hak_heap_t *h, unsigned cls);
void hak_segment_slab_release(hak_heap_t *h, hak_slab_t *slab);
void hak_segment_purge(hak_heap_t *h, uint64_t now, bool force);
/* The controller's purge of another thread's heap: only if due, and only
 * if its segment lock is free; true if it purged. */
bool hak_segment_purge_try(hak_heap_t *h, uint64_t now, bool force);
void hak_segment_abandon_all(hak_heap_t *h, uint64_t idle_since);
bool hak_segment_has_free_slab(hak_heap_t *h, unsigned cls);
bool hak_segment_held_by(hak_heap_t *h, const hak_segment_t *seg, unsigned n);
bool hak_heap_release_idle(hak_heap_t *h);
void hak_segment_cache_given(size_t n);
void hak_segment_adopt_all(hak_heap_t *h);
/* Adopts one segment an exited thread left with live slabs of cls's kind
 * (they join h's queues); false if there is none. */
bool hak_segment_adopt(hak_heap_t *h, unsigned cls);
size_t hak_segment_cache_trim(void);
void hak_segment_cache_tick(uint64_t now, bool force);
void hak_segment_lock_all(void);
void hak_segment_unlock_all(bool child);
/* slab.c */
void hak_slab_init(hak_slab_t *slab, hak_segment_t *seg, unsigned cls);
void hak_slab_extend(hak_slab_t *slab);
/* Links the next page of the current carve's blocks, if the carve reserved
 * more (false otherwise). */
bool hak_slab_link_pending(hak_slab_t *slab);
/* Per class: log2 of the bytes a refill carves, 0 for the policy's (set by
 * the controller for busy Mid classes). */
extern _Atomic uint8_t hak_carve_shift[HAK_NCLASS];
uint32_t hak_slab_collect(hak_slab_t *slab);
void hak_slab_free_remote(hak_slab_t *slab, hak_block_t *b);
hak_inline hak_heap_t *hak_slab_owner(const hak_slab_t *s) {
  return (hak_heap_t *)(atomic_load_explicit(&s->owner, memory_order_acquire) & ~HAK_SLAB_TAGS);
}
extern bool hak_sites_on; /* site.c: profiling samples (set at start-up, before any heap) */
#define HAK_FLOOR_SLOW INT32_MAX
hak_inline void hak_slab_set_owner(hak_slab_t *s, hak_heap_t *h, bool full) {
  uintptr_t tags = (full ? HAK_SLAB_FULL : 0) | (h && hak_sites_on ? HAK_SLAB_SAMPLED : 0);
  /* Written by the owner (or the thread handing the slab over), read by
   * the owner's free: its fast path only for an untagged owner. */
  s->used_floor = h && !tags ? 0 : HAK_FLOOR_SLOW;
  atomic_store_explicit(&s->owner, (uintptr_t)h | tags, memory_order_release);
}
/* p is the start of a block of slab (in use or not). */
hak_inline bool hak_slab_owns_block(const hak_slab_t *slab, const void *p) {
  return hak_slab_block_index(slab, p) != UINT32_MAX; /* blk_reserved is 0 while not in use */
}
uint8_t *hak_slab_start(const hak_slab_t *slab);
/* large.c.  `site`, where taken: the call site to record in the profile,
 * or NULL when the allocation is not profiled. */
bool hak_large_fits(size_t n, size_t align); /* a Large segment can hold it */
/* how: the site's decision bits (learn/sites.h: HAK_SITE_LONG places the
 * span apart from short-lived ones). */
void *hak_large_alloc(size_t n, size_t align, bool zero, void *site, size_t weight, unsigned how);
/* malloc of a Large or Big size: the thread's own span cache first, else
 * alloc.c's hak_malloc_large_full (the router). */
void *hak_large_malloc(size_t n, void *site);
void *hak_malloc_large_full(size_t n, void *site);
void hak_large_free(hak_segment_t *seg, void *p);
void hak_large_free_moved(hak_segment_t *seg, void *p);
size_t hak_large_usable(hak_segment_t *seg, const void *p);
bool hak_large_grow(hak_segment_t *seg, void *p, size_t n, void *site);
size_t hak_large_trim(bool force);
void hak_large_release(size_t bytes); /* before another tier maps fresh memory */
/* Empty segments change tiers (segment.c, large.c).  Each hands over an
 * empty segment, off its lists, with `resident` (HAK_SEG_PAGE_WORDS words,
 * a bit per page, the header's included) set for the pages that may be
 * resident, and leaves exactly those pages counted as committed; NULL if
 * it has none to give.  The receiver rewrites the header. */
#define HAK_SEG_PAGES (HAK_SEG_SIZE >> HAK_PAGE_SHIFT)
#define HAK_SEG_PAGE_WORDS (HAK_SEG_PAGES / 64)
hak_segment_t *hak_segment_cache_take(uint64_t *resident); /* Large, before mapping one */
hak_segment_t *hak_large_take_empty(uint64_t *resident);   /* Tiny/Mid, likewise */
int hak_large_block(hak_segment_t *seg, const void *p, uint32_t **req, size_t *pages);
size_t hak_large_cached_bytes(void);
void hak_large_flush_thread(hak_heap_t *h);
/* The controller, once a window: moves each Large class's cache cap toward
 * the target hit rate (hysteresis inside), within the cache budget. */
void hak_large_ace(double target_hit);
void hak_large_lock(void);
void hak_large_unlock(bool child);
/* big.c */
/* how: the site's decision bits (HAK_SITE_CACHE / HAK_SITE_NOCACHE decide
 * which freed pages the BigCache gives up last / first over its budget). */
void *hak_big_alloc(size_t n, size_t align, bool zero, void *site, unsigned how);
void hak_big_free(hak_segment_t *seg, void *p);
size_t hak_big_usable(hak_segment_t *seg, const void *p);
void *hak_big_realloc(hak_segment_t *seg, void *p, size_t n, void *site);
size_t hak_big_trim(bool force);
/* A thread now returns idle memory on time (the controller, once it runs):
 * the BigCache's budget may then follow the program (big.c). */
void hak_big_idle_return(bool on);
int hak_big_block(hak_segment_t *seg, const void *p, size_t **req, size_t *capacity);
size_t hak_big_cached_bytes(void);
size_t hak_big_cached_committed(void);
void hak_big_lock(void);
void hak_big_unlock(bool child);
/* alloc.c */
void *hak_malloc_slow(size_t n, void *site);
void *hak_alloc_routed(size_t n, size_t align, bool zero, void *site);
void *hak_alloc_large_or_big(size_t n, size_t align, bool zero, void *site, bool record);
void *hak_alloc_sampled(hak_heap_t *h, unsigned cls, void *site);
void hak_free_special(void *p);
/* A block whose segment is not this thread's heap's (hak_free_fast decided). */
void hak_free_nonowner(void *p, hak_segment_t *seg, hak_slab_t *slab);
void *hak_calloc_impl(size_t count, size_t size, void *site);
void *hak_realloc_impl(void *p, size_t n, void *site);
void *hak_aligned_impl(size_t align, size_t n, void *site);
void *hak_memalign_impl(size_t align, size_t n, void *site);
/* msg.c: misuse reports (counted; printed a bounded number of times). */
void hak_report_misuse(const char *what, const void *p, bool twice);
void hak_misuse_stop(void); /* aborts if HAKMEM_ON_ERROR=abort */
typedef struct hak_misuse_counters { hak_counter_t invalid_frees, double_frees; } hak_misuse_counters_t;
extern hak_misuse_counters_t hak_misuse;
/* stats.c */
/* Fills *out; false if live threads' counters had to be left out (in a
 * signal handler, while the heap registry was busy). */
bool hak_stats_collect(hak_stats_t *out, bool in_signal);
void hak_stats_write(int fd, bool in_signal);
void hak_stats_write_json(int fd, bool in_signal); /* one line */
/* Running totals the controller takes differences of (per class: blocks
 * allocated, refills, refills that carved: the statistics' own counts,
 * fresh when hak_heap_fold_now was called a little before). */
typedef struct hak_learn_counts {
  uint64_t allocs[HAK_NCLASS], refills[HAK_NCLASS], carves[HAK_NCLASS];
  uint64_t lb_size[HAK_LB_BINS]; /* every Large and Big allocation, by size */
  uint64_t realloc_copied; /* bytes */
} hak_learn_counts_t;
void hak_stats_learn(hak_learn_counts_t *out);
/* The caller's return address: the call-site label of an allocation. */
#define HAK_RA() __builtin_return_address(0)

/* ---- internal asserts (the debug build) --------------------------------- */
/* -DHAKMEM_DEBUG=ON walks the internal invariants at the slow paths' check
 * points (check.h) and stops at the first broken one.  Elsewhere every
 * `if (hak_debug)` and hak_assert compiles to nothing, yet type-checks. */
#ifndef HAKMEM_DEBUG
#define HAKMEM_DEBUG 0
#endif
static const bool hak_debug = HAKMEM_DEBUG;
/* The owner's frees go on top of `free` (fastpath.h), but in the secure
 * library (reuse delayed on purpose) and the debug build (every link is
 * checked at a refill before malloc follows it), where they wait on
 * local_free. */
static const bool hak_free_on_top = !HAKMEM_SECURE && !HAKMEM_DEBUG;
#ifdef __FILE_NAME__
#define HAK_FILE __FILE_NAME__
#else
#define HAK_FILE __FILE__
#endif
/* Reports "hakmem: file:line: invariant failed: cond: details" and aborts. */
__attribute__((cold, noreturn, format(printf, 4, 5))) void hak_assert_fail(
    const char *file, int line, const char *cond, const char *fmt, ...);
#define hak_assert(cond, ...)                                                 \
  do {                                                                        \
    if (hak_debug && hak_unlikely(!(cond)))                                   \
      hak_assert_fail(HAK_FILE, __LINE__, #cond, __VA_ARGS__);                \
  } while (0)

/* ---- small utilities ---------------------------------------------------- */
hak_inline size_t hak_align_up(size_t n, size_t a) { return (n + a - 1) & ~(a - 1); }
hak_inline bool hak_is_pow2(size_t x) { return x && !(x & (x - 1)); }

#endif
