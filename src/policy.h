/* The policy: every tunable a slow path reads, as one immutable snapshot
 * behind one atomic pointer (the seed's FrozenPolicy).  Slow paths load it
 * once per call with hak_policy(); fast paths never look at it.  Built from
 * the options at start-up; a learner publishes new snapshots with
 * hak_policy_publish (see docs/design.md, "Policy"). */
#ifndef HAKMEM_POLICY_H
#define HAKMEM_POLICY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Slots of the per-thread Large cache (the heap holds this many at most). */
#define HAK_LCACHE_SLOTS_MAX 4

typedef struct hak_policy {
  size_t big_threshold;       /* requests this large or larger: Big tier */
  uint64_t purge_delay_ms;    /* free pages idle this long go back (see hak_purge_tick_ms) */
  size_t large_cache;         /* bytes of freed Large spans kept process-wide */
  size_t bigcache;            /* resident bytes of freed Big mappings kept */
  bool bigcache_fixed;        /* ... exactly (the user's HAKMEM_BIGCACHE), else at least
                                 what the program's Big blocks held lately (big.c) */
  unsigned segment_cache;     /* empty segments kept mapped */
  bool thp;                   /* Big blocks asked to be huge pages */
  unsigned lcache_slots;      /* per-thread Large cache: spans kept (<= HAK_LCACHE_SLOTS_MAX) */
  unsigned lcache_max_pages;  /* ... each of at most this many pages */
  size_t slab_carve_bytes;    /* bytes of a slab carved into blocks per refill */
  unsigned purge_check_mask;  /* a heap looks for due purges every (mask+1) slow calls */
  unsigned realloc_slack_shift; /* a block moved by a growing realloc gets n >> shift more */
  unsigned w_max_eighths;     /* W_MAX: a cached Large span up to this many eighths of the request serves it */
  /* Per-site decisions for Large and Big blocks (learn/sites.h), or NULL:
   * an immutable table, looked up on the Large/Big slow paths only. */
  const struct hak_site_table *sites;
} hak_policy_t;

extern _Atomic(const hak_policy_t *) hak_policy_cur;

/* The snapshot in force: one acquire load.  Read it once per slow-path
 * call and use that copy throughout, so a call sees one consistent policy. */
static inline const hak_policy_t *hak_policy(void) {
  return atomic_load_explicit(&hak_policy_cur, memory_order_acquire);
}

/* Free pages are purged on ticks this far apart: at a tick, those that
 * were already free at the previous one go back (idle between half the
 * delay and the delay); a delay of 0 purges at once. */
static inline uint64_t hak_purge_tick_ms(void) { return hak_policy()->purge_delay_ms / 2; }

/* Builds the start-up snapshot from the options (process init). */
void hak_policy_init(void);
/* The snapshot built from the options (defaults and explicit values). */
const hak_policy_t *hak_policy_from_options(void);
/* Makes *p the policy in force: one pointer swap.  Snapshots are never
 * freed, so a slow path still reading an old one is safe: each distinct
 * policy gets one immutable copy (at most HAK_POLICY_MAX), reused when it
 * is published again.  Returns false (nothing changed) when the table of
 * copies is full. */
#define HAK_POLICY_MAX 256
bool hak_policy_publish(const hak_policy_t *p);

#endif
