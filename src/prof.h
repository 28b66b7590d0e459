/* HAKMEM_PROF: a sampling profiler of the slow paths.  One event in
 * HAKMEM_PROF_SAMPLE is timed with the cycle counter; at exit the average
 * ns per category is printed.  Off, it costs one predictable branch on
 * slow paths and nothing on fast ones. */
#ifndef HAKMEM_PROF_H
#define HAKMEM_PROF_H

#include <stdbool.h>
#include <stdint.h>

#include "internal.h"

#define HAK_PROF_CATEGORIES(X)                          \
  X(REFILL, "refill")                                   \
  X(SLAB_ACQUIRE, "slab-acquire")                       \
  X(REMOTE_DRAIN, "remote-drain")                       \
  X(LARGE_ALLOC, "large-alloc")                         \
  X(LARGE_FREE, "large-free")                           \
  X(BIG_ALLOC, "big-alloc")                             \
  X(BIG_FREE, "big-free")                               \
  X(OS_CALL, "os-call")

enum {
#define X(id, name) HAK_PROF_##id,
  HAK_PROF_CATEGORIES(X)
#undef X
  HAK_PROF_N
};

/* Refills reach the profiler one in this many (heap.c): they are the most
 * frequent slow path, and counting each would cost the fast path's caller. */
#define HAK_MEASURE_EVERY 8

/* Slow paths are measured while this is on: HAKMEM_PROF sets it for the
 * whole run; the learning controller turns it on while it learns or
 * watches, and off while its policy is frozen. */
extern _Atomic bool hak_prof_on;
hak_inline bool hak_prof_active(void) { return atomic_load_explicit(&hak_prof_on, memory_order_relaxed); }
uint64_t hak_prof_sample(void);

/* Returns a start stamp when this event is sampled, else 0. */
hak_inline uint64_t hak_prof_begin(void) {
  if (hak_likely(!hak_prof_active())) return 0;
  return hak_prof_sample();
}
void hak_prof_record(int category, uint64_t start);
hak_inline void hak_prof_end(int category, uint64_t start) {
  if (hak_unlikely(start)) hak_prof_record(category, start);
}
void hak_prof_init(void);
void hak_prof_print(int fd);
/* The controller's switch (HAKMEM_PROF keeps measuring on regardless). */
void hak_prof_measure(bool on);
/* Per category: slow-path events so far (estimated from the sampled ones),
 * the mean ns of one over the whole run (stable, unlike a window's), and
 * the timed samples and their cycles so far (a window's own mean). */
typedef struct hak_prof_snap {
  uint64_t events[HAK_PROF_N];
  double mean_ns[HAK_PROF_N];
  uint64_t timed[HAK_PROF_N], cycles[HAK_PROF_N];
  double ns_per_cycle;
} hak_prof_snap_t;
void hak_prof_snapshot(hak_prof_snap_t *s);
/* HAKMEM_PROF: the report is printed at exit. */
extern bool hak_prof_report;

#endif
