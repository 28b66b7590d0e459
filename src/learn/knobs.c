/* The knobs the learner may move: one policy field each, a short ladder of
 * values (moved one step at a time), pinned when the user set the option. */
#include <string.h>

#include "../internal.h"
#include "../options.h"
#include "control.h"

typedef struct knob_def {
  const char *name;
  int option; /* the HAKMEM_* option that pins it */
  uint8_t n;
  double value[HAK_LEARN_MAX_ARMS];
} knob_def_t;

#define HAK_KNOB(id, kname, opt, ...)                                                             \
  [HAK_KNOB_##id] = {kname, HAK_O_##opt, (uint8_t)(sizeof((double[]){__VA_ARGS__}) / sizeof(double)), \
                     {__VA_ARGS__}},
static const knob_def_t defs[HAK_NKNOBS] = {
#include "knobs.def"
};
#undef HAK_KNOB

bool hak_knob_pinned(unsigned knob) { return knob < HAK_NKNOBS && hak_opt_set[defs[knob].option]; }

const char *hak_knob_name(unsigned knob) { return knob < HAK_NKNOBS ? defs[knob].name : "?"; }

int hak_knob_find(const char *name, size_t len) {
  for (int i = 0; i < HAK_NKNOBS; i++)
    if (strlen(defs[i].name) == len && !memcmp(defs[i].name, name, len)) return i;
  return -1;
}

double hak_knob_value(unsigned knob, const hak_policy_t *p) {
  switch (knob) {
    case HAK_KNOB_BIG_THRESHOLD: return (double)p->big_threshold;
    case HAK_KNOB_PURGE_DELAY: return (double)p->purge_delay_ms;
    case HAK_KNOB_LARGE_CACHE: return (double)p->large_cache;
    case HAK_KNOB_BIGCACHE: return (double)p->bigcache;
    case HAK_KNOB_SEGMENT_CACHE: return (double)p->segment_cache;
    case HAK_KNOB_W_MAX: return (double)p->w_max_eighths / 8.0;
  }
  return 0;
}

/* The options' ranges bound what a policy file may say, too. */
bool hak_knob_set(unsigned knob, hak_policy_t *p, double v) {
  if (knob >= HAK_NKNOBS || !(v >= 0)) return false;
  const hak_option_desc_t *d = &hak_option_table[defs[knob].option];
  double lo = (double)d->lo, hi = (double)d->hi;
  if (d->kind == HAK_OPT_REAL) lo /= 1e6, hi /= 1e6;
  if (v < lo || v > hi) return false;
  switch (knob) {
    case HAK_KNOB_BIG_THRESHOLD: p->big_threshold = (size_t)v; break;
    case HAK_KNOB_PURGE_DELAY: p->purge_delay_ms = (uint64_t)v; break;
    case HAK_KNOB_LARGE_CACHE: p->large_cache = (size_t)v; break;
    case HAK_KNOB_BIGCACHE: p->bigcache = (size_t)v; break;
    case HAK_KNOB_SEGMENT_CACHE: p->segment_cache = (unsigned)v; break;
    case HAK_KNOB_W_MAX: p->w_max_eighths = (unsigned)(v * 8 + 0.5); break;
  }
  return true;
}

/* The controller's histogram counts Large and Big allocations past the
 * small classes, by size (hak_lb_bin).  The Large tier takes what lies
 * between the Mid tier's top and the big threshold, the Big tier the rest. */
static unsigned large_hi(size_t threshold) {
  return threshold <= HAK_MID_MAX ? 0 : hak_lb_bin(threshold - 1) + 1;
}

/* The histogram bins on whose allocations knob `knob`'s arms differ,
 * under policy p (both 0: every allocation).  The big threshold moves
 * what lies between its ladder's ends; the Large cache and W_MAX act on
 * Large spans, the BigCache on Big mappings.  A knob passed over for a
 * window with nothing there costs no trial: on big-buffers (every block
 * 5-25 MiB) the big threshold, the Large cache and W_MAX had their turns,
 * trials and canary challengers, a quarter of the learning run, for
 * arms that changed nothing. */
void hak_knob_bins(unsigned knob, const hak_policy_t *p, uint8_t *lo, uint8_t *hi) {
  unsigned l = 0, h = 0;
  switch (knob) {
    case HAK_KNOB_BIG_THRESHOLD: {
      const knob_def_t *d = &defs[knob];
      l = HAK_NCLASS + hak_lb_bin((size_t)d->value[0]);
      h = HAK_NCLASS + large_hi((size_t)d->value[d->n - 1]);
      break;
    }
    case HAK_KNOB_LARGE_CACHE:
    case HAK_KNOB_W_MAX:
      l = HAK_NCLASS;
      h = HAK_NCLASS + large_hi(p->big_threshold);
      break;
    case HAK_KNOB_BIGCACHE:
      l = HAK_NCLASS + hak_lb_bin(p->big_threshold);
      h = HAK_NCLASS + HAK_LB_BINS;
      break;
  }
  *lo = (uint8_t)l;
  *hi = (uint8_t)h;
}

void hak_knobs_init(hak_learn_knob_t *knobs, const hak_policy_t *from) {
  for (unsigned i = 0; i < HAK_NKNOBS; i++) {
    hak_learn_knob_t *k = &knobs[i];
    memset(k, 0, sizeof *k);
    k->name = defs[i].name;
    k->n = defs[i].n;
    memcpy(k->value, defs[i].value, sizeof k->value);
    k->pinned = hak_opt_set[defs[i].option];
    hak_knob_bins(i, from, &k->bin_lo, &k->bin_hi);
    /* A cache fills or empties after its budget moves: the window right
     * after a change measures that (large-ws: a 32 MiB Large cache was
     * judged dearer at every trial, yet costs 0.81 x the default's time
     * when fixed), so these settle for a window first. */
    k->settle = i == HAK_KNOB_LARGE_CACHE || i == HAK_KNOB_BIGCACHE || i == HAK_KNOB_SEGMENT_CACHE;
    /* Less kept, or kept for less long: fewer bytes, never less work.
     * Trying a smaller BigCache on big-churn (2-64 MiB blocks, 4 % of
     * whose cost is memory) cost 1,000 x a window for three windows. */
    k->mem_down = k->settle || i == HAK_KNOB_PURGE_DELAY;
    k->start = (uint8_t)hak_learn_ladder_find(k, hak_knob_value(i, from));
  }
}

void hak_knobs_apply(const hak_learn_knob_t *knobs, const uint8_t *cfg, const hak_policy_t *base,
                     hak_policy_t *out) {
  *out = *base;
  for (unsigned i = 0; i < HAK_NKNOBS; i++)
    if (!knobs[i].pinned) hak_knob_set(i, out, knobs[i].value[cfg[i]]);
}
