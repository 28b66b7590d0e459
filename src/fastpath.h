/* The two hot paths, inlined into every exported entry point.  Neither takes
 * a lock, uses an atomic read-modify-write, reads the clock or an option. */
#ifndef HAKMEM_FASTPATH_H
#define HAKMEM_FASTPATH_H

#include "internal.h"

void hak_free_owner_slow(hak_heap_t *h, hak_slab_t *s, hak_block_t *b);

hak_inline void *hak_alloc_fast(size_t n) {
  hak_heap_t *h = hak_tls_heap;
  if (hak_likely(n <= HAK_TINY_MAX)) {
    hak_slab_t *s = h->direct[(n + 15) >> 4];
    hak_block_t *b = s->free;
    if (hak_likely(b != NULL)) {
      s->free = b->next;
      s->used++;
      return b;
    }
  }
  return hak_malloc_slow(n, HAK_RA());
}

hak_inline void hak_free_fast(void *p) {
  uintptr_t a = (uintptr_t)p;
  if (hak_unlikely(hak_segmap_get(a) != 1)) {
    hak_free_special(p); /* NULL, Big with a large alignment, or not ours */
    return;
  }
  hak_segment_t *seg = hak_seg_of(p);
  hak_slab_t *s = &seg->slabs[(a - (uintptr_t)seg) >> seg->slab_shift];
  hak_heap_t *h = hak_tls_heap;
  if (hak_likely(atomic_load_explicit(&s->owner, memory_order_relaxed) == (uintptr_t)h)) {
    hak_block_t *b = p;
    /* used <= 1: the slab empties (or a double free underflows it);
     * b == local_free: the same block freed twice in a row. */
    if (hak_unlikely(s->used <= 1 || b == s->local_free)) {
      hak_free_owner_slow(h, s, b);
      return;
    }
    b->next = s->local_free;
    s->local_free = b;
    s->used--;
    return;
  }
  hak_free_nonowner(p, seg, s); /* another thread's, a full slab, Large or Big */
}

#endif
