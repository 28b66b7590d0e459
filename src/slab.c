/* A slab: one size class in one slice of a Tiny/Mid segment.  Blocks are
 * carved lazily, a page at a time, so untouched memory stays out of
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

/* Carving reserves a window of the slab's blocks at a time (the policy's
 * 16 KiB, or what the controller gave a busy Mid class: a power of two)
 * but links them onto `free` a page at a time, as they are needed: only
 * the pages a class uses become resident (a class's last window was
 * 8 KiB of untouched blocks on average, per class per thread:
 * thread-churn at 8 threads 5.8 -> 3.8 MiB, glibc-thread 12.5 -> 11.2).
 * The slab's own freed blocks, its owner's and other threads', go before
 * the window's next page (hak_heap_alloc_class); freed blocks in the
 * class's other slabs are looked for once a window. */
static inline size_t carve_window(unsigned cls) {
  unsigned shift = atomic_load_explicit(&hak_carve_shift[cls], memory_order_relaxed);
  return shift ? (size_t)1 << shift : hak_policy()->slab_carve_bytes;
}

/* Links the blocks that start in the next block's page (at least one). */
static void link_page(hak_slab_t *slab, uint8_t *start, size_t bs) {
  uint8_t *first = start + (size_t)slab->capacity * bs, *p = first;
  uintptr_t end = hak_align_up((uintptr_t)p + 1, HAK_PAGE);
  uint32_t n = (uint32_t)((end - (uintptr_t)p + bs - 1) / bs);
  if (n > slab->reserved - slab->capacity) n = slab->reserved - slab->capacity;
  for (uint32_t i = 0; i + 1 < n; i++, p += bs) ((hak_block_t *)p)->next = (hak_block_t *)(p + bs);
  ((hak_block_t *)p)->next = slab->free;
  slab->free = (hak_block_t *)first;
  slab->capacity += n;
}

hak_front bool hak_slab_link_pending(hak_slab_t *slab) {
  uint32_t cap = slab->capacity;
  if (cap == 0 || cap >= slab->reserved || hak_secure) return false;
  size_t bs = hak_class_size(slab->cls), w = carve_window(slab->cls);
  size_t next = (size_t)cap * bs, last = next - bs;
  /* Windows of the block area: [0, 4K), [4K, 8K), [8K, 16K), then every
   * w bytes: a fresh slab looks for freed blocks at 4 and 8 KiB too (a
   * class a short-lived thread uses for a few blocks). */
  if (last < w) {
    if (hak_bsr(last | (HAK_PAGE - 1)) != hak_bsr(next | (HAK_PAGE - 1))) return false;
  } else if ((last ^ next) >= w) {
    return false;
  }
  link_page(slab, hak_slab_start(slab), bs);
  return true;
}

hak_front void hak_slab_extend(hak_slab_t *slab) {
  size_t bs = hak_class_size(slab->cls);
  uint8_t *start = hak_slab_start(slab);
  if (!hak_secure) {
    link_page(slab, start, bs);
    return;
  }
  /* The secure library carves the window at once, in a random order:
   * the next block stays unpredictable within it. */
  uint32_t n = slab->reserved - slab->capacity;
  size_t carve = carve_window(slab->cls), carved = (size_t)slab->capacity * bs;
  if (carved < carve) carve = carved > HAK_PAGE ? carved : HAK_PAGE;
  uint32_t chunk = (uint32_t)(carve / bs);
  if (chunk == 0) chunk = 1;
  if (n > chunk) n = chunk;
  hak_sec_carve(slab, start + (size_t)slab->capacity * bs, n, bs);
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

