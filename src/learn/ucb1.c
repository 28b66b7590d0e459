/* UCB1 over the incumbent's neighbourhood (hak_ucb1_*).  Costs become
 * rewards relative to the incumbent, r_i = -mean_i / mean_cur, so that the
 * exploration constant c means "explore an arm whose cost is within about c
 * of the incumbent's" whatever the unit of the cost. */
#include <math.h>

#include "../fmath.h"

#include "learn.h"

static double ref_cost(const hak_sel_t *s) {
  double r = s->mean[s->cur];
  return r > 0 ? r : 1.0; /* a free incumbent: compare absolute costs */
}

static uint64_t plays_near(const hak_sel_t *s) {
  unsigned c = s->cur;
  uint64_t n = s->count[c];
  if (c > 0) n += s->count[c - 1];
  if (c + 1 < s->n) n += s->count[c + 1];
  return n;
}

double hak_ucb1_score(const hak_sel_t *s, unsigned arm) {
  if (arm >= s->n) return -INFINITY;
  if (s->count[arm] == 0) return INFINITY;
  uint64_t N = plays_near(s);
  double bonus = N > 1 ? s->p.ucb_c * hak_sqrt(hak_log((double)N) / s->count[arm]) : 0.0;
  return -s->mean[arm] / ref_cost(s) + bonus;
}

unsigned hak_ucb1_pick(const hak_sel_t *s) {
  unsigned c = s->cur, best = c;
  double bs = hak_ucb1_score(s, c);
  for (int d = -1; d <= 1; d += 2) {
    int a = (int)c + d;
    if (!hak_sel_playable(s, a)) continue;
    double sc = hak_ucb1_score(s, (unsigned)a);
    if (sc > bs) { /* strictly: ties stay on the incumbent */
      bs = sc;
      best = (unsigned)a;
    }
  }
  return best;
}
