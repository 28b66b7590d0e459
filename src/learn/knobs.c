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

void hak_knobs_init(hak_learn_knob_t *knobs, const hak_policy_t *from) {
  for (unsigned i = 0; i < HAK_NKNOBS; i++) {
    hak_learn_knob_t *k = &knobs[i];
    memset(k, 0, sizeof *k);
    k->name = defs[i].name;
    k->n = defs[i].n;
    memcpy(k->value, defs[i].value, sizeof k->value);
    k->pinned = hak_opt_set[defs[i].option];
    /* These four act on Large and Big blocks alone (the ladder's lowest big
     * threshold is the Mid tier's top): the controller's histogram counts
     * them past the small classes (ace.c). */
    if (i == HAK_KNOB_BIG_THRESHOLD || i == HAK_KNOB_LARGE_CACHE || i == HAK_KNOB_BIGCACHE || i == HAK_KNOB_W_MAX)
      k->bin_lo = HAK_NCLASS;
    /* A cache fills or empties after its budget moves: the window right
     * after a change measures that (large-ws: a 32 MiB Large cache was
     * judged dearer at every trial, yet costs 0.81 x the default's time
     * when fixed), so these settle for a window first. */
    k->settle = i == HAK_KNOB_LARGE_CACHE || i == HAK_KNOB_BIGCACHE || i == HAK_KNOB_SEGMENT_CACHE;
    k->start = (uint8_t)hak_learn_ladder_find(k, hak_knob_value(i, from));
  }
}

void hak_knobs_apply(const hak_learn_knob_t *knobs, const uint8_t *cfg, const hak_policy_t *base,
                     hak_policy_t *out) {
  *out = *base;
  for (unsigned i = 0; i < HAK_NKNOBS; i++)
    if (!knobs[i].pinned) hak_knob_set(i, out, knobs[i].value[cfg[i]]);
}
