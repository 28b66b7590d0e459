/* The learning lifecycle (hak_learn_*): LEARN -> FROZEN -> CANARY, around
 * the tuner.  Owns convergence (the tuner's clean round plus a settled P²
 * p99 of the best configuration's cost), the canary's challengers, the
 * reference size-class histogram and shift detection, and the state names.
 * Transitions happen only inside feed/skip, so the owner sees each one in
 * the returned event bits and hak_learn_reason(). */
#include <math.h>

#include "../fmath.h"

#include "learn.h"

#define PAIR_MIN_ALLOCS 16 /* fewer allocations in a window: its mix is unknown */

const char *hak_learn_state_name(hak_learn_state_t s) {
  switch (s) {
  case HAK_LEARN_STATE_LEARN: return "LEARN";
  case HAK_LEARN_STATE_FROZEN: return "FROZEN";
  case HAK_LEARN_STATE_CANARY: return "CANARY";
  }
  return "?";
}

unsigned hak_learn_ladder_find(const hak_learn_knob_t *k, double v) {
  unsigned best = 0, n = k->n <= HAK_LEARN_MAX_ARMS ? k->n : HAK_LEARN_MAX_ARMS;
  double bd = INFINITY;
  for (unsigned i = 0; i < n; i++) {
    double d = fabs(k->value[i] - v);
    if (d < bd) {
      bd = d;
      best = i;
    }
  }
  return best;
}

void hak_learn_params_default(hak_learn_params_t *p) {
  hak_sel_params_default(&p->sel);
  p->start = HAK_LEARN_STATE_LEARN;
  p->stable_m = 6;
  p->turn_max = 48;
  p->settle_span = 8;
  p->settle_min = 12;
  p->settle_eps = 0.05;
  p->freeze_after = 600;
  p->canary_every = 1;
  p->canary_len = 0;
  p->canary_frac = 0.05;
  p->canary_trials = 3;
  p->base_min = 4;
  p->shift_l1 = 0.3;
  p->shift_k = 3;
  p->hist_min = 4096;
  p->ref_windows = 8;
  p->ref_mem = 32;
}

/* ---- histograms --------------------------------------------------------- */

/* Normalises hist into out[HAK_LEARN_HIST_BINS] (bins past the last folded
 * into it); returns the total count. */
static uint64_t fold(const uint64_t *hist, unsigned nbins, double *out) {
  uint64_t c[HAK_LEARN_HIST_BINS] = {0}, total = 0;
  for (unsigned b = 0; b < nbins; b++) {
    c[b < HAK_LEARN_HIST_BINS ? b : HAK_LEARN_HIST_BINS - 1] += hist[b];
    total += hist[b];
  }
  for (unsigned b = 0; b < HAK_LEARN_HIST_BINS; b++) out[b] = total ? (double)c[b] / (double)total : 0.0;
  return total;
}

static double l1_norm(const double *ref, const double *frac) {
  double d = 0;
  for (unsigned b = 0; b < HAK_LEARN_HIST_BINS; b++) d += fabs(frac[b] - ref[b]);
  return d;
}

/* The owner may count up to p.carry of a window's allocations in the next
 * one (ace.c: the heaps fold their small-object counts a little before a
 * window ends).  A window of nb allocations after one of na is then mostly
 * the other's tail when that carry could be a quarter of it, and its mix
 * tells nothing: a slow trial's 16 ms after 50 ms of fast windows (800
 * allocations against 60,000, its Mid share twice the workload's) broke
 * every pair it was in, and the trial was played again and again. */
static bool mostly_tail(const hak_learn_t *l, uint64_t na, uint64_t nb) {
  return (double)na * l->p.carry > 0.25 * (double)nb;
}

/* Did the allocation mix change between two windows of `na` and `nb`
 * allocations?  Their distance must exceed the shift threshold by what
 * sampling alone gives two windows: E[L1] <= sqrt(2B/pi * (1/na + 1/nb))
 * over the B bins either one uses (0.16 for 82 bins and 4096 each). */
static bool mix_changed(const hak_learn_t *l, const double *a, uint64_t na, const double *b, uint64_t nb) {
  if (na < PAIR_MIN_ALLOCS || nb < PAIR_MIN_ALLOCS || l->prev_tail || mostly_tail(l, na, nb)) return false;
  unsigned used = 0;
  for (unsigned i = 0; i < HAK_LEARN_HIST_BINS; i++) used += a[i] > 0 || b[i] > 0;
  double noise = hak_sqrt(2.0 * used / 3.141592653589793 * (1.0 / (double)na + 1.0 / (double)nb));
  return l1_norm(a, b) > l->p.shift_l1 + noise;
}

double hak_learn_l1(const double *ref, const uint64_t *hist, unsigned nbins) {
  double frac[HAK_LEARN_HIST_BINS];
  if (!hist || fold(hist, nbins, frac) == 0) return -1;
  return l1_norm(ref, frac);
}

/* A mean of histograms: plain for `mem` windows, then exponential. */
static void hist_mean_add(double *m, uint32_t *count, uint32_t mem, const double *frac) {
  if (*count < UINT32_MAX) (*count)++;
  uint32_t n = *count < mem ? *count : mem;
  for (unsigned b = 0; b < HAK_LEARN_HIST_BINS; b++) m[b] += (frac[b] - m[b]) / n;
}

static void ref_add(hak_learn_t *l, const double *frac) { hist_mean_add(l->ref, &l->ref_n, l->p.ref_mem, frac); }

static void ref_reset(hak_learn_t *l) {
  for (unsigned b = 0; b < HAK_LEARN_HIST_BINS; b++) l->ref[b] = 0;
  l->ref_n = 0;
  l->shift_streak = 0;
}

/* A reference given whole (a policy file's, a recalled mix's): usable at once. */
static void ref_set(hak_learn_t *l, const double *frac) {
  for (unsigned b = 0; b < HAK_LEARN_HIST_BINS; b++) l->ref[b] = frac[b];
  l->ref_n = l->p.ref_windows;
  l->shift_streak = 0;
}

void hak_learn_set_reference(hak_learn_t *l, const uint64_t *hist, unsigned nbins) {
  double frac[HAK_LEARN_HIST_BINS];
  if (!hist || fold(hist, nbins, frac) == 0) return;
  ref_set(l, frac);
}

/* ---- cost of the best configuration ------------------------------------- */

static void best_reset(hak_learn_t *l) {
  hak_p2_init(&l->p50, 0.5);
  hak_p2_init(&l->p99, 0.99);
  for (unsigned i = 0; i < HAK_LEARN_SETTLE_MAX; i++) l->settle_ring[i] = 0;
  l->settled = false;
}

/* Settled: p99 moved by at most settle_eps (relative) over the last
 * settle_span windows of the best configuration. */
static void best_cost(hak_learn_t *l, double cost) {
  hak_p2_add(&l->p50, cost);
  hak_p2_add(&l->p99, cost);
  uint64_t n = hak_p2_count(&l->p99);
  double v = hak_p2_value(&l->p99);
  unsigned slot = (unsigned)(n % l->p.settle_span);
  double old = l->settle_ring[slot]; /* p99 when n - settle_span samples had been seen */
  l->settle_ring[slot] = v;
  l->settled = n > l->p.settle_span && n >= l->p.settle_min && fabs(v - old) <= l->p.settle_eps * fabs(v);
}

static void base_cost(hak_learn_t *l, double cost) {
  if (l->base_n < UINT32_MAX) l->base_n++;
  uint32_t n = l->base_n < l->p.sel.mem ? l->base_n : l->p.sel.mem;
  l->base_mean += (cost - l->base_mean) / n;
}

/* ---- mixes learned before ------------------------------------------------ */

/* A slot's last use, for the least recently used one (0 is an empty slot). */
static uint64_t phase_now(const hak_learn_t *l) { return l->windows ? l->windows : 1; }

/* A LEARN stretch that froze: the mix it froze on and its policy are
 * remembered (in the slot of the same mix, else the empty or least
 * recently used one).  The mix is that of its windows since the mix last
 * changed (a stretch that began in one phase may freeze in the next), and
 * only if there were enough of them to say what it is. */
static void phase_remember(hak_learn_t *l) {
  if (l->mix_n < l->p.ref_windows) return;
  unsigned slot = 0;
  for (unsigned i = 0; i < HAK_LEARN_PHASES; i++) {
    if (l->phase[i].used && l1_norm(l->phase[i].ref, l->mix) <= l->p.shift_l1) {
      slot = i;
      break;
    }
    if (l->phase[i].used < l->phase[slot].used) slot = i;
  }
  for (unsigned b = 0; b < HAK_LEARN_HIST_BINS; b++) l->phase[slot].ref[b] = l->mix[b];
  for (unsigned k = 0; k < l->nknobs; k++) l->phase[slot].cfg[k] = l->best[k];
  l->phase[slot].used = phase_now(l);
}

/* The remembered mix nearest to this window's, if it is no further than a
 * shift (the same test that said the workload left the current one); -1
 * if none. */
static int phase_match(const hak_learn_t *l, const double *frac) {
  int best = -1;
  double d = l->p.shift_l1;
  for (unsigned i = 0; i < HAK_LEARN_PHASES; i++) {
    if (!l->phase[i].used) continue;
    double x = l1_norm(l->phase[i].ref, frac);
    if (x <= d) d = x, best = (int)i;
  }
  return best;
}

/* ---- transitions -------------------------------------------------------- */

static unsigned go(hak_learn_t *l, hak_learn_state_t s, const char *reason) {
  l->state = s;
  l->reason = reason;
  l->state_windows = 0;
  l->transitions++;
  return HAK_LEARN_EV_STATE;
}

static unsigned freeze(hak_learn_t *l, const char *reason) {
  hak_tuner_best(&l->tuner, l->best);
  if (l->state == HAK_LEARN_STATE_LEARN) phase_remember(l);
  l->mix_n = l->mix_off = 0;
  l->base_mean = 0;
  l->base_n = 0;
  l->canary_acc = 0;
  l->chal_pos = 0;
  l->chal_n = 0;
  l->chal_mean = 0;
  l->shift_streak = 0;
  return go(l, HAK_LEARN_STATE_FROZEN, reason);
}

/* Back to LEARN: estimates are forgotten, the position is kept.  Whatever
 * sent us back proved the old estimates wrong (another workload, or a cost
 * landscape that moved under the best configuration), so as priors they
 * would bias every comparison; the best configuration is still the nearest
 * known-good start, and re-measuring its +-1 neighbours costs a few windows
 * per knob. */
static unsigned relearn(hak_learn_t *l, const char *reason) {
  hak_tuner_reset(&l->tuner);
  best_reset(l);
  ref_reset(l);
  l->learn_windows = 0;
  l->prev_total = 0; /* the first window of LEARN pairs with none before it */
  l->prev_tail = false;
  unsigned ev = go(l, HAK_LEARN_STATE_LEARN, reason);
  if (l->tuner.n_movable == 0) ev |= freeze(l, "nothing to learn: every knob pinned");
  return ev;
}

/* The workload moved to mix m, learned before: its policy becomes every
 * knob's incumbent and the state FROZEN at once (the canary watches it as
 * any other), its reference the current one.  From LEARN, the stretch is
 * dropped unremembered: it had not converged on its own mix. */
static unsigned recall(hak_learn_t *l, int m) {
  hak_tuner_recall(&l->tuner, l->phase[m].cfg);
  l->state = HAK_LEARN_STATE_FROZEN; /* freeze() remembers only a LEARN stretch */
  ref_set(l, l->phase[m].ref);
  l->phase[m].used = phase_now(l);
  l->recalls++;
  best_reset(l);
  return freeze(l, "size-class histogram shifted to a mix learned before: its policy recalled") | HAK_LEARN_EV_BEST;
}

/* ---- canary ------------------------------------------------------------- */

/* The next challenger in the rotation (slot 2k: knob k one step down, 2k+1:
 * one step up), starting at chal_pos; false if no knob can move. */
static bool pick_challenger(hak_learn_t *l, unsigned *knob, unsigned *arm) {
  unsigned slots = 2u * l->nknobs;
  for (unsigned i = 0; i < slots; i++) {
    unsigned s = (l->chal_pos + i) % slots, k = s / 2;
    int a = (int)l->best[k] + (s & 1 ? 1 : -1);
    if (!l->tuner.movable[k] || l->tuner.unused[k] || a < 0 || a >= l->knob[k].n) continue;
    if (!(s & 1) && l->tuner.sel[k].no_down) continue;
    if (i) { /* moved on to another challenger: a fresh trial */
      l->chal_pos = (uint8_t)s;
      l->chal_n = 0;
      l->chal_mean = 0;
    }
    *knob = k;
    *arm = (unsigned)a;
    return true;
  }
  return false;
}

/* A challenger must beat the best configuration's recent mean by `gain` at
 * each of canary_trials consecutive windows, the same rule (and the same
 * margin) as a switch in LEARN; one failure rotates to the next. */
static unsigned challenger_cost(hak_learn_t *l, const hak_learn_decision_t *d, double cost) {
  l->chal_n++;
  l->chal_mean += (cost - l->chal_mean) / l->chal_n;
  if (l->chal_mean > (1.0 - l->p.sel.gain) * l->base_mean) {
    l->chal_n = 0;
    l->chal_mean = 0;
    l->chal_pos = (uint8_t)((l->chal_pos + 1) % (2u * l->nknobs));
    return 0;
  }
  if (l->chal_n < l->p.canary_trials) return 0;
  unsigned k = (unsigned)d->knob, arm = d->cfg[k];
  unsigned ev = relearn(l, "canary: a challenger is clearly better");
  hak_tuner_adopt(&l->tuner, k, arm);
  hak_tuner_best(&l->tuner, l->best);
  return ev | HAK_LEARN_EV_BEST;
}

/* ---- knobs with nothing to act on ---------------------------------------- */

/* Which knobs the window gave nothing to act on: those whose bins
 * (bin_lo and up) counted no allocation.  Without a histogram, none. */
static void mark_unused(hak_learn_t *l, const uint64_t *hist, unsigned nbins) {
  bool unused[HAK_LEARN_MAX_KNOBS] = {false};
  for (unsigned k = 0; k < l->nknobs; k++) {
    unsigned lo = l->knob[k].bin_lo, hi = l->knob[k].bin_hi;
    if (!hist || (lo == 0 && hi == 0)) continue;
    if (hi == 0 || hi > nbins) hi = nbins;
    uint64_t n = 0;
    for (unsigned b = lo; b < hi; b++) n += hist[b];
    unused[k] = n == 0;
  }
  hak_tuner_unused(&l->tuner, unused);
}

void hak_learn_mem_share(hak_learn_t *l, double share) {
  l->mem_share = share >= 0 && share <= 1 ? share : 1; /* also NaN: no bound */
}

/* A step down a mem_down knob saves memory at best: its cost is at least
 * the incumbent's without its memory, (1 - share) x its cost, and a move
 * needs (1 - gain) x.  Bounded by the incumbent's last window's share. */
static void bound_down(hak_learn_t *l) {
  for (unsigned k = 0; k < l->nknobs; k++)
    l->tuner.sel[k].no_down = l->knob[k].mem_down && l->mem_share_best < l->p.sel.gain;
}

void hak_learn_knob_bins(hak_learn_t *l, unsigned k, unsigned lo, unsigned hi) {
  if (k >= l->nknobs) return;
  l->knob[k].bin_lo = (uint8_t)(lo < 255 ? lo : 255);
  l->knob[k].bin_hi = (uint8_t)(hi < 255 ? hi : 255);
}

/* ---- the window loop ---------------------------------------------------- */

int hak_learn_init(hak_learn_t *l, const hak_learn_params_t *p, const hak_learn_knob_t *knobs,
                   unsigned nknobs) {
  if (!l || !knobs || nknobs == 0 || nknobs > HAK_LEARN_MAX_KNOBS) return -1;
  for (unsigned k = 0; k < nknobs; k++)
    if (knobs[k].n == 0 || knobs[k].n > HAK_LEARN_MAX_ARMS || knobs[k].start >= knobs[k].n) return -1;
  *l = (hak_learn_t){0};
  if (p) l->p = *p;
  else hak_learn_params_default(&l->p);
  hak_learn_params_t *q = &l->p;
  if (q->sel.mem == 0) q->sel.mem = 1;
  if (q->settle_span == 0) q->settle_span = 1;
  if (q->settle_span > HAK_LEARN_SETTLE_MAX) q->settle_span = HAK_LEARN_SETTLE_MAX;
  if (!(q->canary_frac >= 0)) q->canary_frac = 0; /* also NaN */
  if (q->canary_frac > 1) q->canary_frac = 1;
  if (q->canary_trials == 0) q->canary_trials = 1;
  if (q->shift_k == 0) q->shift_k = 1;
  if (q->ref_windows == 0) q->ref_windows = 1;
  if (q->ref_mem == 0) q->ref_mem = 1;
  l->nknobs = (uint8_t)nknobs;
  for (unsigned k = 0; k < nknobs; k++) l->knob[k] = knobs[k];
  hak_tuner_init(&l->tuner, knobs, nknobs, &q->sel, q->stable_m, q->turn_max);
  hak_tuner_best(&l->tuner, l->best);
  best_reset(l);
  ref_reset(l);
  l->last_l1 = -1;
  l->mem_share = l->mem_share_best = 1;
  l->last = (hak_learn_decision_t){.knob = -1};
  for (unsigned k = 0; k < nknobs; k++) l->last.cfg[k] = l->best[k];
  if (q->start != HAK_LEARN_STATE_LEARN) {
    freeze(l, "started frozen on the given policy");
  } else {
    go(l, HAK_LEARN_STATE_LEARN, "started learning");
    if (l->tuner.n_movable == 0) freeze(l, "nothing to learn: every knob pinned");
  }
  l->last.state = l->state;
  l->transitions = 0;
  return 0;
}

/* Whether going from `from` to `to` changes a knob that settles. */
static bool settles(const hak_learn_t *l, const uint8_t *from, const uint8_t *to) {
  for (unsigned k = 0; k < l->nknobs; k++)
    if (l->knob[k].settle && from[k] != to[k]) return true;
  return false;
}

void hak_learn_next(hak_learn_t *l, hak_learn_decision_t *d) {
  if (!l->have_pend && l->repeat) { /* the settled decision, now measured */
    l->pend = l->last;
    l->pend.settle = false;
    l->repeat = false;
    l->have_pend = true;
  }
  if (!l->have_pend) {
    hak_learn_decision_t *n = &l->pend;
    *n = (hak_learn_decision_t){.state = l->state, .knob = -1};
    for (unsigned k = 0; k < l->nknobs; k++) n->cfg[k] = l->best[k];
    if (l->state == HAK_LEARN_STATE_LEARN) {
      n->knob = (int8_t)hak_tuner_pick(&l->tuner, n->cfg);
    } else if (l->state == HAK_LEARN_STATE_CANARY) {
      /* an even spread: one challenger window every 1/canary_frac */
      l->canary_acc += l->p.canary_frac;
      unsigned k, arm;
      if (l->canary_acc >= 1.0 && l->base_n >= l->p.base_min && pick_challenger(l, &k, &arm)) {
        l->canary_acc -= 1.0;
        n->cfg[k] = (uint8_t)arm;
        n->knob = (int8_t)k;
        n->challenger = true;
      }
      if (l->canary_acc > 1.0) l->canary_acc = 1.0; /* a postponed one is not followed by a burst */
    }
    n->settle = settles(l, l->last.cfg, n->cfg);
    l->have_pend = true;
  }
  *d = l->pend;
}

unsigned hak_learn_feed(hak_learn_t *l, double cost, const uint64_t *hist, unsigned nbins) {
  hak_learn_decision_t d;
  if (l->have_pend) {
    d = l->pend;
  } else {
    d = (hak_learn_decision_t){.state = l->state, .knob = -1};
    for (unsigned k = 0; k < l->nknobs; k++) d.cfg[k] = l->best[k];
  }
  l->have_pend = false;
  l->last = d;
  l->windows++;
  if (l->state_windows < UINT32_MAX) l->state_windows++;

  /* A settling window measured the change, not the configuration: it
   * counts as a window (histogram, budget, state) but its cost is no arm's. */
  bool measured = isfinite(cost) && !d.settle;
  if (d.settle) l->settle_windows++;
  if (measured && cost < 0) cost = 0;
  bool is_best = true;
  for (unsigned k = 0; k < l->nknobs; k++) is_best &= d.cfg[k] == l->best[k];
  double frac[HAK_LEARN_HIST_BINS];
  uint64_t total = hist ? fold(hist, nbins, frac) : 0;
  mark_unused(l, hist, nbins);
  if (measured && is_best) {
    l->mem_share_best = l->mem_share;
    bound_down(l);
  }
  bool hist_ok = total > 0 && total >= l->p.hist_min;
  l->last_l1 = hist_ok && l->ref_n > 0 ? l1_norm(l->ref, frac) : -1;

  unsigned ev = 0;
  switch (l->state) {
  case HAK_LEARN_STATE_LEARN:
    if (l->learn_windows < UINT32_MAX) l->learn_windows++;
    if (hist_ok) ref_add(l, frac);
    if (measured) {
      /* A phase change between this window and the last one (phase-change:
       * 64-256 KiB blocks, then small objects at a hundredth of the cost
       * per op) would make whichever arm follows it look far better or
       * worse; such a pair was what moved the big threshold 2 MiB ->
       * 256 KiB there. */
      if (mix_changed(l, l->prev_frac, l->prev_total, frac, total)) {
        hak_tuner_break(&l->tuner);
        l->breaks++;
      }
      /* The stretch's mix changes after shift_k windows in a row off it,
       * as a shift in CANARY, and starts again from the last of them (one
       * window alone is not a change: a window's counts come in lumps, and
       * one in ten of a stationary program's was 0.3 off its neighbours).
       * To a mix learned before (not the one this stretch learns), its
       * policy at once. */
      if (hist_ok) {
        l->mix_off = l->mix_n && l1_norm(l->mix, frac) > l->p.shift_l1 ? l->mix_off + 1 : 0;
        if (l->mix_off >= l->p.shift_k) {
          int m = phase_match(l, frac);
          if (m >= 0 && l1_norm(l->phase[m].ref, l->mix) > l->p.shift_l1) {
            ev |= recall(l, m);
            break;
          }
          l->mix_n = l->mix_off = 0;
        }
        if (!l->mix_off) hist_mean_add(l->mix, &l->mix_n, l->p.ref_mem, frac);
      }
      l->prev_tail = mostly_tail(l, l->prev_total, total);
      l->prev_total = total;
      for (unsigned b = 0; b < HAK_LEARN_HIST_BINS; b++) l->prev_frac[b] = total ? frac[b] : 0;
      if (is_best) best_cost(l, cost);
      if (d.knob >= 0 && l->tuner.unused[d.knob]) l->unused_windows++;
      unsigned arm = d.knob >= 0 ? d.cfg[d.knob] : 0;
      if (hak_tuner_update(&l->tuner, d.knob, arm, cost)) {
        hak_tuner_best(&l->tuner, l->best);
        best_reset(l); /* its p99 was another configuration's */
        ev |= HAK_LEARN_EV_BEST;
      }
    }
    if (hak_tuner_settled(&l->tuner) && l->settled)
      ev |= freeze(l, "converged: every knob held, p99 settled");
    else if (l->p.freeze_after && l->learn_windows >= l->p.freeze_after)
      ev |= freeze(l, "learning budget spent");
    break;
  case HAK_LEARN_STATE_FROZEN:
    if (measured && is_best) {
      base_cost(l, cost);
      best_cost(l, cost);
    }
    if (l->p.canary_every && l->state_windows >= l->p.canary_every)
      ev |= go(l, HAK_LEARN_STATE_CANARY, "canary watch begins");
    break;
  case HAK_LEARN_STATE_CANARY:
    if (measured) {
      if (d.challenger && d.knob >= 0) {
        if (!l->tuner.unused[d.knob]) ev |= challenger_cost(l, &d, cost); /* else a trial of nothing */
      }
      else if (is_best) {
        base_cost(l, cost);
        best_cost(l, cost);
      }
    }
    if (l->state != HAK_LEARN_STATE_CANARY) break;
    if (hist_ok) {
      if (l->ref_n < l->p.ref_windows) {
        ref_add(l, frac); /* frozen from a policy file: learn what "normal" looks like */
      } else if (l->last_l1 > l->p.shift_l1) {
        if (++l->shift_streak >= l->p.shift_k) {
          int m = phase_match(l, frac);
          ev |= m >= 0 ? recall(l, m) : relearn(l, "size-class histogram shifted");
          break;
        }
      } else {
        l->shift_streak = 0;
      }
    }
    if (l->p.canary_len && l->state_windows >= l->p.canary_len)
      ev |= go(l, HAK_LEARN_STATE_FROZEN, "canary found nothing");
    break;
  }
  /* Unless the state moved on (then the decision is a new one anyway). */
  l->repeat = d.settle && l->state == d.state;
  return ev;
}

unsigned hak_learn_skip(hak_learn_t *l, uint32_t windows) {
  unsigned ev = 0;
  l->have_pend = false;
  l->repeat = false;
  l->windows += windows;
  l->state_windows = l->state_windows > UINT32_MAX - windows ? UINT32_MAX : l->state_windows + windows;
  switch (l->state) {
  case HAK_LEARN_STATE_LEARN:
    l->learn_windows = l->learn_windows > UINT32_MAX - windows ? UINT32_MAX : l->learn_windows + windows;
    if (l->p.freeze_after && l->learn_windows >= l->p.freeze_after)
      ev |= freeze(l, "learning budget spent");
    break;
  case HAK_LEARN_STATE_FROZEN:
    if (l->p.canary_every && l->state_windows >= l->p.canary_every)
      ev |= go(l, HAK_LEARN_STATE_CANARY, "canary watch begins");
    break;
  case HAK_LEARN_STATE_CANARY:
    if (l->p.canary_len && l->state_windows >= l->p.canary_len)
      ev |= go(l, HAK_LEARN_STATE_FROZEN, "canary found nothing");
    break;
  }
  return ev;
}

uint32_t hak_learn_idle(const hak_learn_t *l) {
  if (l->state != HAK_LEARN_STATE_FROZEN) return 0;
  if (l->p.canary_every == 0) return UINT32_MAX;
  return l->state_windows >= l->p.canary_every ? 0 : l->p.canary_every - l->state_windows;
}

hak_learn_state_t hak_learn_state(const hak_learn_t *l) { return l->state; }
const char *hak_learn_reason(const hak_learn_t *l) { return l->reason; }
const uint8_t *hak_learn_best(const hak_learn_t *l) { return l->best; }
const uint8_t *hak_learn_applied(const hak_learn_t *l) { return l->last.cfg; }
double hak_learn_p50(const hak_learn_t *l) { return hak_p2_value(&l->p50); }
double hak_learn_p99(const hak_learn_t *l) { return hak_p2_value(&l->p99); }
double hak_learn_shift(const hak_learn_t *l) { return l->last_l1; }

bool hak_learn_estimate(const hak_learn_t *l, unsigned knob, unsigned arm, hak_learn_est_t *e) {
  if (knob >= l->nknobs) return false;
  const hak_sel_t *s = &l->tuner.sel[knob];
  if (arm >= s->n) return false;
  *e = (hak_learn_est_t){.mean = s->mean[arm], .n = s->count[arm], .rating = s->rating[arm],
                         .incumbent = arm == s->cur};
  return true;
}
