/* The policy snapshot (see policy.h): the compiled-in defaults used before
 * start-up has read the options, and the snapshot built from them. */
#include "policy.h"

#include "options.h"

/* Before hak_process_init: the options' table defaults.  Nothing reads
 * the policy before init in practice (Large/Big requests initialise
 * first), but a stray early read must still see sane values. */
static const hak_policy_t policy_boot = {
    .big_threshold = (size_t)2 << 20,
    .purge_delay_ms = 250,
    .large_cache = (size_t)8 << 20,
    .bigcache = (size_t)64 << 20,
    .segment_cache = 8,
    .thp = false,
    .lcache_slots = HAK_LCACHE_SLOTS_MAX,
    .lcache_max_pages = 256,
    .slab_carve_bytes = (size_t)16 << 10,
    .purge_check_mask = 15,
    .realloc_slack_shift = 2,
    .w_max_eighths = 8,
};

static hak_policy_t policy_options;

_Atomic(const hak_policy_t *) hak_policy_cur = &policy_boot;

void hak_policy_init(void) {
  hak_policy_t p = policy_boot;
  p.big_threshold = (size_t)HAK_OPT(BIG_THRESHOLD);
  p.purge_delay_ms = (uint64_t)HAK_OPT(PURGE_DELAY_MS);
  p.large_cache = (size_t)HAK_OPT(LARGE_CACHE);
  p.bigcache = (size_t)HAK_OPT(BIGCACHE);
  p.segment_cache = (unsigned)HAK_OPT(SEGMENT_CACHE);
  p.thp = HAK_OPT(THP) != 0;
  policy_options = p;
  atomic_store_explicit(&hak_policy_cur, &policy_options, memory_order_release);
}

const hak_policy_t *hak_policy_from_options(void) { return &policy_options; }
