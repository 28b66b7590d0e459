/* ELO ratings with softmax selection (hak_elo_*), the seed's alternative
 * to UCB1.  A challenger's window is one game against the incumbent's
 * recent mean; the pick samples the neighbourhood by exp(rating / temp)
 * from a xorshift64* state kept in the selector, so runs are reproducible. */
#include <math.h>

#include "../fmath.h"

#include "learn.h"

uint64_t hak_elo_rand(uint64_t *state) {
  uint64_t x = *state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *state = x;
  return x * 0x2545F4914F6CDD1Dull;
}

double hak_elo_expect(double ra, double rb) { return 1.0 / (1.0 + hak_exp((rb - ra) / 400.0 * 2.302585092994046)); /* 10^x */ }

void hak_elo_rate(hak_sel_t *s, unsigned arm, double cost) {
  unsigned c = s->cur;
  if (arm >= s->n || arm == c || s->count[c] == 0) return; /* no opponent yet */
  /* an arm's first game: it enters at the incumbent's rating (unknown is
   * not worse), or softmax would barely try a neighbour that appears
   * after a move */
  if (s->count[arm] == 0) s->rating[arm] = s->rating[c];
  double m = s->mean[c], score;
  if (cost <= m * (1.0 - s->p.elo_draw)) score = 1.0;
  else if (cost >= m * (1.0 + s->p.elo_draw)) score = 0.0;
  else score = 0.5;
  double delta = s->p.elo_k * (score - hak_elo_expect(s->rating[arm], s->rating[c]));
  s->rating[arm] += delta;
  s->rating[c] -= delta;
}

unsigned hak_elo_pick(hak_sel_t *s) {
  unsigned c = s->cur, arm[3], k = 0;
  if (hak_sel_playable(s, (int)c - 1)) arm[k++] = c - 1;
  arm[k++] = c;
  if (hak_sel_playable(s, (int)c + 1)) arm[k++] = c + 1;
  double t = s->p.elo_temp > 0 ? s->p.elo_temp : 1.0, top = -INFINITY, w[3], sum = 0;
  for (unsigned i = 0; i < k; i++)
    if (s->rating[arm[i]] > top) top = s->rating[arm[i]];
  for (unsigned i = 0; i < k; i++) sum += w[i] = hak_exp((s->rating[arm[i]] - top) / t);
  /* 53 random bits -> [0, sum) */
  double u = (double)(hak_elo_rand(&s->rng) >> 11) * 0x1.0p-53 * sum;
  for (unsigned i = 0; i < k; i++) {
    if (u < w[i]) return arm[i];
    u -= w[i];
  }
  return arm[k - 1];
}
