/* Invariant walkers of the debug build (-DHAKMEM_DEBUG=ON; docs/design.md,
 * "Debug build").  Each stops the process with a hak_assert report at the
 * first broken invariant.  Every call is guarded by `if (hak_debug)`, so
 * other builds compile it away; the walkers themselves always compile.
 * Large and Big keep their walkers at the end of large.c and big.c, next
 * to their private headers. */
#ifndef HAKMEM_CHECK_H
#define HAKMEM_CHECK_H

#include "internal.h"

/* One slab of h, in h's thread: its lists, counts, `where` and owner. */
void hak_check_slab(hak_heap_t *h, const hak_slab_t *s);
/* Every queue, the full list, the current slabs and the segments of h
 * (and each slab as above), in h's thread or after it exited. */
void hak_check_heap(hak_heap_t *h);
/* A Tiny/Mid segment's header: masks, slab count, free and used slabs,
 * its segment-map byte.  Owned by the calling thread or under the lock of
 * the list it is on. */
void hak_check_segment(const hak_segment_t *seg);
/* The segment-map bytes of a mapping [base, base+size) starting a segment. */
void hak_check_segmap(const void *base, size_t size);
/* In a forked child: the other threads' heaps were copied as they were,
 * maybe in the middle of a malloc or free; see hak_check_slab. */

#endif
