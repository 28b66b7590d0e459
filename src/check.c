/* The debug build's invariant walkers (check.h) for slabs, heaps, Tiny/Mid
 * segments and the segment map, and the report of a failed hak_assert.
 * They only read: a walker never repairs what it finds, it stops the
 * process before a corrupted list is followed any further. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "secure.h"
#include "msg.h"

void hak_assert_fail(const char *file, int line, const char *cond, const char *fmt, ...) {
  char detail[320];
  va_list ap;
  va_start(ap, fmt);
  hak_vfmt(detail, sizeof detail, fmt, ap);
  va_end(ap);
  hak_error("%s:%d: invariant failed: %s: %s", file, line, cond, detail);
  abort();
}

/* The most blocks a slab can hold: 16-byte blocks in a 64 KiB Tiny slab
 * (a Mid slab holds at most 512 KiB / 1152 B). */
#define CHECK_MAX_BLOCKS ((1u << HAK_TINY_SLAB_SHIFT) / 16)

void hak_check_segmap(const void *base, size_t size) {
  if (!hak_debug) return; /* other builds keep no dead walks */
  uintptr_t a = (uintptr_t)base;
  hak_assert(!(a & HAK_SEG_MASK) && size, "mapping %p of %zu bytes", base, size);
  size_t n = (size + HAK_SEG_MASK) >> HAK_SEG_SHIFT;
  for (size_t i = 0; i < n; i++) {
    unsigned want = i == 0 ? 1 : (i < 254 ? (unsigned)i + 1 : 255);
    unsigned v = hak_segmap_get(a + i * HAK_SEG_SIZE);
    hak_assert(v == want, "segment-map byte of unit %zu of the mapping at %p (%zu bytes) is %u, not %u", i,
               base, size, v, want);
  }
  const void *found = hak_segmap_lookup((const uint8_t *)base + size - 1);
  hak_assert(found == base, "the last byte of the mapping at %p (%zu bytes) maps to %p", base, size, found);
}

/* What a used slab's header says of itself, whoever owns it. */
static void slab_check_header(const hak_segment_t *seg, const hak_slab_t *s, unsigned i) {
  unsigned c = s->cls;
  hak_assert(s->index == i, "slab %p: index %u at position %u", (const void *)s, s->index, i);
  hak_assert(c < HAK_NCLASS && (c < HAK_NTINY) == (seg->kind == HAK_SEG_TINY),
             "slab %p: class %u in a segment of kind %u", (const void *)s, c, seg->kind);
  hak_assert(s->block_size == hak_class_size(c), "slab %p: class %u, block size %u", (const void *)s, c,
             s->block_size);
  const uint8_t *end = (const uint8_t *)seg + ((size_t)(i + 1) << seg->slab_shift);
  size_t room = (size_t)(end - hak_slab_start(s)) / s->block_size;
  /* The secure library keeps a guard page at the slab's end: fewer blocks. */
  hak_assert((hak_secure ? s->reserved <= room : s->reserved == room) && room <= CHECK_MAX_BLOCKS,
             "slab %p: reserved %u, room for %zu blocks", (const void *)s, s->reserved, room);
  hak_assert(s->blk_reserved == s->reserved && s->blk_cls == c,
             "slab %p: reserved %u and class %u, their copies %u and %u", (const void *)s, s->reserved, c,
             s->blk_reserved, s->blk_cls);
  hak_assert(s->used <= s->capacity && s->capacity <= s->reserved,
             "slab %p: used %u, capacity %u, reserved %u", (const void *)s, s->used, s->capacity,
             s->reserved);
}

/* Counts a free list, checking each block before following its link: it
 * lies in the slab's carved area, on a block boundary, and on no list seen
 * so far (`seen`, one bit per block). */
static uint32_t slab_walk(const hak_slab_t *s, const hak_block_t *b, uint64_t *seen, const char *list) {
  uintptr_t start = (uintptr_t)hak_slab_start(s);
  size_t bs = s->block_size, area = (size_t)s->capacity * bs;
  uint32_t n = 0;
  /* (links decoded as the secure library stores them; checked here, not
   * by hak_link_get, so that a bad one is reported as an invariant) */
  for (; b; b = (const hak_block_t *)((uintptr_t)b->next ^ (hak_secure ? hak_sec_link_key(b) : 0)), n++) {
    size_t off = (uintptr_t)b - start; /* below start wraps to a huge offset */
    hak_assert(off < area && off % bs == 0,
               "slab %p (%zu-byte blocks at %p, %u carved): its %s list leads to %p after %u blocks",
               (const void *)s, bs, (void *)start, s->capacity, list, (const void *)b, n);
    size_t k = off / bs;
    hak_assert(!((seen[k >> 6] >> (k & 63)) & 1),
               "slab %p: block %p is on its lists twice (again on %s, after %u blocks): a double free "
               "or a corrupted link",
               (const void *)s, (const void *)b, list, n);
    seen[k >> 6] |= 1ull << (k & 63);
  }
  return n;
}

/* `where` matches the list the slab is on.  Checked through its neighbours
 * (O(1)): a neighbour links back and has the same `where` (and class, on a
 * class queue); at an end, the list's end is this slab.  hak_check_heap
 * walks whole lists. */
static void slab_check_links(hak_heap_t *h, const hak_slab_t *s) {
  const hak_slabq_t *q = &h->queue[s->cls], *f = &h->full;
  if (s->where == HAK_IN_NONE) {
    /* Its links may be stale (an adopted slab's point into the old heap). */
    hak_assert(q->first != s && q->last != s && f->first != s && f->last != s,
               "slab %p is on no list (where = none) but ends one of heap %p", (const void *)s, (void *)h);
    return;
  }
  bool full = s->where == HAK_IN_FULL;
  hak_assert(full || s->where == HAK_IN_QUEUE, "slab %p: where = %u", (const void *)s, s->where);
  if (full) q = f;
  const hak_slab_t *p = s->prev, *n = s->next;
  if (p)
    hak_assert(p->next == s && p->where == s->where && (full || p->cls == s->cls),
               "slab %p (where %u, class %u): its predecessor %p links to %p, where %u, class %u",
               (const void *)s, s->where, s->cls, (const void *)p, (const void *)p->next, p->where, p->cls);
  else
    hak_assert(q->first == s, "slab %p (where %u, class %u) has no predecessor; the list starts at %p",
               (const void *)s, s->where, s->cls, (const void *)q->first);
  if (n)
    hak_assert(n->prev == s && n->where == s->where && (full || n->cls == s->cls),
               "slab %p (where %u, class %u): its successor %p links to %p, where %u, class %u",
               (const void *)s, s->where, s->cls, (const void *)n, (const void *)n->prev, n->where, n->cls);
  else
    hak_assert(q->last == s, "slab %p (where %u, class %u) has no successor; the list ends at %p",
               (const void *)s, s->where, s->cls, (const void *)q->last);
}

/* The slab every empty heap points at: the fast path must always miss it. */
static void check_empty_slab(void) {
  const hak_slab_t *e = &hak_slab_empty;
  hak_assert(!e->free && !e->local_free && !e->free_rest && !e->used && !e->block_size &&
                 !atomic_load_explicit(&e->owner, memory_order_relaxed),
             "the empty slab has free %p, local %p, used %u", (void *)e->free, (void *)e->local_free,
             e->used);
}


/* Every block of the slab is either handed out or on one of its lists:
 *   free + local_free + free_rest == capacity - used,
 * exactly, at every slow-path point: `used` counts the blocks other threads
 * freed that the owner has not collected yet (on thread_free, or on a
 * heap's `delayed` list); collecting them subtracts them.  thread_free is
 * walked too (other threads only push in front, and only the owner, the
 * caller, takes blocks off): its blocks are counted in `used`, so at most
 * `used` of them, and no block is on two lists. */
void hak_check_slab(hak_heap_t *h, const hak_slab_t *s) {
  if (!hak_debug) return;
  if (s == &hak_slab_empty) {
    check_empty_slab();
    return;
  }
  const hak_segment_t *seg = hak_seg_of(s);
  hak_assert(seg->kind == HAK_SEG_TINY || seg->kind == HAK_SEG_MID, "slab %p in a segment of kind %u",
             (const void *)s, seg->kind);
  unsigned i = s->index;
  hak_assert(i < seg->nslabs && &seg->slabs[i] == s && !((seg->free_mask >> i) & 1),
             "slab %p: index %u of %u, free mask %llx", (const void *)s, i, seg->nslabs,
             (unsigned long long)seg->free_mask);
  slab_check_header(seg, s, i);
  uintptr_t own = atomic_load_explicit(&s->owner, memory_order_relaxed);
  hak_heap_t *seg_heap = atomic_load_explicit(&seg->heap, memory_order_relaxed);
  hak_assert((own & ~HAK_SLAB_TAGS) == (uintptr_t)h && seg_heap == h,
             "slab %p: owner %p, its segment's heap %p, checked for heap %p", (const void *)s, (void *)own,
             (void *)seg_heap, (void *)h);
  bool cur = h->cur[s->cls] == s;
  /* The owner's free is the fast path's for an untagged owner only. */
  bool tagged = (own & HAK_SLAB_TAGS) != 0;
  hak_assert(tagged ? s->used_floor == HAK_FLOOR_SLOW
                    : s->used_floor == 0 || (s->used_floor == -1 && cur && hak_free_on_top),
             "slab %p: used floor %d, owner %p, %s current", (const void *)s, s->used_floor, (void *)own,
             cur ? "the" : "not the");
  /* Full: off its queue, the owner word flagged, the remote-free notice
   * requested (a remote free may have taken it since: never the reverse). */
  bool full = s->where == HAK_IN_FULL;
  uintptr_t tf = atomic_load_explicit(&s->thread_free, memory_order_acquire);
  hak_assert(((own & HAK_SLAB_FULL) != 0) == full && (full || !(tf & HAK_TF_NOTIFY)),
             "slab %p: where %u, owner %p, thread_free %p", (const void *)s, s->where, (void *)own,
             (void *)tf);
  slab_check_links(h, s);
  if (full) {
    /* Found with nothing to give (the owner's frees into it unmark it
     * first); only the current slab, kept after an out-of-memory, may
     * have collected remote frees since. */
    hak_assert(!s->local_free && s->capacity == s->reserved &&
                   (h->cur[s->cls] == s || (!s->free && !s->free_rest)),
               "full slab %p: free %p, local %p, rest %p, capacity %u of %u", (const void *)s,
               (void *)s->free, (void *)s->local_free, (void *)s->free_rest, s->capacity, s->reserved);
  }
  uint64_t seen[CHECK_MAX_BLOCKS / 64];
  memset(seen, 0, sizeof seen);
  uint32_t nfree = slab_walk(s, s->free, seen, "free");
  uint32_t nlocal = slab_walk(s, s->local_free, seen, "local_free");
  uint32_t nrest = slab_walk(s, s->free_rest, seen, "free_rest");
  uint32_t nremote = slab_walk(s, HAK_TF_LIST(tf), seen, "thread_free");
  hak_assert(nremote == HAK_TF_COUNT(tf), "slab %p: %u blocks on thread_free, its count says %u", (const void *)s,
             nremote, HAK_TF_COUNT(tf));
  uint32_t listed = nfree + nlocal + nrest, owed = s->capacity - s->used;
  hak_assert(
      listed == owed && nremote <= s->used,
      "slab %p (class %u): free %u + local %u + rest %u blocks, but capacity %u - used %u; %u remote",
      (const void *)s, s->cls, nfree, nlocal, nrest, s->capacity, s->used, nremote);
}

static void heap_check_list(hak_heap_t *h, const hak_slabq_t *q, uint8_t where, unsigned cls) {
  const hak_slab_t *prev = NULL;
  for (const hak_slab_t *s = q->first; s; prev = s, s = s->next) {
    /* A cycle fails here too: its first slab's prev is NULL. */
    hak_assert(s->prev == prev && s->where == where && (where == HAK_IN_FULL || s->cls == cls),
               "heap %p, list %s %u: slab %p (where %u, class %u) links back to %p, not %p", (void *)h,
               where == HAK_IN_FULL ? "full" : "queue", cls, (const void *)s, s->where, s->cls,
               (const void *)s->prev, (const void *)prev);
    hak_check_slab(h, s);
  }
  hak_assert(q->last == prev, "heap %p: a list ends at %p, its last is %p", (void *)h, (const void *)prev,
             (const void *)q->last);
}

void hak_check_heap(hak_heap_t *h) {
  if (!hak_debug) return;
  check_empty_slab();
  if (h == &hak_heap_empty) return;
  for (unsigned c = 0; c < HAK_NCLASS; c++) heap_check_list(h, &h->queue[c], HAK_IN_QUEUE, c);
  heap_check_list(h, &h->full, HAK_IN_FULL, 0);
  for (unsigned c = 0; c < HAK_NCLASS; c++) {
    const hak_slab_t *s = h->cur[c];
    hak_assert(s == &hak_slab_empty || (s->cls == c && hak_slab_owner(s) == h),
               "heap %p: current slab %p of class %u has class %u, owner %p", (void *)h, (const void *)s, c,
               s->cls, (void *)hak_slab_owner(s));
    if (s != &hak_slab_empty && s->where == HAK_IN_NONE) hak_check_slab(h, s);
  }
  for (unsigned i = 0; i < HAK_NDIRECT; i++)
    hak_assert(h->direct[i] == h->cur[hak_class_of((size_t)i * 16)],
               "heap %p: direct[%u] = %p, the current slab of its class is %p", (void *)h, i,
               (const void *)h->direct[i], (const void *)h->cur[hak_class_of((size_t)i * 16)]);
  /* Under the segment lock: the controller may be purging this heap's
   * segments, and a walk beside it reads masks half updated. */
  hak_lock(&h->seg_lock);
  for (unsigned k = 0; k < 2; k++) {
    const hak_segment_t *prev = NULL;
    for (const hak_segment_t *seg = h->segs[k]; seg; prev = seg, seg = seg->next) {
      hak_assert(seg->prev == prev && atomic_load_explicit(&seg->heap, memory_order_relaxed) == h &&
                     seg->kind == (k ? HAK_SEG_MID : HAK_SEG_TINY),
                 "heap %p: segment %p (kind %u) links back to %p, not %p", (void *)h, (const void *)seg,
                 seg->kind, (const void *)seg->prev, (const void *)prev);
      hak_check_segment(seg);
    }
  }
  hak_unlock(&h->seg_lock);
}

/* A Tiny/Mid segment's header against its slabs:
 *   used_slabs == the slabs not in free_mask; dirty_mask within free_mask,
 *   young_mask within dirty_mask;
 *   a free slab has block_size 0 and owner 0; a used one is well formed
 *   and owned by the segment's heap (0 once abandoned);
 *   an owned segment with dirty free slabs has a purge time, and its
 *   heap's next purge comes no later (else those pages stay resident);
 *   the segment-map byte of its address is 1. */
void hak_check_segment(const hak_segment_t *seg) {
  if (!hak_debug) return;
  unsigned kind = seg->kind;
  hak_assert(kind == HAK_SEG_TINY || kind == HAK_SEG_MID, "segment %p: kind %u", (const void *)seg, kind);
  unsigned shift = kind == HAK_SEG_TINY ? HAK_TINY_SLAB_SHIFT : HAK_MID_SLAB_SHIFT;
  unsigned n = (unsigned)(HAK_SEG_SIZE >> shift);
  hak_assert(seg->slab_shift == shift && seg->nslabs == n && seg->map_size == HAK_SEG_SIZE,
             "segment %p (kind %u): slab shift %u, %u slabs, %zu bytes", (const void *)seg, kind,
             seg->slab_shift, seg->nslabs, seg->map_size);
  hak_check_segmap(seg, HAK_SEG_SIZE);
  uint64_t all = n == 64 ? ~0ull : (1ull << n) - 1;
  uint64_t fm = seg->free_mask, dm = seg->dirty_mask;
  hak_assert(!(fm & ~all) && !(dm & ~fm) && !(seg->young_mask & ~dm) &&
                 seg->used_slabs == hak_popcount(~fm & all),
             "segment %p: free mask %llx, dirty mask %llx, young mask %llx, %u slabs used", (const void *)seg,
             (unsigned long long)fm, (unsigned long long)dm, (unsigned long long)seg->young_mask, seg->used_slabs);
  hak_heap_t *h = atomic_load_explicit(&seg->heap, memory_order_relaxed);
  for (unsigned i = 0; i < n; i++) {
    const hak_slab_t *s = &seg->slabs[i];
    uintptr_t own = atomic_load_explicit(&s->owner, memory_order_relaxed);
    if ((fm >> i) & 1) {
      hak_assert(!s->block_size && !s->blk_reserved && !own,
                 "segment %p: free slab %u has block size %u (%u blocks), owner %p", (const void *)seg, i,
                 s->block_size, s->blk_reserved, (void *)own);
    } else {
      slab_check_header(seg, s, i);
      hak_assert((own & ~HAK_SLAB_TAGS) == (uintptr_t)h, "segment %p of heap %p: slab %u is owned by %p",
                 (const void *)seg, (void *)h, i, (void *)own);
    }
  }
  if (h && dm)
    hak_assert(seg->purge_at && h->next_purge && h->next_purge <= seg->purge_at,
               "segment %p: dirty free slabs %llx, purge at %llu, its heap's next purge %llu",
               (const void *)seg, (unsigned long long)dm, (unsigned long long)seg->purge_at,
               (unsigned long long)h->next_purge);
}
