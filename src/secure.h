/* The secure library's inline part: the one encode/decode pair of free-list
 * links, and the secure entry points (secure.c).  In the normal library
 * (hak_secure false) a link is the plain pointer and nothing here costs. */
#ifndef HAKMEM_SECURE_H
#define HAKMEM_SECURE_H

#include "internal.h"

/* Per-process secrets, random at start and never 0 (secure.c). */
extern uintptr_t hak_sec_key;

/* A link is stored as next ^ secret ^ (its own address, rotated), so that
 * an overwritten link decodes to garbage, and garbage is refused. */
hak_inline uintptr_t hak_sec_link_key(const void *b) {
  uintptr_t a = (uintptr_t)b;
  return hak_sec_key ^ ((a << 23) | (a >> 41));
}

hak_noinline __attribute__((noreturn)) void hak_sec_bad_link(const hak_slab_t *s, const void *b);

hak_inline void hak_link_set(hak_block_t *b, hak_block_t *next) {
  if (hak_secure) b->next = (hak_block_t *)((uintptr_t)next ^ hak_sec_link_key(b));
  else b->next = next;
}

/* The block after b on one of slab s's lists: NULL, or a block of s (a
 * corrupted link stops the process, it is never followed). */
hak_inline hak_block_t *hak_link_get(const hak_slab_t *s, const hak_block_t *b) {
  if (!hak_secure) return b->next;
  hak_block_t *n = (hak_block_t *)((uintptr_t)b->next ^ hak_sec_link_key(b));
  if (hak_unlikely(n && hak_slab_block_index(s, n) == UINT32_MAX)) hak_sec_bad_link(s, b);
  return n;
}

/* The same on the heap's `delayed` list, whose blocks are of any slab. */
hak_block_t *hak_sec_link_get_any(const hak_block_t *b);
hak_inline hak_block_t *hak_link_get_any(const hak_block_t *b) {
  if (!hak_secure) return b->next;
  return hak_sec_link_get_any(b);
}

/* secure.c: every allocation and free of the secure library goes here. */
void hak_secure_init(void);
void *hak_secure_alloc(size_t n, size_t align, bool zero, void *site);
void *hak_secure_malloc(size_t n, void *site);
void hak_secure_free(void *p, void *site);
void *hak_secure_realloc(void *p, size_t n, void *site);
size_t hak_secure_usable(const void *p);
/* A thread's quarantine goes back (thread exit, trim). */
void hak_secure_flush(hak_heap_t *h);
/* Bytes of secure state kept after each heap (heap.c allocates them). */
#define HAK_SEC_HEAP_BYTES (hak_secure ? hak_sec_heap_bytes() : 0)
size_t hak_sec_heap_bytes(void);
/* big.c: a freed Big mapping is reused only after this many later Big
 * frees, and its first words are checked then. */
extern unsigned hak_sec_big_delay;
void hak_sec_big_reused(void *old_block);
/* slab.c: a slab's layout in the secure library (its guard page, where
 * its blocks start); returns the number of blocks it holds. */
uint32_t hak_sec_slab_init(hak_slab_t *slab, hak_segment_t *seg, uint8_t *base, size_t slab_bytes, size_t bs);
/* slab.c: carves n blocks at p in a random order onto slab->free. */
void hak_sec_carve(hak_slab_t *slab, uint8_t *p, uint32_t n, size_t bs);

#endif
