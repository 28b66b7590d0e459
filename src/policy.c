/* The policy snapshot (see policy.h): the compiled-in defaults used before
 * start-up has read the options, and the snapshot built from them. */
#include "policy.h"

#include "internal.h"

#include "msg.h"
#include "options.h"
#include "learn/control.h"
#include "learn/sites.h"

/* Before hak_process_init: the options' table defaults.  Nothing reads
 * the policy before init in practice (Large/Big requests initialise
 * first), but a stray early read must still see sane values. */
static const hak_policy_t policy_boot = {
    .big_threshold = (size_t)2 << 20,
    .purge_delay_ms = 1000,
    .large_cache = 0,
    .bigcache = (size_t)128 << 20,
    .segment_cache = 8,
    .thp = true,
    .lcache_slots = HAK_LCACHE_SLOTS_MAX,
    .lcache_max_pages = 256,
    .slab_carve_bytes = (size_t)16 << 10,
    .purge_check_mask = 15,
    .realloc_slack_shift = 2,
    .w_max_eighths = 10,
};

static hak_policy_t policy_options;
/* Published snapshots (the publisher, the controller thread, is the only
 * writer; readers only follow hak_policy_cur). */
hak_big_bss static hak_policy_t policy_copies[HAK_POLICY_MAX];
static unsigned policy_ncopies;

_Atomic(const hak_policy_t *) hak_policy_cur = &policy_boot;

hak_front void hak_policy_init(void) {
  hak_policy_t p = policy_boot;
  p.big_threshold = (size_t)HAK_OPT(BIG_THRESHOLD);
  p.purge_delay_ms = (uint64_t)HAK_OPT(PURGE_DELAY_MS);
  p.large_cache = (size_t)HAK_OPT(LARGE_CACHE);
  p.bigcache = (size_t)HAK_OPT(BIGCACHE);
  p.bigcache_fixed = hak_opt_set[HAK_O_BIGCACHE];
  p.segment_cache = (unsigned)HAK_OPT(SEGMENT_CACHE);
  p.thp = HAK_OPT(THP) != 0;
  p.w_max_eighths = (unsigned)((HAK_OPT(W_MAX) * 8 + 500000) / 1000000);
  if (HAK_OPT(MODE) == HAK_MODE_MINIMAL) p.lcache_slots = 0; /* no caches at all */
  /* A policy file (hakmem tune, run --policy-out) sets what the user did
   * not set in the environment: options stay the user's word. */
  const char *file = HAK_OPT_STR(POLICY_FILE);
  if (file) {
    hak_policy_t f = p;
    /* The controller's bins, as it writes them: a file with another count
     * has no usable reference (read_hist). */
    uint64_t ref[HAK_HIST_BINS];
    if (hak_policyfile_read(file, &f, ref, HAK_HIST_BINS)) {
      for (unsigned k = 0; k < HAK_NKNOBS; k++)
        if (!hak_knob_pinned(k)) hak_knob_set(k, &p, hak_knob_value(k, &f));
      hak_control_set_reference(ref, HAK_HIST_BINS);
      p.sites = hak_sites_file_table(true); /* its per-site decisions, where they resolve */
    }
  }
  policy_options = p;
  atomic_store_explicit(&hak_policy_cur, &policy_options, memory_order_release);
  if (HAK_OPT(VERBOSE)) {
    char buf[512];
    size_t n = hak_fmt(buf, sizeof buf, "hakmem: policy");
    for (unsigned k = 0; k < HAK_NKNOBS; k++) {
      double v = hak_knob_value(k, &p);
      long long whole = (long long)v, milli = (long long)((v - (double)whole) * 1000 + 0.5);
      n += hak_fmt(buf + n, sizeof buf - n, " %s=%lld", hak_knob_name(k), whole);
      if (milli) n += hak_fmt(buf + n, sizeof buf - n, ".%03lld", milli);
    }
    hak_fdprintf(2, "%s%s\n", buf, file ? " (with the policy file)" : "");
  }
}

const hak_policy_t *hak_policy_from_options(void) { return &policy_options; }

/* Field by field: padding bytes are not part of a policy. */
static bool policy_equal(const hak_policy_t *a, const hak_policy_t *b) {
  return a->big_threshold == b->big_threshold && a->purge_delay_ms == b->purge_delay_ms &&
         a->large_cache == b->large_cache && a->bigcache == b->bigcache &&
         a->segment_cache == b->segment_cache && a->thp == b->thp && a->lcache_slots == b->lcache_slots &&
         a->lcache_max_pages == b->lcache_max_pages && a->slab_carve_bytes == b->slab_carve_bytes &&
         a->purge_check_mask == b->purge_check_mask && a->realloc_slack_shift == b->realloc_slack_shift &&
         a->w_max_eighths == b->w_max_eighths && a->sites == b->sites &&
         a->bigcache_fixed == b->bigcache_fixed;
}

bool hak_policy_publish(const hak_policy_t *p) {
  const hak_policy_t *cur = hak_policy();
  if (policy_equal(cur, p)) return true;
  const hak_policy_t *snap = NULL;
  if (policy_equal(&policy_options, p)) snap = &policy_options;
  for (unsigned i = 0; !snap && i < policy_ncopies; i++)
    if (policy_equal(&policy_copies[i], p)) snap = &policy_copies[i];
  if (!snap) {
    if (policy_ncopies == HAK_POLICY_MAX) return false;
    policy_copies[policy_ncopies] = *p;
    snap = &policy_copies[policy_ncopies++];
  }
  atomic_store_explicit(&hak_policy_cur, snap, memory_order_release);
  return true;
}
