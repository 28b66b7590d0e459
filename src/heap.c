/* Per-thread heaps: the slow path of small allocations (refill, fresh slabs),
 * retiring empty slabs, and what happens when a thread ends or forks.
 * A thread starts on the static empty heap: its first allocation misses
 * into the slow path (hak_heap_alloc_class), which gives it a heap of its own. */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "check.h"
#include "internal.h"
#include "msg.h"
#include "options.h"
#include "os.h"
#include "prof.h"
#include "secure.h"
#include "site.h"
#include "learn/control.h"

hak_slab_t hak_slab_empty;
hak_heap_t hak_heap_empty = {
    .direct = {[0 ... HAK_NDIRECT - 1] = &hak_slab_empty},
    .cur = {[0 ... HAK_NCLASS - 1] = &hak_slab_empty},
};
__thread hak_heap_t *hak_tls_heap __attribute__((tls_model("initial-exec"))) = &hak_heap_empty;

/* Heaps live in pages of their own, recycled through a free list. */
static hak_lock_t heaps_lock = HAK_LOCK_INIT;
static hak_lock_t reclaim_lock = HAK_LOCK_INIT; /* one parked heap abandoned at a time (park_reclaim) */
static uint8_t *heap_cut, *heap_cut_end; /* the rest of the last heap chunk */
static hak_heap_t *heaps_free;
static hak_heap_t *heaps_all;
/* Parked heaps, a queue: parked at the first end, taken and abandoned at
 * the last (the oldest).  See heap_park. */
static hak_heap_t *parked_first, *parked_last;
static _Atomic size_t parked_count;
static pthread_key_t heap_key;
static _Atomic int heap_key_ready;

static hak_slabq_t *list_of(hak_heap_t *h, hak_slab_t *s) {
  return s->where == HAK_IN_FULL ? &h->full : &h->queue[s->cls];
}

static void list_remove(hak_heap_t *h, hak_slab_t *s) {
  hak_slabq_t *q = list_of(h, s);
  if (s->prev) s->prev->next = s->next;
  else q->first = s->next;
  if (s->next) s->next->prev = s->prev;
  else q->last = s->prev;
  s->next = s->prev = NULL;
  s->where = HAK_IN_NONE;
}

static void list_push(hak_heap_t *h, hak_slab_t *s, uint8_t where, bool front) {
  s->where = where;
  hak_slabq_t *q = list_of(h, s);
  if (front) {
    s->prev = NULL;
    s->next = q->first;
    if (q->first) q->first->prev = s;
    else q->last = s;
    q->first = s;
  } else {
    s->next = NULL;
    s->prev = q->last;
    if (q->last) q->last->next = s;
    else q->first = s;
    q->last = s;
  }
}


/* A slab with no room leaves its queue, so refills never look at it again,
 * and asks the next remote free to tell us.  Fails if remote frees came in
 * meanwhile (the caller collects them instead). */
static bool mark_full(hak_heap_t *h, hak_slab_t *s) {
  uintptr_t zero = 0;
  if (!atomic_compare_exchange_strong_explicit(&s->thread_free, &zero, HAK_TF_NOTIFY,
                                               memory_order_acq_rel, memory_order_relaxed))
    return false;
  list_remove(h, s);
  list_push(h, s, HAK_IN_FULL, false);
  hak_slab_set_owner(s, h, true);
  return true;
}

/* A full slab that a free gave room goes to the back of its queue: by the
 * time a refill reaches it, the frees after that one have joined it.  At
 * the front, the next refill took its single block, and the slabs further
 * back drained to empty, were given up and taken fresh again (random-mixed,
 * 1M ops: 270 slabs taken, 207 this way; 74.4 -> 63.9 instructions per
 * malloc+free pair).  The price: fewer slabs drain and go back, a few % of
 * peak RSS where live sets shift (alloc-test +4 %). */
hak_inline void unmark_full(hak_heap_t *h, hak_slab_t *s) {
  list_remove(h, s);
  atomic_fetch_and_explicit(&s->thread_free, ~HAK_TF_NOTIFY, memory_order_acq_rel);
  hak_slab_set_owner(s, h, false);
  list_push(h, s, HAK_IN_QUEUE, false);
}

/* direct[] entries of each Tiny class: class c serves direct[first(c) ..
 * first(c) + n(c) - 1], the sizes up to its own in steps of 16.  Tables,
 * because the class change of a refill is frequent (random-mixed: 1 malloc
 * in 11), and at most 4 entries, stored without a loop. */
#define DIRECT_LAST(c) (HAK_CLASS_SIZE(c) >> 4)
#define DIRECT_FIRST(c) ((c) ? DIRECT_LAST((c) - 1) + 1 : 0)
#define DIRECT_N(c) (DIRECT_LAST(c) - DIRECT_FIRST(c) + 1)
#define DIRECT_TABLE4(M, c) M(c), M(c + 1), M(c + 2), M(c + 3)
#define DIRECT_TABLE16(M, c) DIRECT_TABLE4(M, c), DIRECT_TABLE4(M, c + 4), DIRECT_TABLE4(M, c + 8), DIRECT_TABLE4(M, c + 12)
static const uint8_t direct_first[HAK_NTINY] = {DIRECT_TABLE16(DIRECT_FIRST, 0), DIRECT_TABLE16(DIRECT_FIRST, 16)};
static const uint8_t direct_n[HAK_NTINY] = {DIRECT_TABLE16(DIRECT_N, 0), DIRECT_TABLE16(DIRECT_N, 16)};
_Static_assert(HAK_NTINY == 32 && HAK_CLASS_SIZE(HAK_NTINY - 1) == HAK_TINY_MAX,
               "the direct tables cover the Tiny classes");
_Static_assert(DIRECT_N(HAK_NTINY - 1) <= 4 && DIRECT_N(0) <= 4,
               "a Tiny class spans at most 4 entries (the widest class is the last, or size 0's)");

static void point_direct(hak_heap_t *h, unsigned cls, hak_slab_t *s) {
  h->cur[cls] = s;
  if (cls < HAK_NTINY) {
    /* Every request size that maps to this class points at the slab. */
    hak_slab_t **d = &h->direct[direct_first[cls]];
    unsigned n = direct_n[cls];
    d[0] = s;
    if (n > 1) {
      d[1] = s;
      if (n > 2) {
        d[2] = s;
        if (n > 3) d[3] = s;
      }
    }
  }
}

/* The current slab's last free stays on the fast path (used_floor); where
 * the owner's frees wait on local_free, it is the slow path's, and a slab
 * whose frees all take the slow path (HAK_FLOOR_SLOW) keeps them there.
 * The slab that stops being current takes its last free to the slow path
 * again. */
static void floor_reset(hak_heap_t *h, unsigned cls) {
  hak_slab_t *old = h->cur[cls];
  if (old != &hak_slab_empty && old->used_floor < 0) old->used_floor = 0;
}

static void slab_sync(hak_heap_t *h, hak_slab_t *s);
static _Atomic bool fold_fresh; /* the controller is reading the counts */

/* While the controller reads the counts, a slab its class leaves with many
 * blocks handed out since its last fold has them folded now (cheap: it is
 * mostly left because its free list ran dry, and then there is nothing to
 * walk).  Otherwise they wait until it is looked at again, windows later:
 * the controller saw a class's allocations in lumps, a size-class mix that
 * changed at every window (espresso: L1 0.3-0.9 between windows of 2 M
 * allocations) and so a phase change at every window, which kept it
 * learning for good.  A slab left after a refill or two (random-mixed: a
 * switch every ~16 allocations) waits: its lump is small, and folding it
 * cost 1 % of random-mixed's instructions in watched windows. */
#define FOLD_LEFT 256
static void set_current(hak_heap_t *h, unsigned cls, hak_slab_t *s) {
  hak_slab_t *old = h->cur[cls];
  if (hak_stats_on && old != s && hak_unlikely(atomic_load_explicit(&fold_fresh, memory_order_relaxed)) &&
      (old->st_count >> HAK_ST_BLOCKS_SHIFT) + old->handed >= FOLD_LEFT)
    slab_sync(h, old);
  floor_reset(h, cls);
  if (hak_free_on_top && s->used_floor == 0) s->used_floor = -1;
  point_direct(h, cls, s);
}

static void drop_current(hak_heap_t *h, unsigned cls) {
  floor_reset(h, cls);
  point_direct(h, cls, &hak_slab_empty);
}

static void park_unlink(hak_heap_t *h) {
  if (h->park_prev) h->park_prev->park_next = h->park_next;
  else parked_first = h->park_next;
  if (h->park_next) h->park_next->park_prev = h->park_prev;
  else parked_last = h->park_prev;
  h->park_next = h->park_prev = NULL;
  atomic_fetch_sub_explicit(&parked_count, 1, memory_order_relaxed);
}

static hak_heap_t *heap_new(void) {
  hak_heap_t *h = NULL;
  hak_lock(&heaps_lock);
  if (parked_last) {
    /* The one parked longest ago, as its last thread left it.  Taken in
     * turn, every parked heap is reused soon and its blocks freed by
     * other threads come back; the newest first left the older ones idle
     * with their memory until the purge delay (mstress, 32 threads: peak
     * RSS 54 MiB taking the oldest, 83 MiB the newest). */
    h = parked_last;
    park_unlink(h);
    hak_unlock(&heaps_lock);
    return h;
  }
  if (!heaps_free) {
    /* Heaps are cut from 64 KiB chunks one at a time, so that a process
     * with one thread touches one heap's pages, not the whole chunk's. */
    size_t chunk = (size_t)64 << 10;
    size_t sz = hak_align_up(sizeof(hak_heap_t) + HAK_SEC_HEAP_BYTES, 64); /* secure: a quarantine after it */
    if (heap_cut + sz > heap_cut_end) {
      uint8_t *m = hak_os_map_aligned(chunk, HAK_PAGE);
      if (m) {
        hak_os_commit_account((ptrdiff_t)chunk);
        heap_cut = m;
        heap_cut_end = m + chunk;
      }
    }
    if (heap_cut + sz <= heap_cut_end) {
      heaps_free = (hak_heap_t *)heap_cut;
      heaps_free->next_all = NULL;
      heap_cut += sz;
    }
  }
  if (heaps_free) {
    h = heaps_free;
    heaps_free = h->next_all;
    /* Everything but `delayed` starts afresh.  A remote free may still be
     * landing there (its sender saw this heap as a slab's owner before the
     * last owner left); the new owner's first slow path drains it, and
     * hands blocks of slabs it does not own to their slabs. */
    memset(h, 0, offsetof(hak_heap_t, delayed));
    memset((char *)h + offsetof(hak_heap_t, delayed) + sizeof h->delayed, 0,
           sizeof *h - offsetof(hak_heap_t, delayed) - sizeof h->delayed);
    if (hak_secure) memset(h + 1, 0, HAK_SEC_HEAP_BYTES);
    for (unsigned i = 0; i < HAK_NDIRECT; i++) h->direct[i] = &hak_slab_empty;
    for (unsigned i = 0; i < HAK_NCLASS; i++) h->cur[i] = &hak_slab_empty;
    h->next_all = heaps_all;
    if (heaps_all) heaps_all->prev_all = h;
    heaps_all = h;
  }
  hak_unlock(&heaps_lock);
  return h;
}

static void heap_delete(hak_heap_t *h) {
  hak_lock(&heaps_lock);
  hak_heap_stats_add(&hak_gstats.dead, &h->stats); /* its counters outlive it */
  if (h->prev_all) h->prev_all->next_all = h->next_all;
  else heaps_all = h->next_all;
  if (h->next_all) h->next_all->prev_all = h->prev_all;
  h->next_all = heaps_free;
  heaps_free = h;
  hak_unlock(&heaps_lock);
}

/* A thread's first slow path: its heap (and the process's set-up). */
hak_front hak_noinline static hak_heap_t *heap_first(void) {
  hak_process_init();
  /* Initialisation may have allocated (pthread_atfork, the unwinder):
   * then this thread has a heap already. */
  if (hak_tls_heap != &hak_heap_empty) return hak_tls_heap;
  hak_heap_t *h = heap_new();
  if (!h) return NULL;
  hak_tls_heap = h;
  /* pthread_setspecific does not allocate for the first 32 keys. */
  if (atomic_load_explicit(&heap_key_ready, memory_order_acquire)) pthread_setspecific(heap_key, h);
  return h;
}

hak_inline hak_heap_t *heap_for_thread(void) {
  hak_heap_t *h = hak_tls_heap;
  return hak_likely(h != &hak_heap_empty) ? h : heap_first();
}

/* This thread's heap, created if needed (the empty heap if that fails). */
hak_front hak_heap_t *hak_heap_get(void) {
  hak_heap_t *h = heap_for_thread();
  return h ? h : &hak_heap_empty;
}

/* Every few slow calls (policy: 16) a heap looks at the clock for purges
 * that are due: its own free slabs', and the cached and abandoned
 * segments' (and folds its current slabs' statistics when due).  An idle
 * thread purges nothing. */
hak_front hak_noinline static void heap_purge_check(hak_heap_t *h) {
  uint64_t now = hak_os_now_ms();
  if (hak_stats_on && (h->slow_calls & (HAK_FOLD_EVERY - 1)) == 0) hak_heap_fold_current(h);
  else hak_heap_fold_due(h);
  uint64_t due = atomic_load_explicit(&h->next_purge, memory_order_relaxed);
  if (due && now >= due) hak_segment_purge(h, now, false);
  hak_heap_park_tick(now, false);
  hak_segment_cache_tick(now, false);
  hak_control_tick(now);
}

/* The count inline, the check behind a call (as the compiler split it
 * before hak_front, which keeps it from splitting).  A fold the controller
 * asked for is done at the first slow call after it, not at the next look
 * at the clock: 16 slow calls took large-ws 0.1-24 ms, and a window's
 * counts were then mostly the window before's (hak_heap_fold_now). */
hak_inline void heap_maybe_purge(hak_heap_t *h) {
  if ((++h->slow_calls & hak_policy()->purge_check_mask) == 0) heap_purge_check(h);
  else hak_heap_fold_due(h);
}

/* Statistics of a slab: what the owner allocated from it and freed into it
 * since the last look are derived from `handed` and `used`, so that the
 * fast paths count nothing.  slab_fold moves a slab's own counts into the
 * heap's class counters, where hak_stats_get reads them. */
hak_front static void slab_fold(hak_heap_t *h, hak_slab_t *s) {
  hak_class_counters_t *cc = &h->stats.cls[s->cls];
  /* Called where every block handed out was allocated (st_count counts
   * them all), so what left the slab since the last fold is the frees. */
  uint32_t allocs = (uint32_t)(s->st_count >> HAK_ST_BLOCKS_SHIFT);
  uint32_t frees = s->synced_used + allocs - s->used;
  s->synced_used = s->used;
  HAK_STAT_ADD(cc->allocs, allocs);
  HAK_STAT_ADD(cc->frees, frees);
  HAK_STAT_ADD(cc->refills, s->st_count & ((1u << HAK_ST_BLOCKS_SHIFT) - 1));
  s->st_count = 0;
}

/* Brings a slab's counts up to date and folds them.  What is left of
 * `free` is counted by walking it and `local_free` side by side until the
 * shorter ends: every block of the slab is in one of them, in free_rest,
 * or counted in `used`, so either length gives the other. */
static void slab_sync(hak_heap_t *h, hak_slab_t *s) {
  if (!hak_stats_on) return;
  uint32_t left = 0, local = 0;
  const hak_block_t *a = s->free, *b = s->local_free;
  while (a && b) a = hak_link_get(s, a), b = hak_link_get(s, b), left++, local++;
  if (a) {
    uint32_t rest = 0;
    for (const hak_block_t *r = s->free_rest; r; r = hak_link_get(s, r)) rest++;
    left = s->capacity - s->used - local - rest; /* local_free ended first */
  }
  s->st_count += (uint64_t)(s->handed - left) << HAK_ST_BLOCKS_SHIFT;
  s->handed = left;
  slab_fold(h, s);
}

/* A heap folds its current slabs every HAK_FOLD_EVERY slow calls, and
 * at its next slow call after the controller asks for fresh counts
 * (hak_heap_fold_now): a slab is refilled while it is current
 * (or becoming so), so theirs are the counts that grow, and a refill only
 * adds.  Other threads' statistics are that far behind, plus what a slab
 * counted in its last turn as current until it is looked at again
 * (retired, collected, current again). */
_Atomic uint32_t hak_fold_epoch;

void hak_heap_fold_current(hak_heap_t *h) {
  atomic_store_explicit(&h->fold_epoch, atomic_load_explicit(&hak_fold_epoch, memory_order_relaxed),
                        memory_order_relaxed);
  for (unsigned c = 0; c < HAK_NCLASS; c++)
    if (h->cur[c] != &hak_slab_empty) slab_sync(h, h->cur[c]);
}

void hak_heap_fold_watch(bool fresh) { atomic_store_explicit(&fold_fresh, fresh, memory_order_relaxed); }
void hak_heap_fold_now(void) { atomic_fetch_add_explicit(&hak_fold_epoch, 1, memory_order_relaxed); }

/* Owner: refills `free`, carving new blocks only if there are none and
 * `carve` says so; with `all`, every free block goes there, other threads'
 * frees too (to see whether the slab is empty).  Afterwards `free` holds
 * exactly capacity - used blocks (other threads' frees still on their list
 * count as used). */
hak_inline void hak_slab_gather(hak_slab_t *slab, bool carve, bool all) {
  if (hak_likely(!slab->free && !slab->free_rest && !all)) {
    /* The common case: one list becomes `free` whole, unwalked.  Our own
     * frees first, their blocks last written on this core; other threads'
     * frees wait on their list until ours run out.  Taking both at once
     * meant walking one of them to join them, a cache miss per block
     * (larson at 8 threads: 9 % of the samples). */
    if (slab->local_free) {
      slab->free = slab->local_free;
      slab->local_free = NULL;
    } else if (atomic_load_explicit(&slab->thread_free, memory_order_relaxed) > HAK_TF_NOTIFY) {
      hak_slab_collect(slab);
    }
  } else {
    /* All of them, or blocks left in `free` (a sampling cut, an adopted
     * slab) that everything goes in front of. */
    if (atomic_load_explicit(&slab->thread_free, memory_order_relaxed) > HAK_TF_NOTIFY) hak_slab_collect(slab);
    hak_block_t *lists[2] = {slab->free_rest, slab->local_free};
    slab->free_rest = NULL;
    slab->local_free = NULL;
    for (int k = 0; k < 2; k++) {
      hak_block_t *l = lists[k];
      if (!l) continue;
      if (slab->free) {
        hak_block_t *t = l;
        for (hak_block_t *x; (x = hak_link_get(slab, t)) != NULL;) t = x;
        hak_link_set(t, slab->free);
      }
      slab->free = l;
    }
  }
  if (carve && !slab->free && slab->capacity < slab->reserved) hak_slab_extend(slab);
}

/* Places the class's next sample: if it falls among the blocks just handed
 * out, the free list is cut before that block, and the allocation that
 * finds the cut goes to sample_take.  Intervals are exponential, so the
 * stream of bytes of each class is sampled as a Poisson process. */
static void sample_arm(hak_heap_t *h, hak_slab_t *s) {
  unsigned c = s->cls;
  int64_t left = h->sample_left[c];
  if (left <= 0) left = hak_site_next_interval(&h->rng);
  uint64_t avail = (uint64_t)s->handed * s->block_size;
  if ((int64_t)avail < left) {
    h->sample_left[c] = left - (int64_t)avail;
    return;
  }
  uint32_t k = (uint32_t)((uint64_t)left / s->block_size);
  if (k == 0) {
    s->free_rest = s->free;
    s->free = NULL;
  } else {
    hak_block_t *t = s->free;
    for (uint32_t i = 1; i < k; i++) t = hak_link_get(s, t);
    s->free_rest = hak_link_get(s, t);
    hak_link_set(t, NULL);
  }
  s->handed = k;
  h->sample_left[c] = 0; /* armed: the next interval starts after the sample */
}

static inline bool heap_refill(hak_heap_t *h, hak_slab_t *s, bool carve, bool all);
static bool park_reclaim_one(void);

/* `free` was just given `handed` blocks: the ones it was given before were
 * all allocated (counted, with `refills` refills: 1 for a refill, 0 for
 * the next page of a carve), and the profiler places its next sample. */
hak_inline void slab_handed(hak_heap_t *h, hak_slab_t *s, unsigned refills, uint32_t handed) {
  if (hak_stats_on) s->st_count += ((uint64_t)s->handed << HAK_ST_BLOCKS_SHIFT) + refills;
  s->handed = handed;
  if (hak_unlikely(hak_sites_on) && s->free) sample_arm(h, s);
  if (hak_debug) hak_check_slab(h, s);
}

/* The allocation that finds a sampling cut: the router serves it
 * elsewhere (hak_alloc_sampled), then hak_heap_sample_done takes the
 * blocks behind the cut back. */
static hak_noinline void *sample_take(hak_heap_t *h, hak_slab_t *s, unsigned cls, void *site) {
  h->sample_left[cls] = 0;
  if (h->sample_off) {
    /* An explicit hak_alloc_cs call, counted exactly by its caller: no
     * sample now (and no new cut), the next allocation of the class takes it. */
    uint32_t n = 0;
    for (hak_block_t *r = s->free_rest; r; r = hak_link_get(s, r)) n++;
    s->free = s->free_rest; /* `free` is empty at a cut */
    s->free_rest = NULL;
    s->handed += n;
    hak_block_t *b = s->free;
    s->free = hak_link_get(s, b);
    s->used++;
    return b;
  }
  return hak_alloc_sampled(h, cls, site);
}

hak_front static bool heap_refill_core(hak_heap_t *h, hak_slab_t *s, bool carve, bool all) {
  if (hak_debug) hak_check_slab(h, s); /* before gathering follows any link */
  if (hak_unlikely(s->free_rest != NULL)) h->sample_left[s->cls] = 0; /* the cut merges back */
  if (hak_unlikely(s->free != NULL)) {
    slab_sync(h, s); /* blocks left over: count the rest, keep these as not allocated */
    s->handed = 0;
  }
  hak_slab_gather(s, carve, all);
  /* What the owner freed since the last refill, and the remote frees just
   * collected, show in `used`. */
  slab_handed(h, s, 1, s->capacity - s->used);
  return s->free != NULL || s->free_rest != NULL;
}

/* HAKMEM_PROF times one refill in HAK_MEASURE_EVERY (they are the most
 * frequent slow path) for its report.  Nothing else measures refills: the
 * controller takes allocation volume and the size-class mix from the
 * statistics, so that a watched (CANARY) window costs the small-object
 * paths nothing. */
static hak_noinline bool heap_refill_timed(hak_heap_t *h, hak_slab_t *s, bool carve, bool all) {
  uint64_t t0 = hak_prof_begin();
  bool ok = heap_refill_core(h, s, carve, all);
  hak_prof_end(HAK_PROF_REFILL, t0);
  return ok;
}

/* Does the slab hold blocks a refill without carving would find?  A
 * refill that may neither carve nor take everything asks first: most
 * slabs a class's slow path looks at have none (random-mixed: half of the
 * refills found nothing), and the answer is in the two cache lines the
 * refill would read. */
static inline bool slab_gatherable(const hak_slab_t *s) {
  return s->free || s->local_free || s->free_rest ||
         atomic_load_explicit(&s->thread_free, memory_order_relaxed) > HAK_TF_NOTIFY;
}

/* Refills a slab's `free` for the fast path (hak_slab_gather: `carve`,
 * `all`); false if it has nothing free. */
static inline bool heap_refill(hak_heap_t *h, hak_slab_t *s, bool carve, bool all) {
  if (!carve && !all && !slab_gatherable(s)) return false;
  if (hak_unlikely(hak_prof_report) && ++h->measure_tick >= HAK_MEASURE_EVERY) {
    h->measure_tick = 0;
    return heap_refill_timed(h, s, carve, all);
  }
  return heap_refill_core(h, s, carve, all);
}

/* The next page of the current carve. */
hak_front static hak_noinline bool heap_link_pending(hak_heap_t *h, hak_slab_t *s) {
  uint32_t cap = s->capacity;
  if (!hak_slab_link_pending(s)) return false;
  /* Not a refill to the statistics (the controller's hit rates): part of
   * the carve's. */
  slab_handed(h, s, 0, s->capacity - cap);
  return true;
}

/* A refill that may carve fresh blocks: those that did are counted. */
hak_front static bool heap_refill_carve(hak_heap_t *h, hak_slab_t *s) {
  uint32_t cap = s->capacity;
  bool ok = heap_refill(h, s, true, false);
  if (s->capacity != cap) HAK_STAT_ADD(h->stats.carves[s->cls], 1);
  return ok;
}

/* An adopted slab (its owner exited): true if it turned out empty, in which
 * case the caller frees it in its segment. */
bool hak_heap_adopt_slab(hak_heap_t *h, hak_slab_t *s) {
  hak_slab_set_owner(s, h, false);
  s->where = HAK_IN_NONE;
  heap_refill(h, s, false, true); /* all: is it empty? */
  if (hak_stats_on) slab_fold(h, s);
  if (s->used == 0) return true;
  list_push(h, s, HAK_IN_QUEUE, false);
  return false;
}

void hak_heap_sync_stats(hak_heap_t *h) {
  if (h == &hak_heap_empty) return;
  for (unsigned c = 0; c < HAK_NCLASS; c++)
    for (hak_slab_t *s = h->queue[c].first; s; s = s->next) slab_sync(h, s);
  for (hak_slab_t *s = h->full.first; s; s = s->next) slab_sync(h, s);
}

/* An owner's free into a full slab: it has room again. */
hak_front void hak_heap_free_full(hak_heap_t *h, hak_slab_t *s, hak_block_t *b) {
  if (s->where == HAK_IN_FULL) unmark_full(h, s);
  hak_link_set(b, s->local_free);
  s->local_free = b;
  if (--s->used == 0) hak_heap_retire(h, s);
}

/* Remote frees that landed in our full slabs. */
hak_front void hak_heap_drain_delayed(hak_heap_t *h) {
  uint64_t t0 = hak_prof_begin();
  hak_block_t *b = atomic_exchange_explicit(&h->delayed, NULL, memory_order_acquire);
  while (b) {
    hak_block_t *next = hak_link_get_any(b);
    hak_segment_t *seg = hak_seg_of(b);
    hak_slab_t *s = &seg->slabs[((uintptr_t)b - (uintptr_t)seg) >> seg->slab_shift];
    if (hak_slab_owner(s) == h) hak_heap_free_full(h, s, b);
    else hak_slab_free_remote(s, b); /* it changed hands meanwhile */
    b = next;
  }
  hak_prof_end(HAK_PROF_REMOTE_DRAIN, t0);
}

void hak_heap_sample_done(hak_heap_t *h, unsigned cls) { heap_refill_carve(h, h->cur[cls]); }

/* A class's slow path takes a slab with fewer free blocks than this only
 * when its current slab has no room left to carve (below). */
#define MIN_ROOM 2

/* A class's slow path: the current slab, then the class's queue, then a
 * fresh slab.  Returns a block, or NULL with errno ENOMEM. */
hak_front void *hak_heap_alloc_class(hak_heap_t *h, unsigned cls, void *site) {
  if (hak_unlikely(h == &hak_heap_empty)) {
    h = heap_for_thread();
    if (!h) goto oom;
  }
  heap_maybe_purge(h);
  if (atomic_load_explicit(&h->delayed, memory_order_relaxed)) hak_heap_drain_delayed(h);
  hak_slab_t *s = h->cur[cls];
  if (hak_unlikely(s->free_rest != NULL) && !s->free) return sample_take(h, s, cls, site);
  /* The current slab's freed blocks (its owner's, then other threads')
   * before the next page of its window: linked first, the window's pages
   * all became resident while freed blocks waited (larson at 8 threads
   * 8.9 -> 8.1 MiB peak RSS, thread-churn at 8 3.9 -> 3.4, prod-cons at 2
   * 4.3 -> 4.1).  Its price, a read of the slab's remote-free line at
   * every empty `free` rather than once a window, does not show: the
   * same instructions per pair on random-mixed and tiny-hot. */
  if (s != &hak_slab_empty &&
      (s->free || heap_refill(h, s, false, false) || (s->capacity < s->reserved && heap_link_pending(h, s))))
    goto pop;
  /* Freed blocks anywhere in the class before fresh ones: carving only
   * when no slab has any keeps the resident set near the live one (a
   * current slab that carved on while the others filled with frees would
   * leave them all two-thirds empty).  But not one block at a time: while
   * a class's slabs are packed, each free leaves one hole, and the next
   * malloc after the current slab's last would come back here for it
   * (random replacement of 8192 blocks of 64 B: a slow call in 9 of 10
   * mallocs).  A slab with a single free block is taken only when the
   * current slab has no room left to carve; otherwise the current slab
   * carves its next page, and the holes gather meanwhile (that program:
   * 56 -> 16 M instructions in 200k ops; random-mixed 63.9 -> 60.1 per
   * pair).  Only the current one: another slab's carving, taken as well,
   * cost alloc-test +5 % peak RSS against +2 %. */
  hak_slab_t *carve = s != &hak_slab_empty && s->capacity < s->reserved ? s : NULL;
  bool reclaimed = false;
  for (unsigned adopted = 0;; adopted++) {
    /* The first slab with room; full ones leave the queue for good (until
     * a free gives them room), so this is amortised O(1).  Slabs with room
     * left to carve stay (there are few: each was current). */
    for (s = h->queue[cls].first; s;) {
      hak_slab_t *next = s->next;
      if (s->free || heap_refill(h, s, false, false)) break;
      if (s->capacity < s->reserved) {
        if (!carve) carve = s;
      } else if (!mark_full(h, s) && heap_refill(h, s, false, false)) {
        break; /* a remote free came meanwhile */
      }
      s = next;
    }
    if (s) break;
    /* Before a fresh slab: the partly used slabs of an exited thread's
     * segment (adopting one puts its live slabs in our queues).  Otherwise
     * each short-lived thread would start a slab of its own and leave it
     * pinned by a block or two. */
    if (adopted == 2) break;
    if (!hak_segment_adopt(h, cls)) {
      /* Before a fresh slab, too: an exited thread's heap that no thread
       * took (a slab of ours would be cheaper still) gives its segments up
       * for adoption and reuse. */
      if (reclaimed || !atomic_load_explicit(&parked_count, memory_order_relaxed) ||
          hak_segment_has_free_slab(h, cls) || !park_reclaim_one())
        break;
      reclaimed = true;
    }
  }
  bool lone = s && s->capacity - s->used < MIN_ROOM;
  if (carve && (!s || (lone && carve == h->cur[cls])) && heap_refill_carve(h, carve)) {
    s = carve;
    goto found;
  }
  if (s) {
    if (s->prev) {
      list_remove(h, s);
      list_push(h, s, HAK_IN_QUEUE, true);
    }
    goto found;
  }
  uint64_t t0 = hak_prof_begin();
  s = hak_segment_slab_acquire(h, cls);
  hak_prof_end(HAK_PROF_SLAB_ACQUIRE, t0);
  if (!s) goto oom;
  h->slab_takes++;
  HAK_STAT_ADD(h->stats.slabs_acquired, 1);
  list_push(h, s, HAK_IN_QUEUE, true);
  heap_refill_carve(h, s);
found:
  set_current(h, cls, s);
pop:;
  if (hak_unlikely(!s->free)) return sample_take(h, s, cls, site); /* the cut came first */
  hak_block_t *b = s->free;
  s->free = hak_link_get(s, b);
  s->used++;
  return b;
oom:
  errno = ENOMEM;
  return NULL;
}

/* The owner freed the last block of a slab.  Not inlined: its callers
 * (hak_heap_free_full) would save registers for it on every call. */
hak_front hak_noinline void hak_heap_retire(hak_heap_t *h, hak_slab_t *s) {
  if (h->cur[s->cls] == s) return; /* keep the current slab: it would come right back */
  if (hak_debug) hak_check_slab(h, s);
  slab_sync(h, s);
  list_remove(h, s);
  HAK_STAT_ADD(h->stats.slabs_released, 1);
  hak_segment_slab_release(h, s);
  heap_maybe_purge(h);
}

static bool slab_idle(const hak_slab_t *s) { return s != &hak_slab_empty && s->used == 0 && s->where == HAK_IN_QUEUE; }

/* The Large tier is about to map a segment: ours that only empty current
 * slabs still hold go to the cache first, where it takes them with their
 * resident pages.  Each empty current slab pinned a segment of free slabs:
 * phase-change's second Large phase mapped 7 MiB afresh beside the
 * segments its small objects had emptied.  A class that wants a block again
 * takes a slab elsewhere, or the segment back from the cache.  (Not on the
 * free path: the current slab's emptying is the fast path's.)  Returns
 * whether a segment went. */
bool hak_heap_release_idle(hak_heap_t *h) {
  /* (The secure library's Large tier takes no cached segment.) */
  if (hak_secure || h == &hak_heap_empty) return false;
  /* Only while the small objects are not growing (no slab taken since the
   * Large tier last asked): the Python workload grows both, and the
   * segments it gave up took their free slabs from its small objects,
   * which mapped new ones (21.7k page faults and 86 MiB against 20.2k and
   * 82). */
  bool growing = h->slab_takes != h->slab_takes_seen;
  h->slab_takes_seen = h->slab_takes;
  if (growing) return false;
  size_t gave = 0;
  for (unsigned c = 0; c < HAK_NCLASS; c++) {
    if (!slab_idle(h->cur[c])) continue;
    hak_segment_t *seg = hak_seg_of(h->cur[c]);
    unsigned lo = c < HAK_NTINY ? 0 : HAK_NTINY, hi = c < HAK_NTINY ? HAK_NTINY : HAK_NCLASS, n = 0;
    bool busy = false;
    for (unsigned k = lo; k < hi; k++)
      if (h->cur[k] != &hak_slab_empty && hak_seg_of(h->cur[k]) == seg) {
        if (slab_idle(h->cur[k])) n++;
        else busy = true;
      }
    if (busy || !hak_segment_held_by(h, seg, n)) continue;
    for (unsigned k = lo; k < hi; k++) {
      hak_slab_t *s = h->cur[k];
      if (s == &hak_slab_empty || hak_seg_of(s) != seg) continue;
      drop_current(h, k);
      slab_sync(h, s);
      list_remove(h, s);
      HAK_STAT_ADD(h->stats.slabs_released, 1);
      hak_segment_slab_release(h, s);
    }
    gave++;
  }
  if (gave) hak_segment_cache_given(gave);
  return gave != 0;
}

/* Collects every slab's frees and releases empty slabs (with `force`, the
 * current ones too); `purge` returns all free pages to the OS at once. */
void hak_heap_collect(hak_heap_t *h, bool force, bool purge) {
  if (h == &hak_heap_empty) return;
  hak_heap_drain_delayed(h);
  while (h->full.first) unmark_full(h, h->full.first);
  for (unsigned c = 0; c < HAK_NCLASS; c++) {
    hak_slab_t *s = h->queue[c].first;
    while (s) {
      hak_slab_t *next = s->next;
      heap_refill(h, s, false, true);
      if (hak_stats_on) slab_fold(h, s);
      if (s->used == 0 && (force || h->cur[c] != s)) {
        if (h->cur[c] == s) drop_current(h, c);
        list_remove(h, s);
        HAK_STAT_ADD(h->stats.slabs_released, 1);
        hak_segment_slab_release(h, s);
      }
      s = next;
    }
  }
  if (purge) hak_segment_purge(h, 0, true);
  if (hak_debug) hak_check_heap(h);
}

/* A parked heap idle past the purge delay gives everything up: its free
 * pages (idle since it was parked) go back to the OS now, its segments to
 * the abandoned lists or the cache. */
static void heap_abandon(hak_heap_t *h) {
  hak_heap_collect(h, true, true); /* also empties the full list */
  /* The queues are left as they are: a slab's links are rewritten when it
   * is adopted, and the heap is cleared when it is reused. */
  hak_segment_abandon_all(h, h->parked_ms);
  /* Frees that raced with the abandoning go to the slabs' own lists now. */
  hak_heap_drain_delayed(h);
  heap_delete(h);
}

/* A thread that exits parks its heap whole: its segments, its current slabs
 * with their free lists, its queues.  The next thread to start takes it as
 * it is, so a program whose threads come and go (a pool that grows and
 * shrinks, a thread per task) reuses the same warm pages, as glibc's arenas
 * are reused, instead of abandoning them to be adopted slab by slab while
 * the new thread carves fresh ones.  Blocks the thread left behind are
 * freed into the parked heap like any remote free, and its new owner
 * collects them.  A parked heap is idle memory: one that no thread takes
 * within the purge delay is abandoned (hak_heap_park_tick), so its free
 * pages go back as they would have. */
static void heap_park(hak_heap_t *h) {
  /* What the thread kept for itself goes back: the secure quarantine, its
   * Large spans, its empty slabs (but the current ones). */
  if (hak_secure) hak_secure_flush(h);
  hak_large_flush_thread(h);
  hak_heap_collect(h, false, false);
  h->parked_ms = hak_os_now_ms();
  hak_lock(&heaps_lock);
  HAK_STAT_INC(hak_gstats.threads_exited);
  h->park_prev = NULL;
  h->park_next = parked_first;
  if (parked_first) parked_first->park_prev = h;
  else parked_last = h;
  parked_first = h;
  atomic_fetch_add_explicit(&parked_count, 1, memory_order_relaxed);
  hak_unlock(&heaps_lock);
}

/* Abandons the oldest parked heap if `all` or it has been parked for
 * `delay` ms by `now`; false if there was none.  One abandon at a time,
 * under reclaim_lock: a heap being taken apart is on no list (unlinked from
 * the parked queue, its segments not yet abandoned), so `all` (hak_trim)
 * waits for one in flight, say the controller's, before it adopts what was
 * abandoned.  Otherwise trim missed that heap's segments, and their remote
 * frees, until a later adopt (seen as a count mismatch in stress_api under
 * TSan).  Slow paths only try: another thread is already at it. */
hak_front static bool park_reclaim(uint64_t now, uint64_t delay, bool all) {
  if (all) hak_lock(&reclaim_lock);
  else if (!hak_lock_try(&reclaim_lock)) return false;
  hak_lock(&heaps_lock);
  hak_heap_t *h = parked_last;
  if (h && (all || now >= h->parked_ms + delay)) park_unlink(h);
  else h = NULL;
  hak_unlock(&heaps_lock);
  if (h) heap_abandon(h);
  hak_unlock(&reclaim_lock);
  return h != NULL;
}

/* A thread about to take a fresh slab: the oldest parked heap, if no
 * thread took it for half the purge delay (one parked a moment ago is
 * likely the next new thread's: taking it apart would make that thread
 * start from nothing). */
static bool park_reclaim_one(void) { return park_reclaim(hak_os_now_ms(), hak_purge_tick_ms(), false); }

void hak_heap_park_tick(uint64_t now, bool all) {
  /* (`all` goes on: it waits for an abandon in flight, see park_reclaim.) */
  if (!all && !atomic_load_explicit(&parked_count, memory_order_relaxed)) return;
  uint64_t delay = hak_policy()->purge_delay_ms;
  /* A few at a time: an unlucky slow path should not pay for a thousand
   * threads that exited together. */
  for (unsigned n = 0; all || n < 8; n++)
    if (!park_reclaim(now, delay, all)) return;
}

hak_front static void heap_thread_done(void *arg) {
  (void)arg;
  hak_heap_t *h = hak_tls_heap;
  if (h == &hak_heap_empty) return;
  hak_tls_heap = &hak_heap_empty;
  heap_park(h);
}

hak_front void hak_heap_thread_key_init(void) {
  if (pthread_key_create(&heap_key, heap_thread_done) == 0) {
    atomic_store_explicit(&heap_key_ready, 1, memory_order_release);
    if (hak_tls_heap != &hak_heap_empty) pthread_setspecific(heap_key, hak_tls_heap);
  } else {
    hak_error("no thread-specific key left: the memory of exiting threads will not be reused");
  }
}

/* In a forked child only the forking thread lives on.  The other threads'
 * heaps may have been half-way through a malloc or a free when the fork
 * came (a block popped but not counted, a list half moved), so the child
 * leaves them as they are: their slabs are not walked or adopted, their
 * blocks stay where they are (a free of one goes to its slab's remote
 * list), and their memory is not reused in the child.  Their segment
 * lists were consistent (every heap's segment lock was held across the
 * fork), so their free slabs are still purged.  Most children exec soon;
 * one that lives on gives up reusing the memory of threads it does not
 * have, which is safe, rather than risk handing a block out twice. */
void hak_heap_fork_child(void) {
  hak_lock_reset(&heaps_lock);
  hak_lock_reset(&reclaim_lock);
  for (hak_heap_t *x = heaps_all; x; x = x->next_all) hak_lock_reset(&x->seg_lock);
}

bool hak_heaps_foreach(void (*fn)(const hak_heap_stats_t *st, void *arg), void *arg, bool in_signal) {
  if (in_signal) {
    /* The interrupted code may hold the lock (then it never comes free
     * here), or another thread may hold it for a moment. */
    int tries = 0;
    while (!hak_lock_try_raw(&heaps_lock))
      if (++tries == 200) return false;
      else hak_os_yield();
  } else {
    hak_lock(&heaps_lock);
  }
  fn(&hak_gstats.dead, arg);
  for (hak_heap_t *h = heaps_all; h; h = h->next_all) fn(&h->stats, arg);
  hak_unlock(&heaps_lock);
  return true;
}

/* Whether every heap that folded for the ask before the last one folded
 * for the last one too.  Heaps further behind have made no slow call for a
 * window or more (idle, exited, or allocating from their current slabs
 * alone): the controller does not wait for them. */
bool hak_heaps_folded(void) {
  uint32_t e = atomic_load_explicit(&hak_fold_epoch, memory_order_relaxed);
  bool done = true;
  hak_lock(&heaps_lock);
  for (hak_heap_t *h = heaps_all; h && done; h = h->next_all)
    done = atomic_load_explicit(&h->fold_epoch, memory_order_relaxed) != e - 1;
  hak_unlock(&heaps_lock);
  return done;
}

/* The controller: the free slabs of every heap whose purge is due, where
 * the owner is not busy with its segments right now. */
void hak_heap_purge_all(uint64_t now) {
  hak_lock(&heaps_lock);
  for (hak_heap_t *h = heaps_all; h; h = h->next_all) hak_segment_purge_try(h, now, false);
  hak_unlock(&heaps_lock);
}

/* Around fork: the registry, and every heap's segment lock, so that no
 * thread is half-way through moving segments when the child is made. */
void hak_heap_lock(void) {
  hak_lock(&reclaim_lock); /* no heap half taken apart in the child */
  hak_lock(&heaps_lock);
  for (hak_heap_t *h = heaps_all; h; h = h->next_all) hak_lock(&h->seg_lock);
}
void hak_heap_unlock(bool child) {
  for (hak_heap_t *h = heaps_all; h; h = h->next_all) hak_lock_after_fork(&h->seg_lock, child);
  hak_lock_after_fork(&heaps_lock, child);
  hak_lock_after_fork(&reclaim_lock, child);
}
