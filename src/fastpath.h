/* The two hot paths, inlined into every exported entry point.  Neither takes
 * a lock, uses an atomic read-modify-write, reads the clock or an option. */
#ifndef HAKMEM_FASTPATH_H
#define HAKMEM_FASTPATH_H

#include "internal.h"
#include "secure.h"

void hak_free_owner_slow(hak_heap_t *h, hak_slab_t *s, hak_block_t *b);

hak_inline void *hak_alloc_fast(size_t n) {
  if (hak_secure) return hak_secure_malloc(n, HAK_RA());
  hak_heap_t *h = hak_tls_heap;
  if (hak_likely(n <= HAK_TINY_MAX)) {
    hak_slab_t *s = h->direct[(n + 15) >> 4];
    hak_block_t *b = s->free;
    if (hak_likely(b != NULL)) {
      hak_block_t *next = hak_link_get(s, b);
      s->free = next;
      s->used++;
      /* The next malloc of this size reads next's link, and its caller
       * writes it: start that cache miss now, not when it stalls us (a
       * list of blocks freed long ago is cold). */
      __builtin_prefetch(next, 1);
      return b;
    }
  }
  return hak_malloc_slow(n, HAK_RA());
}

/* A block freed by its slab's owner goes on top of `free`: the next
 * malloc of its class takes it back while it is still in this core's cache
 * (a ring of blocks of mixed sizes: a third fewer L1 misses than taking
 * the slab's older blocks first).  `handed` counts it for the statistics.
 * The slow path takes over when `used` drops to `used_floor` (0: the slab
 * is empty; -1, the current slab: a double free; HAK_FLOOR_SLOW: every
 * free of a full slab, of one whose owner's frees wait on local_free while
 * sampling, and of a slab not in use) or when the block is already the
 * list's head (the same block freed twice in a row).  The secure library
 * and the debug build keep the owner's frees on local_free too
 * (hak_free_on_top). */
hak_inline void hak_free_local(hak_heap_t *h, hak_slab_t *s, hak_block_t *b) {
  int32_t used = (int32_t)--s->used;
  hak_block_t **top = hak_free_on_top ? &s->free : &s->local_free;
  hak_block_t *head = *top;
  if (hak_unlikely(used <= s->used_floor || b == head)) {
    hak_free_owner_slow(h, s, b);
    return;
  }
  hak_link_set(b, head);
  *top = b;
  if (hak_free_on_top) s->handed++;
}

hak_inline void hak_free_fast(void *p) {
  if (hak_secure) {
    hak_secure_free(p, HAK_RA()); /* checks, then quarantines */
    return;
  }
  uintptr_t a = (uintptr_t)p;
  if (hak_unlikely(hak_segmap_get_fast(a) != 1)) {
    hak_free_special(p); /* NULL, Big with a large alignment, or not ours */
    return;
  }
  uintptr_t seg = a & ~(uintptr_t)HAK_SEG_MASK;
  unsigned shift = ((hak_segment_t *)seg)->slab_shift;
  hak_slab_t *s = (hak_slab_t *)(seg + offsetof(hak_segment_t, slabs) +
                                 (((a & HAK_SEG_MASK) >> shift) << 7));
  hak_heap_t *h = hak_tls_heap;
  /* The segment's owner, in the header line just read: another thread's
   * block then never reads its slab's first line, which the owner writes
   * at every malloc and free.  Every slab in use in a segment is owned by
   * the segment's heap, and the slab's floor sends what the owner word
   * would have (full, sampled, not in use) to the slow path.  A Large or
   * Big segment has no heap. */
  if (hak_likely(atomic_load_explicit(&((hak_segment_t *)seg)->heap, memory_order_relaxed) == h)) {
    hak_free_local(h, s, p);
    return;
  }
  hak_free_nonowner(p, (hak_segment_t *)seg, s); /* another thread's, Large or Big */
}

#endif
