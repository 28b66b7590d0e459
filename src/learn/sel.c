/* The selector over one ladder (hak_sel_*): per-arm cost estimates, the
 * +-1 neighbourhood, and the seed's safety rules for moving the incumbent
 * (gain threshold, win streak, cooldown).  Which neighbour to play is
 * delegated to UCB1 (ucb1.c) or ELO (elo.c); everything else is shared, so
 * the two algorithms are interchangeable. */
#include <math.h>
#include "../fmath.h"

#include "learn.h"

void hak_sel_params_default(hak_sel_params_t *p) {
  *p = (hak_sel_params_t){
      .algo = HAK_LEARN_UCB1,
      .gain = 0.08,
      .win_streak = 3,
      .cooldown = 4,
      .mem = 32,
      .base = 3,
      .ucb_c = 0.1,
      .elo_k = 32,
      .elo_temp = 50,
      .elo_draw = 0.02,
      .seed = 0,
  };
}

void hak_sel_reset(hak_sel_t *s) {
  s->cooldown_left = 0;
  s->since_switch = 0;
  s->total = 0;
  for (unsigned i = 0; i < HAK_LEARN_MAX_ARMS; i++) {
    s->count[i] = 0;
    s->streak[i] = 0;
    s->mean[i] = 0;
    s->pair[i] = 0;
    s->pairs[i] = 0;
    s->rating[i] = 1500;
  }
  s->pend_before = 0;
}

void hak_sel_init(hak_sel_t *s, const hak_sel_params_t *p, unsigned n_arms, unsigned start) {
  if (p) s->p = *p;
  else hak_sel_params_default(&s->p);
  if (s->p.mem == 0) s->p.mem = 1;
  if (s->p.win_streak == 0) s->p.win_streak = 1;
  if (n_arms < 1) n_arms = 1;
  if (n_arms > HAK_LEARN_MAX_ARMS) n_arms = HAK_LEARN_MAX_ARMS;
  s->n = (uint8_t)n_arms;
  s->no_down = false;
  s->cur = (uint8_t)(start < n_arms ? start : n_arms - 1);
  s->switches = 0;
  /* xorshift must not start at 0 (it would stay there) */
  s->rng = s->p.seed ? s->p.seed : 0x9E3779B97F4A7C15ull;
  hak_sel_reset(s);
}

void hak_sel_set(hak_sel_t *s, unsigned arm) {
  if (arm >= s->n || arm == s->cur) return;
  s->cur = (uint8_t)arm;
  s->cooldown_left = s->p.cooldown;
  s->since_switch = 0;
  s->switches++;
  s->pend_before = 0;
  /* streaks and pairs were against the old incumbent */
  for (unsigned i = 0; i < HAK_LEARN_MAX_ARMS; i++) s->streak[i] = 0, s->pair[i] = 0, s->pairs[i] = 0;
}

/* `arm` beats the incumbent clearly: its windows cost, on average, less
 * than the incumbent's windows around each of them by the gain.  Paired,
 * not means: a program's costs drift (its heap warms up, its phase
 * changes), and a neighbour played later than the incumbent's early
 * windows must not win by the drift alone.  The pick plays the incumbent
 * between challenger windows, so every pair is measured side by side. */
static bool clear_win(const hak_sel_t *s, unsigned arm) {
  return s->pairs[arm] > 0 && s->pair[arm] <= 1.0 - s->p.gain;
}

/* A challenger window's cost over the incumbent's, within [1/4, 4]: one
 * window (a stall, a burst of another kind of work) says at most that
 * much, so that it cannot hold an arm's mean of pairs for the rest of a
 * turn (a window of tiers' 1 MiB arm cost 3,000 x its neighbour's). */
static double ratio(double cost, double ref) {
  double r = ref > 0 ? cost / ref : (cost > 0 ? 2.0 : 1.0);
  return r < 0.25 ? 0.25 : r > 4.0 ? 4.0 : r;
}

/* The incumbent's window after a challenger's brackets it: the
 * challenger's cost is compared with the geometric mean of the incumbent
 * windows on both sides, which cancels a cost that rises or falls by a
 * steady factor a window (the one-sided ratio takes the whole step as the
 * challenger's gain).  The corrected ratio replaces the counted one in the
 * mean; a win it no longer is ends the streak (a correction can take a win
 * away, never give one: the decision to move was made at the window). */
static void bracket(hak_sel_t *s, unsigned arm, double before, double after) {
  if (!(before > 0 && after > 0 && s->pairs[arm] > 0)) return;
  double r = ratio(s->pend_cost, hak_sqrt(before * after));
  uint32_t k = s->pairs[arm] < s->p.mem ? s->pairs[arm] : s->p.mem;
  s->pair[arm] += (r - s->pend_ratio) / k; /* the last sample's weight in the mean is 1/k */
  if (s->streak[arm] > 0 && !clear_win(s, arm)) s->streak[arm] = 0;
}

unsigned hak_sel_pick(hak_sel_t *s) {
  unsigned c = s->cur;
  /* the incumbent is the reference every comparison divides by: measured
   * `base` times first, so one unlucky window of it does not make every
   * neighbour look like a win; then each neighbour once */
  if (s->count[c] < s->p.base) return c;
  if (s->last != c) return c; /* challenger windows alternate with the incumbent's */
  if (hak_sel_playable(s, (int)c - 1) && s->count[c - 1] == 0) return c - 1;
  if (hak_sel_playable(s, (int)c + 1) && s->count[c + 1] == 0) return c + 1;
  return s->p.algo == HAK_LEARN_ELO ? hak_elo_pick(s) : hak_ucb1_pick(s);
}

void hak_sel_break(hak_sel_t *s) { s->last = HAK_SEL_NONE; }

bool hak_sel_update(hak_sel_t *s, unsigned arm, double cost) {
  if (arm >= s->n || !isfinite(cost)) return false;
  if (cost < 0) cost = 0;
  unsigned c = s->cur;
  /* A neighbour's window right after a break was measured in another
   * workload than any incumbent window it could be compared with: it
   * counts as not played (its neighbour is tried again). */
  bool unpaired = s->last == HAK_SEL_NONE && arm != c;
  if (!unpaired) {
    if (s->p.algo == HAK_LEARN_ELO && arm != c) hak_elo_rate(s, arm, cost);
    if (s->count[arm] < UINT32_MAX) s->count[arm]++;
    /* a plain mean for the first `mem` samples, then an exponential one, so
     * that an estimate follows a drifting workload */
    uint32_t n = s->count[arm] < s->p.mem ? s->count[arm] : s->p.mem;
    s->mean[arm] += (cost - s->mean[arm]) / n;
  }
  double before = s->pend_before; /* a pending pair is this window's to bracket or to drop */
  s->pend_before = 0;
  if (arm == c) {
    if (s->last != c && s->last < s->n) bracket(s, s->last, before, cost);
    s->last_cur = cost;
  } else if (s->last == c && s->count[c] > 0) {
    double r = ratio(cost, s->last_cur);
    uint32_t k = ++s->pairs[arm] < s->p.mem ? s->pairs[arm] : s->p.mem;
    s->pair[arm] += (r - s->pair[arm]) / k;
    s->pend_cost = cost, s->pend_before = s->last_cur, s->pend_ratio = r;
  }
  s->last = (uint8_t)arm;
  s->total++;
  s->since_switch++;
  bool cooling = s->cooldown_left > 0; /* checked before counting down: K full windows */
  if (cooling) s->cooldown_left--;
  if (arm == c || unpaired) return false;
  bool adjacent = arm + 1 == c || arm == c + 1;
  bool win = adjacent && clear_win(s, arm);
  s->streak[arm] = win ? s->streak[arm] + 1 : 0;
  if (!win || s->streak[arm] < s->p.win_streak || cooling) return false;
  hak_sel_set(s, arm);
  return true;
}
