/* A slab: one size class in one slice of a Tiny/Mid segment.  Blocks are
 * carved lazily, a few pages at a time, so untouched memory stays out of
 * RSS; frees come back on three lists (see internal.h). */
#include <string.h>

#include "internal.h"
#include "os.h"
#include "policy.h"
#include "secure.h"

_Atomic uint8_t hak_carve_shift[HAK_NCLASS];

uint8_t *hak_slab_start(const hak_slab_t *slab) {
  hak_segment_t *seg = hak_seg_of(slab);
  if (slab->index == 0)
    return (uint8_t *)seg + (seg->kind == HAK_SEG_TINY ? HAK_TINY_SLAB0_OFFSET : HAK_MID_SLAB0_OFFSET);
  return (uint8_t *)seg + ((size_t)slab->index << seg->slab_shift);
}

hak_front void hak_slab_init(hak_slab_t *slab, hak_segment_t *seg, unsigned cls) {
  size_t slab_bytes = (size_t)1 << seg->slab_shift;
  uint8_t *base = (uint8_t *)seg + ((size_t)slab->index << seg->slab_shift);
  size_t bs = hak_class_size(cls);
  uint32_t sec_reserved = hak_secure ? hak_sec_slab_init(slab, seg, base, slab_bytes, bs) : 0;
  uint8_t *start = hak_slab_start(slab);
  /* The divisor of hak_slab_block_index: no division on a remote free. */
  unsigned k = (unsigned)__builtin_ctzl(bs);
  uint64_t d = bs >> k, inv = d; /* Newton: 3, 6, 12, 24, 48, 96 correct bits */
  for (int i = 0; i < 5; i++) inv *= 2 - d * inv;
  slab->blk_start = start;
  slab->blk_shift = (uint8_t)k;
  slab->blk_inv = inv;
  slab->free = NULL;
  slab->local_free = NULL;
  slab->used = 0;
  slab->capacity = 0;
  slab->free_rest = NULL;
  slab->handed = 0;
  slab->synced_used = 0;
  slab->st_count = 0;
  atomic_store_explicit(&slab->thread_free, 0, memory_order_relaxed);
  slab->block_size = (uint32_t)bs;
  slab->reserved = hak_secure ? sec_reserved : (uint32_t)((size_t)(base + slab_bytes - start) / bs);
  slab->cls = (uint8_t)cls;
  slab->blk_reserved = slab->reserved;
  slab->blk_cls = (uint8_t)cls;
  slab->where = HAK_IN_NONE;
  slab->next = slab->prev = NULL;
}

/* Takes the other threads' frees onto `free`; returns how many came back.
 * The notify request bit, if set, stays as it is.  Onto an empty `free`
 * the list goes whole, unwalked (the secure library walks it: each link
 * is checked). */
hak_front uint32_t hak_slab_collect(hak_slab_t *slab) {
  uintptr_t old = atomic_load_explicit(&slab->thread_free, memory_order_relaxed);
  do {
    if (!HAK_TF_LIST(old)) return 0;
  } while (!atomic_compare_exchange_weak_explicit(&slab->thread_free, &old, old & HAK_TF_NOTIFY,
                                                  memory_order_acquire, memory_order_relaxed));
  hak_block_t *list = HAK_TF_LIST(old);
  uint32_t n = HAK_TF_COUNT(old);
  if (slab->free || hak_secure || hak_debug) {
    uint32_t walked = 1;
    hak_block_t *tail = list;
    for (hak_block_t *t; (t = hak_link_get(slab, tail)) != NULL; walked++) tail = t;
    hak_assert(walked == n, "slab %p: %u blocks on its remote-free list, counted %u", (void *)slab, walked, n);
    hak_link_set(tail, slab->free);
  }
  slab->free = list;
  slab->used -= n;
  return n;
}

hak_front void hak_slab_extend(hak_slab_t *slab) {
  size_t bs = slab->block_size;
  uint32_t n = slab->reserved - slab->capacity;
  /* Carve a little at a time (policy: 16 KiB; the controller may give a
   * busy Mid class more): fewer page faults at once, and small programs
   * stay small.  A fresh slab's first carve is one page and each later one
   * doubles what it has, up to that: a class a thread uses for a few blocks
   * touches one page, not four (thread-churn at 8 threads: peak RSS
   * 7.7 -> 6.0 MiB), as mimalloc extends its pages a page at a time. */
  unsigned shift = atomic_load_explicit(&hak_carve_shift[slab->cls], memory_order_relaxed);
  size_t carve = shift ? (size_t)1 << shift : hak_policy()->slab_carve_bytes;
  size_t carved = (size_t)slab->capacity * bs;
  if (carved < carve) carve = carved > HAK_PAGE ? carved : HAK_PAGE;
  uint32_t chunk = (uint32_t)(carve / bs);
  if (chunk == 0) chunk = 1;
  if (n > chunk) n = chunk;
  uint8_t *start = hak_slab_start(slab);
  uint8_t *p = start + (size_t)slab->capacity * bs;
  /* The carve writes a link into every block, so into every page of its
   * range when blocks are at most a page; in a slab taken fresh those
   * pages are not resident, and one populate call faults them in for
   * less than a trap each (here 12 against 18 us a page, 16 KiB at a time:
   * random-mixed 4-8 % faster, the same faults and RSS).  Not for a single
   * page (a fresh slab's first carve): it saves little there, and with it
   * thread-churn at 8 threads held 15 % more RSS and took 20 % more faults
   * (16 runs; likely the mmap lock, which the call takes and a fault does
   * not, against threads mapping and unmapping their stacks: threads live
   * longer and more of them at once).  The page p starts in may be
   * resident already (the last carve's last block, or the segment header):
   * from the next one. */
  if (slab->fresh && bs <= HAK_PAGE && !hak_secure) {
    uintptr_t lo = hak_align_up((uintptr_t)p, HAK_PAGE);
    uintptr_t hi = hak_align_up((uintptr_t)p + (size_t)n * bs, HAK_PAGE);
    if (hi - lo >= 2 * HAK_PAGE) hak_os_populate((void *)lo, hi - lo);
  }
  if (hak_secure) {
    hak_sec_carve(slab, p, n, bs); /* in a random order */
    slab->capacity += n;
    return;
  }
  for (uint32_t i = 0; i + 1 < n; i++, p += bs) ((hak_block_t *)p)->next = (hak_block_t *)(p + bs);
  ((hak_block_t *)p)->next = slab->free;
  slab->free = (hak_block_t *)(start + (size_t)slab->capacity * bs);
  slab->capacity += n;
}

/* A free from a thread that does not own the slab.  If the owner asked to
 * be told (the slab was full), this block goes to the owner's delayed list,
 * which its next slow path drains; otherwise onto the slab's list. */
hak_front void hak_slab_free_remote(hak_slab_t *slab, hak_block_t *b) {
  uintptr_t old = atomic_load_explicit(&slab->thread_free, memory_order_relaxed);
  for (;;) {
    if (old & HAK_TF_NOTIFY) {
      hak_heap_t *h = hak_slab_owner(slab);
      if (h) {
        if (!atomic_compare_exchange_weak_explicit(&slab->thread_free, &old, old & ~HAK_TF_NOTIFY,
                                                   memory_order_acq_rel, memory_order_relaxed))
          continue;
        hak_block_t *d = atomic_load_explicit(&h->delayed, memory_order_relaxed);
        do {
          hak_link_set(b, d);
        } while (!atomic_compare_exchange_weak_explicit(&h->delayed, &d, b, memory_order_release,
                                                        memory_order_relaxed));
        return;
      }
    }
    hak_link_set(b, HAK_TF_LIST(old));
    uintptr_t count = (old & ~(HAK_TF_ONE - 1)) + HAK_TF_ONE;
    if (atomic_compare_exchange_weak_explicit(&slab->thread_free, &old,
                                              (uintptr_t)b | (old & HAK_TF_NOTIFY) | count,
                                              memory_order_release, memory_order_relaxed))
      return;
  }
}

