/* test_learn_unit — the learning layer's brain (src/learn/) on synthetic
 * workloads: costs with seeded noise, multinomial size-class histograms,
 * and the window count as the only clock.  Every bound asserted here is
 * stated where it is checked (and summarised in docs/learning.md).
 * Sections can be picked by name: test_learn_unit p2 ucb1_convex ... */
#include <math.h>

#include "check.h"
#include "fmath.h"
#include "learn.h"

/* ---- randomness --------------------------------------------------------- */

static double urand(uint64_t *s) { return (double)(rng_next(s) >> 11) * 0x1.0p-53; }

static double gauss(uint64_t *s) {
  double u1 = urand(s), u2 = urand(s);
  if (u1 < 1e-300) u1 = 1e-300;
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* cost x (1 + rel * N(0,1)), never negative */
static double noisy(uint64_t *s, double cost, double rel) {
  double x = cost * (1.0 + rel * gauss(s));
  return x > 0 ? x : 0;
}

/* ---- P² ------------------------------------------------------------------ */

#define P2_N 100000
static double p2_samples[P2_N];

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* The sample quantile P² estimates: linear interpolation at q (n - 1). */
static double exact_quantile(double *sorted, size_t n, double q) {
  double r = q * (double)(n - 1);
  size_t lo = (size_t)r;
  if (lo + 1 >= n) return sorted[n - 1];
  return sorted[lo] + (r - (double)lo) * (sorted[lo + 1] - sorted[lo]);
}

static double gen_uniform(uint64_t *s) { return urand(s); }
static double gen_exponential(uint64_t *s) { return -log(1.0 - urand(s)); }
static double gen_bimodal(uint64_t *s) { /* 70 % N(10, 1), 30 % N(100, 5) */
  return urand(s) < 0.7 ? 10.0 + gauss(s) : 100.0 + 5.0 * gauss(s);
}
static double gen_lognormal(uint64_t *s) { return exp(gauss(s)); }

static void p2_case(const char *name, double (*gen)(uint64_t *), double tol50, double tol99) {
  for (uint64_t seed = 1; seed <= 3; seed++) {
    uint64_t s = seed * 7919;
    hak_p2_t p50, p99;
    hak_p2_init(&p50, 0.5);
    hak_p2_init(&p99, 0.99);
    for (size_t i = 0; i < P2_N; i++) {
      p2_samples[i] = gen(&s);
      hak_p2_add(&p50, p2_samples[i]);
      hak_p2_add(&p99, p2_samples[i]);
    }
    CHECK(hak_p2_count(&p99) == P2_N);
    qsort(p2_samples, P2_N, sizeof(double), cmp_double);
    double e50 = exact_quantile(p2_samples, P2_N, 0.5), e99 = exact_quantile(p2_samples, P2_N, 0.99);
    double r50 = fabs(hak_p2_value(&p50) - e50) / e50, r99 = fabs(hak_p2_value(&p99) - e99) / e99;
    CHECKF(r50 <= tol50, "%s seed %llu: p50 %.5g vs exact %.5g (%.2f %% > %.1f %%)", name,
           (unsigned long long)seed, hak_p2_value(&p50), e50, 100 * r50, 100 * tol50);
    CHECKF(r99 <= tol99, "%s seed %llu: p99 %.5g vs exact %.5g (%.2f %% > %.1f %%)", name,
           (unsigned long long)seed, hak_p2_value(&p99), e99, 100 * r99, 100 * tol99);
    if (seed == 1)
      printf("\n  %-11s p50 err %.3f %%, p99 err %.3f %%", name, 100 * r50, 100 * r99);
  }
}

static void p2(void) {
  /* Bounds, relative to the exact sample quantile of 100k samples, three
   * seeds each: uniform and exponential 1 % (p50) and 2 % (p99); bimodal
   * 70/30 2 % (p50 inside the big mode, p99 in the small one); lognormal
   * (heavy tail) 2 % / 5 %. */
  p2_case("uniform", gen_uniform, 0.01, 0.02);
  p2_case("exponential", gen_exponential, 0.01, 0.02);
  p2_case("bimodal", gen_bimodal, 0.02, 0.02);
  p2_case("lognormal", gen_lognormal, 0.02, 0.05);
  printf("\n%-28s    ", "");

  /* below five samples: exact, interpolated; empty: 0 */
  hak_p2_t p;
  hak_p2_init(&p, 0.5);
  CHECK(hak_p2_value(&p) == 0.0);
  hak_p2_add(&p, 3.0);
  CHECK(hak_p2_value(&p) == 3.0);
  hak_p2_add(&p, 1.0);
  CHECK(hak_p2_value(&p) == 2.0);
  hak_p2_add(&p, NAN); /* ignored */
  hak_p2_add(&p, INFINITY);
  CHECK(hak_p2_count(&p) == 2);
  hak_p2_add(&p, 2.0);
  CHECK(hak_p2_value(&p) == 2.0);
  /* a constant stream stays exact */
  hak_p2_init(&p, 0.99);
  for (int i = 0; i < 1000; i++) hak_p2_add(&p, 7.0);
  CHECK(hak_p2_value(&p) == 7.0);
}

/* ---- the one-ladder selector ---------------------------------------------- */

/* A convex ladder, optimum at 3, every step at least 23 % cheaper than the
 * one before it on the way down: 1 + 0.3 (i - 3)^2. */
static const double convex6[6] = {3.7, 2.2, 1.3, 1.0, 1.3, 2.2};
/* Monotone, every step 15 % cheaper: the optimum at the far end. */
static const double falling6[6] = {1.0, 0.85, 0.7225, 0.614, 0.522, 0.4437};

typedef struct {
  unsigned last_change; /* window (1-based) of the last move of the incumbent, 0 = none */
  unsigned switches;
  unsigned final;
  unsigned min_gap; /* fewest windows between two moves */
} run_t;

/* Runs a selector for `windows` windows on costs[arm] x (1 + noise N(0,1)),
 * checking on every window that the pick is within one step of the
 * incumbent and that the incumbent moves one step at a time. */
static run_t run_sel(hak_sel_t *s, const double *costs, double noise, uint64_t seed, unsigned windows) {
  run_t r = {.min_gap = UINT32_MAX};
  unsigned prev_switch = 0;
  for (unsigned w = 1; w <= windows; w++) {
    unsigned cur = s->cur, arm = hak_sel_pick(s);
    CHECKF(arm + 1 >= cur && arm <= cur + 1, "window %u: played arm %u, incumbent %u", w, arm, cur);
    bool moved = hak_sel_update(s, arm, noisy(&seed, costs[arm], noise));
    CHECK(moved == (s->cur != cur));
    if (moved) {
      CHECKF(s->cur == arm && (arm + 1 == cur || arm == cur + 1), "window %u: %u -> %u", w, cur, s->cur);
      if (prev_switch && w - prev_switch < r.min_gap) r.min_gap = w - prev_switch;
      prev_switch = w;
      r.last_change = w;
      r.switches++;
    }
  }
  r.final = s->cur;
  return r;
}

/* Finds the optimum from either end of both ladders, over 20 seeds, with 5 %
 * noise: the incumbent settles on the optimum within `bound` windows and
 * stays there for the rest of 400 windows. */
static void sel_converges(hak_learn_algo_t algo, unsigned bound) {
  hak_sel_params_t sp;
  hak_sel_params_default(&sp);
  sp.algo = algo;
  struct {
    const double *c;
    unsigned start, opt;
  } cases[] = {{convex6, 0, 3}, {convex6, 5, 3}, {falling6, 0, 5}, {falling6, 5, 5}, {convex6, 3, 3}};
  unsigned worst = 0;
  for (unsigned k = 0; k < sizeof cases / sizeof cases[0]; k++)
    for (uint64_t seed = 1; seed <= 20; seed++) {
      hak_sel_t s;
      sp.seed = seed * 1000003;
      hak_sel_init(&s, &sp, 6, cases[k].start);
      run_t r = run_sel(&s, cases[k].c, 0.05, seed, 400);
      CHECKF(r.final == cases[k].opt, "%s case %u seed %llu: ended on %u, optimum %u",
             algo == HAK_LEARN_ELO ? "elo" : "ucb1", k, (unsigned long long)seed, r.final, cases[k].opt);
      CHECKF(r.last_change < bound, "%s case %u seed %llu: last move at window %u (bound %u)",
             algo == HAK_LEARN_ELO ? "elo" : "ucb1", k, (unsigned long long)seed, r.last_change, bound);
      if (r.last_change > worst) worst = r.last_change;
    }
  printf(" [slowest convergence: window %u]", worst);
}

/* UCB1: a 6-step ladder with 5 % noise converges in < 50 windows from
 * either end (5 moves of >= 4 windows each: 3 winning windows + cooldown). */
static void ucb1_convex(void) { sel_converges(HAK_LEARN_UCB1, 50); }

/* ELO on the same costs, same bound. */
static void elo_convex(void) {
  sel_converges(HAK_LEARN_ELO, 50);
  /* the ratings agree: the optimum outrates its neighbours */
  hak_sel_params_t sp;
  hak_sel_params_default(&sp);
  sp.algo = HAK_LEARN_ELO;
  sp.seed = 42;
  hak_sel_t s;
  hak_sel_init(&s, &sp, 6, 0);
  run_sel(&s, convex6, 0.05, 9, 400);
  CHECK(s.cur == 3);
  CHECKF(s.rating[3] > s.rating[2] && s.rating[3] > s.rating[4], "ratings %.0f %.0f %.0f", s.rating[2],
         s.rating[3], s.rating[4]);
}

/* Feeds (arm, cost) pairs; returns the 1-based index of the update that
 * moved the incumbent, 0 if none did. */
static unsigned feed_seq(hak_sel_t *s, const unsigned *arm, const double *cost, unsigned n) {
  for (unsigned i = 0; i < n; i++)
    if (hak_sel_update(s, arm[i], cost[i])) return i + 1;
  return 0;
}

static void hysteresis_algo(hak_learn_algo_t algo) {
  hak_sel_params_t sp;
  hak_sel_params_default(&sp);
  sp.algo = algo;
  hak_sel_t s;
  /* incumbent 1 at cost 1.0 */
  unsigned a[16];
  double c[16];

  /* a challenger 5 % cheaper never takes over (deterministic, 200 windows) */
  hak_sel_init(&s, &sp, 3, 1);
  for (int i = 0; i < 4; i++) hak_sel_update(&s, 1, 1.0);
  for (int i = 0; i < 200; i++) CHECK(!hak_sel_update(&s, 2, 0.95));
  CHECK(s.cur == 1);
  /* nor 7.9 % */
  hak_sel_init(&s, &sp, 3, 1);
  hak_sel_update(&s, 1, 1.0);
  for (int i = 0; i < 200; i++) CHECK(!hak_sel_update(&s, 0, 0.921));
  CHECK(s.cur == 1);

  /* 10 % cheaper: the move comes at its third winning window, not before */
  hak_sel_init(&s, &sp, 3, 1);
  for (int i = 0; i < 4; i++) hak_sel_update(&s, 1, 1.0);
  for (int i = 0; i < 3; i++) a[i] = 2, c[i] = 0.90;
  CHECK(feed_seq(&s, a, c, 3) == 3);
  CHECK(s.cur == 2);

  /* incumbent windows in between neither count nor break the streak */
  hak_sel_init(&s, &sp, 3, 1);
  hak_sel_update(&s, 1, 1.0);
  unsigned a2[] = {0, 1, 0, 1, 1, 0};
  double c2[] = {0.9, 1.0, 0.9, 1.0, 1.0, 0.9};
  CHECK(feed_seq(&s, a2, c2, 6) == 6);
  CHECK(s.cur == 0);

  /* a losing window resets the streak: challenger windows, each after an
   * incumbent window at 1.0, of 0.8 0.8 (2 wins) 1.4 (mean ratio 1.0:
   * loss) 0.8 (0.95: loss) 0.5 0.8 0.8 (0.86 0.85 0.843: wins) */
  hak_sel_init(&s, &sp, 3, 1);
  double c3[] = {0.8, 0.8, 1.4, 0.8, 0.5, 0.8, 0.8};
  unsigned a3[14];
  double p3[14];
  for (int i = 0; i < 7; i++) a3[2 * i] = 1, p3[2 * i] = 1.0, a3[2 * i + 1] = 2, p3[2 * i + 1] = c3[i];
  CHECK(feed_seq(&s, a3, p3, 14) == 14);

  /* paired, so a drift does not make a winner: the incumbent's costs fall
   * 4 % a window, and the challenger, 5 % dearer than the incumbent's
   * window just before it, looks 30 % cheaper than the incumbent's early
   * windows but is never taken */
  hak_sel_init(&s, &sp, 3, 1);
  double level = 1.0;
  for (int i = 0; i < 3; i++) hak_sel_update(&s, 1, level), level *= 0.96;
  for (int i = 0; i < 40; i++) {
    CHECK(!hak_sel_update(&s, 1, level));
    CHECK(!hak_sel_update(&s, 2, level * 1.05));
    level *= 0.96;
  }
  CHECK(s.cur == 1);

  /* bracketed: while a heap warms up its costs fall by a factor a window
   * (2.5 x: tiers on a loaded machine); a challenger that costs what the
   * incumbent would at its time is 0.63 x the window before it, yet never
   * taken, since the incumbent's window after it brackets the pair; one 15 %
   * cheaper than that, on the same slope, is taken at its third window */
  for (int gain = 0; gain < 2; gain++) {
    hak_sel_init(&s, &sp, 3, 1);
    level = 1e6;
    for (int i = 0; i < 3; i++) hak_sel_update(&s, 1, level), level /= 2.5;
    unsigned moved_at = 0;
    for (unsigned i = 1; i <= 6 && !moved_at; i++) {
      hak_sel_update(&s, 1, level);
      level /= 2.5;
      if (hak_sel_update(&s, 2, level * (gain ? 0.85 : 1.0))) moved_at = i;
      level /= 2.5;
    }
    CHECKF(moved_at == (gain ? 3u : 0u), "bracketed, challenger at %.2f of its time's cost: moved at its window %u",
           gain ? 0.85 : 1.0, moved_at);
  }

  /* one window of a challenger at 1000 x (a stall) does not bar it for
   * good: a window says at most 4 x, and a challenger 15 % cheaper after
   * it is taken within 100 of its windows (unclipped: never) */
  hak_sel_init(&s, &sp, 3, 1);
  for (int i = 0; i < 3; i++) hak_sel_update(&s, 1, 1.0);
  unsigned taken = 0;
  for (unsigned i = 1; i <= 100 && !taken; i++) {
    hak_sel_update(&s, 1, 1.0);
    if (hak_sel_update(&s, 2, i == 1 ? 1000.0 : 0.85)) taken = i;
  }
  CHECKF(taken > 0, "a challenger with one window at 1000 x, then 0.85: not taken in 100 windows");

  /* a streak for one neighbour is not shared with the other */
  hak_sel_init(&s, &sp, 3, 1);
  hak_sel_update(&s, 1, 1.0);
  unsigned a4[] = {0, 0, 2, 2, 0, 2};
  double c4[] = {0.9, 0.9, 0.9, 0.9, 0.9, 0.9};
  CHECK(feed_seq(&s, a4, c4, 6) == 5); /* arm 0's third win */
  CHECK(s.cur == 0);

  /* two steps away is never a switch, whatever it costs */
  hak_sel_init(&s, &sp, 5, 2);
  hak_sel_update(&s, 2, 1.0);
  for (int i = 0; i < 10; i++) CHECK(!hak_sel_update(&s, 4, 0.1));
  CHECK(s.cur == 2);

  /* noisy: 5 % cheaper with 2 % noise, 2000 windows of the real loop: no
   * move; the other neighbour 20 % dearer */
  const double near5[3] = {1.2, 1.0, 0.95};
  for (uint64_t seed = 1; seed <= 5; seed++) {
    sp.seed = seed;
    hak_sel_init(&s, &sp, 3, 1);
    run_t r = run_sel(&s, near5, 0.02, seed, 2000);
    CHECKF(r.switches == 0, "seed %llu: %u moves to a 5 %% better arm", (unsigned long long)seed, r.switches);
  }
  /* ... and 15 % cheaper with the same noise: taken */
  const double near15[3] = {1.2, 1.0, 0.85};
  for (uint64_t seed = 1; seed <= 5; seed++) {
    sp.seed = seed;
    hak_sel_init(&s, &sp, 3, 1);
    run_t r = run_sel(&s, near15, 0.02, seed, 200);
    CHECK(r.final == 2);
  }
}

static void hysteresis(void) {
  hysteresis_algo(HAK_LEARN_UCB1);
  hysteresis_algo(HAK_LEARN_ELO);
}

/* Cooldown K: on a ladder where every step is 15 % cheaper (deterministic),
 * two moves are always more than K windows apart; with a long cooldown the
 * gap is exactly what the cooldown imposes (so the rule binds), and with
 * none it is the 3 winning windows. */
static void cooldown(void) {
  double steps[8];
  for (int i = 0; i < 8; i++) steps[i] = pow(0.85, i);
  for (int algo = 0; algo < 2; algo++) {
    unsigned ks[] = {0, 4, 10};
    for (unsigned i = 0; i < 3; i++) {
      hak_sel_params_t sp;
      hak_sel_params_default(&sp);
      sp.algo = (hak_learn_algo_t)algo;
      sp.cooldown = ks[i];
      hak_sel_t s;
      hak_sel_init(&s, &sp, 8, 0);
      run_t r = run_sel(&s, steps, 0.0, 1, 200);
      CHECK(r.final == 7 && r.switches == 7);
      CHECKF(r.min_gap > ks[i], "algo %d cooldown %u: moves %u windows apart", algo, ks[i], r.min_gap);
      if (ks[i] == 10) CHECKF(r.min_gap == 11, "cooldown 10: gap %u, expected 11", r.min_gap);
      /* with no cooldown, UCB1's moves are 5 windows apart: its three
       * winning windows, with the incumbent's windows between them */
      if (ks[i] == 0 && algo == HAK_LEARN_UCB1) CHECKF(r.min_gap == 5, "no cooldown: gap %u, expected 5", r.min_gap);
    }
  }
}

/* ---- the tuner ------------------------------------------------------------- */

static hak_learn_knob_t knob(const char *name, unsigned n, unsigned start, bool pinned) {
  hak_learn_knob_t k = {.name = name, .n = (uint8_t)n, .start = (uint8_t)start, .pinned = pinned};
  for (unsigned i = 0; i < n && i < HAK_LEARN_MAX_ARMS; i++) k.value[i] = i;
  return k;
}

static double bowl(unsigned x, unsigned opt, double a) { return 1.0 + a * ((double)x - opt) * ((double)x - opt); }

/* Three knobs: 6 steps (optimum 4), 4 steps (optimum 1), and a pinned one
 * (whose own optimum, 3, must never be reached). */
static const unsigned tune_opt[3] = {4, 1, 3};

static double tune_cost_product(const uint8_t *cfg) {
  return bowl(cfg[0], tune_opt[0], 0.2) * bowl(cfg[1], tune_opt[1], 0.2) * bowl(cfg[2], tune_opt[2], 0.2);
}
static double tune_cost_sum(const uint8_t *cfg) {
  return bowl(cfg[0], tune_opt[0], 0.2) + bowl(cfg[1], tune_opt[1], 0.3) + bowl(cfg[2], tune_opt[2], 0.1);
}

static void tuner_case(hak_learn_algo_t algo, double (*cost)(const uint8_t *), bool exact, unsigned stable_m) {
  hak_learn_knob_t kn[3] = {knob("a", 6, 0, false), knob("b", 4, 3, false), knob("c", 6, 0, true)};
  hak_sel_params_t sp;
  hak_sel_params_default(&sp);
  sp.algo = algo;
  for (uint64_t seed = 1; seed <= 10; seed++) {
    sp.seed = seed;
    hak_tuner_t t;
    hak_tuner_init(&t, kn, 3, &sp, stable_m, 48);
    uint8_t cfg[3], best[3], prev[3];
    hak_tuner_best(&t, prev);
    uint64_t rs = seed * 31;
    for (unsigned w = 0; w < 600; w++) {
      int k = hak_tuner_pick(&t, cfg);
      hak_tuner_best(&t, best);
      unsigned differ = 0;
      for (unsigned i = 0; i < 3; i++) {
        if (cfg[i] == best[i]) continue;
        differ++;
        CHECKF((int)i == k && abs((int)cfg[i] - (int)best[i]) == 1, "window %u: knob %u at %u, incumbent %u", w,
               i, cfg[i], best[i]);
      }
      CHECK(differ <= 1);
      CHECKF(cfg[2] == 0, "window %u: the pinned knob was moved to %u", w, cfg[2]);
      CHECK(k != 2);
      hak_tuner_update(&t, k, k >= 0 ? cfg[k] : 0, noisy(&rs, cost(cfg), 0.05));
      hak_tuner_best(&t, best);
      unsigned moved = 0;
      for (unsigned i = 0; i < 3; i++) {
        if (best[i] == prev[i]) continue;
        moved++;
        CHECKF(abs((int)best[i] - (int)prev[i]) == 1, "window %u: incumbent %u jumped %u -> %u", w, i, prev[i],
               best[i]);
      }
      CHECK(moved <= 1);
      for (unsigned i = 0; i < 3; i++) prev[i] = best[i];
    }
    for (unsigned i = 0; i < 2; i++) {
      int off = abs((int)best[i] - (int)tune_opt[i]);
      CHECKF(exact ? off == 0 : off <= 1, "%s seed %llu algo %d m %u: knob %u ended at %u, optimum %u",
             exact ? "product" : "sum", (unsigned long long)seed, algo, stable_m, i, best[i], tune_opt[i]);
    }
    CHECK(best[2] == 0);
    CHECK(hak_tuner_settled(&t));
  }
}

/* Separable costs, 5 % noise, 600 windows, 10 seeds: the multiplicative
 * one (each knob's step >= 20 % of the total) reaches the exact optimum,
 * the additive one (steps diluted to 3-10 % of the total) within one step
 * (turns of stable_m = 6 windows; and of 1, which must still try every
 * neighbour before a turn ends);
 * the pinned knob never moves, no window is more than one step from the
 * incumbents, and incumbents move one knob, one step at a time. */
static void tuner(void) {
  for (int algo = 0; algo < 2; algo++) {
    tuner_case((hak_learn_algo_t)algo, tune_cost_product, true, 6);
    tuner_case((hak_learn_algo_t)algo, tune_cost_sum, false, 6);
    /* a turn shorter than a look at the neighbours still looks at them */
    tuner_case((hak_learn_algo_t)algo, tune_cost_product, true, 1);
  }
}

/* ---- the lifecycle ---------------------------------------------------------- */

#define NCLASS 72
#define HIST_DRAWS 4096 /* = hist_min: every window's histogram counts */

/* A synthetic program: its phase decides the size-class distribution and
 * which configuration is cheapest. */
typedef struct {
  int phase;
  uint64_t rng;
  double noise;
  double cdf[3][NCLASS];
} world_t;

/* Histograms: phases 1 and 4 draw Large-ish classes 40-71, the others small
 * classes (geometric from class 0).  Costs: each phase has its optimum
 * (world_opt); phase 2 moves phase 0's by one step on knob 0; phase 3 is
 * phase 0 with a flat neighbour (knob 1 at 5 only 2 % dearer than at 4);
 * phase 4 is phase 0 at 40 x the cost. */
static void world_init(world_t *w, uint64_t seed) {
  *w = (world_t){.rng = seed, .noise = 0.05};
  double m[2][NCLASS], tot[2] = {0, 0};
  for (int c = 0; c < NCLASS; c++) {
    m[0][c] = c < 24 ? pow(0.8, c) : 0.001;
    m[1][c] = c >= 40 ? 1.0 + (c % 5) : 0.002;
    tot[0] += m[0][c];
    tot[1] += m[1][c];
  }
  for (int k = 0; k < 2; k++) {
    double acc = 0;
    for (int c = 0; c < NCLASS; c++) w->cdf[k][c] = (acc += m[k][c] / tot[k]);
  }
}

static void world_hist(world_t *w, uint64_t *h) {
  const double *cdf = w->cdf[w->phase == 1 || w->phase == 4 ? 1 : 0];
  for (int c = 0; c < NCLASS; c++) h[c] = 0;
  for (int i = 0; i < HIST_DRAWS; i++) {
    double u = urand(&w->rng);
    int lo = 0, hi = NCLASS - 1;
    while (lo < hi) {
      int mid = (lo + hi) / 2;
      if (u <= cdf[mid]) hi = mid;
      else lo = mid + 1;
    }
    h[lo]++;
  }
}

/* knob 0 (big threshold, 6 steps), knob 1 (purge delay, 6 steps), knob 2
 * (W_MAX, 4 steps, pinned by the user at 0) */
static const unsigned world_opt[5][2] = {{1, 4}, {4, 1}, {2, 4}, {1, 4}, {1, 4}};

static double world_cost(world_t *w, const uint8_t *cfg) {
  const unsigned *o = world_opt[w->phase];
  double c1 = w->phase == 3 && cfg[1] == 5 ? 1.02 : bowl(cfg[1], o[1], 0.2);
  double c = bowl(cfg[0], o[0], 0.2) * c1 * bowl(cfg[2], 2, 0.2);
  if (w->phase == 4) c *= 40; /* phase 0's optimum, Large blocks at 40 x the cost per op */
  return noisy(&w->rng, c, w->noise);
}

static void world_knobs(hak_learn_knob_t *k) {
  static const double big[] = {64 << 10, 128 << 10, 256 << 10, 512 << 10, 1 << 20, 2 << 20};
  static const double purge[] = {0, 10, 50, 250, 1000, 5000};
  static const double wmax[] = {1.0, 1.25, 1.5, 2.0};
  k[0] = (hak_learn_knob_t){.name = "big_threshold", .n = 6, .start = 5};
  k[1] = (hak_learn_knob_t){.name = "purge_delay_ms", .n = 6, .start = 2};
  k[2] = (hak_learn_knob_t){.name = "w_max", .n = 4, .start = 0, .pinned = true};
  for (int i = 0; i < 6; i++) k[0].value[i] = big[i], k[1].value[i] = purge[i];
  for (int i = 0; i < 4; i++) k[2].value[i] = wmax[i];
}

typedef struct {
  unsigned windows;
  unsigned challengers, canary_windows, learn_entries, transitions;
  hak_learn_state_t trail[32]; /* states entered, in order */
  unsigned ntrail;
} trace_t;

/* Runs up to `max` windows, stopping early once the state is `until` (if
 * until >= 0).  Checks on every window that the pinned knob stays put and
 * that the applied config is at most one step from the best on one knob. */
static unsigned run_world(hak_learn_t *l, world_t *w, trace_t *tr, unsigned max, int until) {
  unsigned n = 0;
  uint64_t h[NCLASS];
  while (n < max && !(until >= 0 && hak_learn_state(l) == (hak_learn_state_t)until)) {
    hak_learn_decision_t d;
    hak_learn_next(l, &d);
    const uint8_t *best = hak_learn_best(l);
    unsigned differ = 0;
    for (unsigned k = 0; k < l->nknobs; k++)
      if (d.cfg[k] != best[k]) differ++, CHECK(abs((int)d.cfg[k] - (int)best[k]) == 1 && (int)k == d.knob);
    CHECK(differ <= 1);
    CHECK(d.cfg[2] == l->knob[2].start);
    CHECK(d.state == hak_learn_state(l));
    if (d.state == HAK_LEARN_STATE_CANARY) {
      tr->canary_windows++;
      tr->challengers += d.challenger;
    } else {
      CHECK(!d.challenger);
    }
    if (d.state == HAK_LEARN_STATE_FROZEN) CHECK(differ == 0);
    world_hist(w, h);
    unsigned ev = hak_learn_feed(l, world_cost(w, d.cfg), h, NCLASS);
    CHECK(memcmp(hak_learn_applied(l), d.cfg, l->nknobs) == 0);
    if (ev & HAK_LEARN_EV_STATE) {
      tr->transitions++;
      if (tr->ntrail < 32) tr->trail[tr->ntrail++] = hak_learn_state(l);
      if (hak_learn_state(l) == HAK_LEARN_STATE_LEARN) tr->learn_entries++;
    }
    n++;
    tr->windows++;
  }
  return n;
}

static void params_for_test(hak_learn_params_t *p, hak_learn_algo_t algo, uint64_t seed) {
  hak_learn_params_default(p);
  p->sel.algo = algo;
  p->sel.seed = seed;
  p->freeze_after = 0; /* convergence, not the budget, must end LEARN here */
}

static bool best_is(const hak_learn_t *l, unsigned a, unsigned b) {
  const uint8_t *x = hak_learn_best(l);
  return x[0] == a && x[1] == b && x[2] == 0;
}

/* LEARN -> FROZEN -> CANARY on phase 0; 300 quiet windows; the histogram
 * shifts (phase 1) -> LEARN after exactly shift_k = 3 windows -> FROZEN on
 * phase 1's optimum -> CANARY.  Bounds: each LEARN stretch converges in
 * < 250 windows (2 movable knobs, 5 % noise); 5 % of CANARY windows go to
 * a challenger (+-1 %). */
static void lifecycle_walk_algo(hak_learn_algo_t algo) {
  unsigned worst = 0;
  for (uint64_t seed = 1; seed <= 5; seed++) {
    hak_learn_params_t p;
    params_for_test(&p, algo, seed);
    hak_learn_knob_t kn[3];
    world_knobs(kn);
    hak_learn_t l;
    CHECK(hak_learn_init(&l, &p, kn, 3) == 0);
    CHECK(hak_learn_state(&l) == HAK_LEARN_STATE_LEARN);
    world_t w;
    world_init(&w, seed * 101);
    trace_t tr = {0};

    unsigned n = run_world(&l, &w, &tr, 1000, HAK_LEARN_STATE_FROZEN);
    CHECKF(n < 250, "seed %llu: first freeze after %u windows", (unsigned long long)seed, n);
    if (n > worst) worst = n;
    CHECK(strstr(hak_learn_reason(&l), "converged") != NULL);
    CHECKF(best_is(&l, 1, 4), "seed %llu: froze on %u,%u", (unsigned long long)seed, hak_learn_best(&l)[0],
           hak_learn_best(&l)[1]);
    CHECK(hak_learn_p99(&l) > 0 && hak_learn_p50(&l) > 0 && hak_learn_p99(&l) >= hak_learn_p50(&l));

    run_world(&l, &w, &tr, 1, -1); /* canary_every = 1 */
    CHECK(hak_learn_state(&l) == HAK_LEARN_STATE_CANARY);
    trace_t before = tr;
    run_world(&l, &w, &tr, 300, -1);
    CHECK(tr.transitions == before.transitions);
    CHECK(hak_learn_state(&l) == HAK_LEARN_STATE_CANARY);
    double frac = (double)(tr.challengers - before.challengers) / (tr.canary_windows - before.canary_windows);
    CHECKF(frac >= 0.04 && frac <= 0.06, "challenger share %.3f", frac);
    CHECK(hak_learn_shift(&l) >= 0 && hak_learn_shift(&l) < 0.3);

    w.phase = 1;
    before = tr;
    run_world(&l, &w, &tr, 2, -1);
    CHECK(tr.transitions == before.transitions && hak_learn_state(&l) == HAK_LEARN_STATE_CANARY);
    run_world(&l, &w, &tr, 1, -1);
    CHECK(tr.transitions == before.transitions + 1 && hak_learn_state(&l) == HAK_LEARN_STATE_LEARN);
    CHECK(strstr(hak_learn_reason(&l), "shift") != NULL);
    CHECK(hak_learn_shift(&l) > 1.0);
    CHECK(best_is(&l, 1, 4)); /* the position is kept */
    hak_learn_est_t e;
    CHECK(hak_learn_estimate(&l, 0, 1, &e) && e.n == 0 && e.incumbent); /* the estimates are not */

    n = run_world(&l, &w, &tr, 1000, HAK_LEARN_STATE_FROZEN);
    CHECKF(n < 250, "seed %llu: second freeze after %u windows", (unsigned long long)seed, n);
    if (n > worst) worst = n;
    CHECKF(best_is(&l, 4, 1), "seed %llu: refroze on %u,%u", (unsigned long long)seed, hak_learn_best(&l)[0],
           hak_learn_best(&l)[1]);
    run_world(&l, &w, &tr, 50, -1);
    CHECK(hak_learn_state(&l) == HAK_LEARN_STATE_CANARY);

    static const hak_learn_state_t walk[] = {HAK_LEARN_STATE_FROZEN, HAK_LEARN_STATE_CANARY,
                                             HAK_LEARN_STATE_LEARN, HAK_LEARN_STATE_FROZEN,
                                             HAK_LEARN_STATE_CANARY};
    CHECKF(tr.ntrail == 5, "%u transitions", tr.ntrail);
    for (unsigned i = 0; i < 5 && i < tr.ntrail; i++)
      CHECKF(tr.trail[i] == walk[i], "transition %u: %s", i, hak_learn_state_name(tr.trail[i]));
  }
  printf(" [%s slowest freeze: %u windows]", algo == HAK_LEARN_ELO ? "elo" : "ucb1", worst);
}

static void lifecycle_walk(void) {
  lifecycle_walk_algo(HAK_LEARN_UCB1);
  lifecycle_walk_algo(HAK_LEARN_ELO);
}

/* A learner on the test world's knobs, and the world (seeded seed * 13). */
static void world_setup(hak_learn_t *l, world_t *w, hak_learn_params_t *p, hak_learn_knob_t *kn, int algo,
                        uint64_t seed) {
  params_for_test(p, (hak_learn_algo_t)algo, seed);
  world_knobs(kn);
  hak_learn_init(l, p, kn, 3);
  world_init(w, seed * 13);
}

/* A workload that comes back to a mix it had: phase 0, then phase 1, each
 * learned and frozen; back to phase 0, the shift recalls phase 0's policy
 * after the same shift_k = 3 windows, FROZEN at once, no LEARN window; and
 * phase 1's the same way.  A mix never seen (phase 1 when only phase 0
 * was learned) is learned, as before; a mix learned before that comes back
 * during LEARN is recalled at its third window. */
static void lifecycle_recall(void) {
  for (int algo = 0; algo < 2; algo++)
    for (uint64_t seed = 1; seed <= 5; seed++) {
      hak_learn_params_t p;
      hak_learn_knob_t kn[3];
      hak_learn_t l;
      world_t w;
      world_setup(&l, &w, &p, kn, algo, seed);
      trace_t tr = {0};
      run_world(&l, &w, &tr, 1000, HAK_LEARN_STATE_FROZEN);
      run_world(&l, &w, &tr, 100, -1);
      CHECK(best_is(&l, 1, 4) && hak_learn_state(&l) == HAK_LEARN_STATE_CANARY);
      w.phase = 1; /* never seen: learned */
      run_world(&l, &w, &tr, 3, -1);
      CHECK(hak_learn_state(&l) == HAK_LEARN_STATE_LEARN && tr.learn_entries == 1);
      run_world(&l, &w, &tr, 1000, HAK_LEARN_STATE_FROZEN);
      run_world(&l, &w, &tr, 100, -1);
      CHECKF(best_is(&l, 4, 1), "seed %llu: phase 1 froze on %u,%u", (unsigned long long)seed, hak_learn_best(&l)[0],
             hak_learn_best(&l)[1]);
      for (int round = 0; round < 3; round++) {
        w.phase = round % 2 ? 1 : 0;
        unsigned learn_before = tr.learn_entries, recalls = l.recalls;
        run_world(&l, &w, &tr, 2, -1);
        CHECK(hak_learn_state(&l) == HAK_LEARN_STATE_CANARY && l.recalls == recalls);
        run_world(&l, &w, &tr, 1, -1); /* the third shifted window */
        CHECKF(hak_learn_state(&l) == HAK_LEARN_STATE_FROZEN && l.recalls == recalls + 1,
               "algo %d seed %llu round %d: %s after the shift (%s)", algo, (unsigned long long)seed, round,
               hak_learn_state_name(hak_learn_state(&l)), hak_learn_reason(&l));
        CHECK(strstr(hak_learn_reason(&l), "recalled") != NULL);
        CHECK(w.phase == 0 ? best_is(&l, 1, 4) : best_is(&l, 4, 1));
        /* the canary watches the recalled policy, and the mix stays: no LEARN */
        run_world(&l, &w, &tr, 300, -1);
        CHECKF(tr.learn_entries == learn_before, "algo %d seed %llu round %d: LEARN again (%s)", algo,
               (unsigned long long)seed, round, hak_learn_reason(&l));
        CHECK(hak_learn_state(&l) == HAK_LEARN_STATE_CANARY);
        CHECK(w.phase == 0 ? best_is(&l, 1, 4) : best_is(&l, 4, 1));
      }

      /* From LEARN: a stretch on a new mix that the workload leaves, for
       * one learned before, before it converges.  The third window of the
       * old mix (shift_k) recalls its policy; the stretch is dropped, not
       * remembered, so its mix is learned anew when it comes back. */
      hak_learn_init(&l, &p, kn, 3);
      tr = (trace_t){0};
      w.phase = 0;
      run_world(&l, &w, &tr, 1000, HAK_LEARN_STATE_FROZEN);
      run_world(&l, &w, &tr, 100, -1);
      w.phase = 1;
      run_world(&l, &w, &tr, 3 + 10, -1); /* shifted, then 10 windows of LEARN */
      CHECK(hak_learn_state(&l) == HAK_LEARN_STATE_LEARN && tr.learn_entries == 1);
      w.phase = 0;
      unsigned recalls = l.recalls;
      run_world(&l, &w, &tr, 2, -1);
      CHECK(hak_learn_state(&l) == HAK_LEARN_STATE_LEARN && l.recalls == recalls); /* not yet */
      run_world(&l, &w, &tr, 1, -1);
      CHECKF(hak_learn_state(&l) == HAK_LEARN_STATE_FROZEN && l.recalls == recalls + 1 && best_is(&l, 1, 4),
             "algo %d seed %llu: %s on %u,%u after the mix came back during LEARN", algo, (unsigned long long)seed,
             hak_learn_state_name(hak_learn_state(&l)), hak_learn_best(&l)[0], hak_learn_best(&l)[1]);
      run_world(&l, &w, &tr, 100, -1);
      w.phase = 1;
      run_world(&l, &w, &tr, 3, -1);
      CHECK(hak_learn_state(&l) == HAK_LEARN_STATE_LEARN && tr.learn_entries == 2 && l.recalls == recalls + 1);
    }
}

/* Nothing changes: 2000 windows of 5 % cost noise and multinomial
 * histograms (4096 draws) after the freeze, 3 seeds, both algorithms, both
 * canary schedules (always; and 10 FROZEN / 10 CANARY): never a LEARN, even
 * though one challenger is only 2 % dearer than the best (phase 3). */
static void lifecycle_stationary(void) {
  for (int algo = 0; algo < 2; algo++)
    for (int sched = 0; sched < 2; sched++)
      for (uint64_t seed = 1; seed <= 3; seed++) {
        hak_learn_params_t p;
        params_for_test(&p, (hak_learn_algo_t)algo, seed);
        if (sched) p.canary_every = 10, p.canary_len = 10;
        hak_learn_knob_t kn[3];
        world_knobs(kn);
        hak_learn_t l;
        hak_learn_init(&l, &p, kn, 3);
        world_t w;
        world_init(&w, seed * 7);
        w.phase = 3;
        trace_t tr = {0};
        run_world(&l, &w, &tr, 1000, HAK_LEARN_STATE_FROZEN);
        CHECK(hak_learn_state(&l) == HAK_LEARN_STATE_FROZEN && best_is(&l, 1, 4));
        trace_t st = {0};
        run_world(&l, &w, &st, 2000, -1);
        CHECKF(st.learn_entries == 0, "algo %d sched %d seed %llu: %u false LEARN (%s)", algo, sched,
               (unsigned long long)seed, st.learn_entries, hak_learn_reason(&l));
        if (sched) CHECKF(st.transitions >= 190, "%u FROZEN/CANARY alternations", st.transitions);
        else CHECK(st.transitions == 1); /* the one FROZEN -> CANARY */
        CHECK(st.challengers > 0);
      }
}

/* The costs move under the frozen policy, the histogram does not (phase 2:
 * knob 0's optimum moves one step, 1 -> 2): a canary challenger wins, the
 * state goes back to LEARN with the challenger adopted, and refreezes on
 * the new optimum.  Bound: found within 600 windows at 5 %. */
static void canary_challenger(void) {
  for (int algo = 0; algo < 2; algo++)
    for (uint64_t seed = 1; seed <= 5; seed++) {
      hak_learn_params_t p;
      hak_learn_knob_t kn[3];
      hak_learn_t l;
      world_t w;
      world_setup(&l, &w, &p, kn, algo, seed);
      trace_t tr = {0};
      run_world(&l, &w, &tr, 1000, HAK_LEARN_STATE_CANARY);
      CHECK(best_is(&l, 1, 4));
      w.phase = 2;
      unsigned n = run_world(&l, &w, &tr, 600, HAK_LEARN_STATE_LEARN);
      CHECKF(hak_learn_state(&l) == HAK_LEARN_STATE_LEARN, "seed %llu: no challenger won in %u windows",
             (unsigned long long)seed, n);
      CHECK(strstr(hak_learn_reason(&l), "challenger") != NULL);
      CHECK(best_is(&l, 2, 4)); /* adopted at once */
      run_world(&l, &w, &tr, 1000, HAK_LEARN_STATE_FROZEN);
      CHECK(best_is(&l, 2, 4));
    }
}

static void feed_phase(hak_learn_t *l, world_t *w, unsigned n) {
  uint64_t h[NCLASS];
  for (unsigned i = 0; i < n; i++) {
    hak_learn_decision_t d;
    hak_learn_next(l, &d);
    world_hist(w, h);
    hak_learn_feed(l, world_cost(w, d.cfg), h, NCLASS);
  }
}

/* Starting frozen (a policy file): FROZEN on the given config, the idle
 * count and skip(); CANARY learns the reference histogram from its first
 * ref_windows windows, then detects a shift; a given reference is used at
 * once.  Every knob pinned: nothing to learn, FROZEN at once. */
/* Two workloads in turn, 7 windows of small objects and 3 of Large blocks
 * at 40 x the cost per window, both cheapest where the learner starts: it
 * must not move.  A neighbour's window that follows a change of mix is not
 * compared with the incumbent's window before it (that pair compares two
 * workloads): played in the first cheap window after the dear ones, a
 * neighbour looked 40 x better, and three of those in a row moved it. */
static void lifecycle_phases(void) {
  unsigned worst = 0;
  for (int algo = 0; algo < 2; algo++)
    for (uint64_t seed = 1; seed <= 10; seed++) {
      world_t w;
      world_init(&w, seed * 7919);
      hak_learn_knob_t k[3];
      world_knobs(k);
      k[0].start = 1;
      k[1].start = 4;
      hak_learn_params_t p;
      params_for_test(&p, (hak_learn_algo_t)algo, seed);
      hak_learn_t l;
      CHECK(hak_learn_init(&l, &p, k, 3) == 0);
      unsigned moves = 0;
      uint64_t h[NCLASS];
      for (unsigned i = 0; i < 400; i++) {
        w.phase = i % 10 < 7 ? 0 : 4;
        hak_learn_decision_t d;
        hak_learn_next(&l, &d);
        world_hist(&w, h);
        moves += (hak_learn_feed(&l, world_cost(&w, d.cfg), h, NCLASS) & HAK_LEARN_EV_BEST) != 0;
      }
      CHECKF(moves == 0 && best_is(&l, 1, 4), "%s seed %llu: %u moves, best %u %u", algo ? "elo" : "ucb1",
             (unsigned long long)seed, moves, hak_learn_best(&l)[0], hak_learn_best(&l)[1]);
      CHECK(l.breaks >= 40); /* every change of mix in LEARN, 80 in all */
      if (l.breaks > worst) worst = (unsigned)l.breaks;
    }
  printf("[most breaks: %u] ", worst);
}

/* A trial so slow that its short window holds few allocations, most of
 * them the busy window before it counted late (p.carry): its histogram
 * is not the workload's (here the other phase's mix, 512 draws against
 * 4096), and it must not break the pair.  Broken, the trial counted as
 * not played and was played again, window after window (large-ws under
 * learning: a 16 ms trial of a 1 MiB threshold 15 times in 1.3 s).
 * Without the carry the same run breaks at every trial. */
static unsigned trial_tail_run(double carry, uint64_t seed, unsigned *trials, bool *frozen) {
  world_t w;
  world_init(&w, seed * 104729);
  hak_learn_knob_t k[3];
  world_knobs(k);
  k[0].start = 1; /* phase 0's optimum: no move to make */
  k[1].start = 4;
  hak_learn_params_t p;
  params_for_test(&p, HAK_LEARN_UCB1, seed);
  p.carry = carry;
  hak_learn_t l;
  CHECK(hak_learn_init(&l, &p, k, 3) == 0);
  *trials = 0;
  uint64_t h[NCLASS];
  for (unsigned i = 0; i < 300 && hak_learn_state(&l) == HAK_LEARN_STATE_LEARN; i++) {
    hak_learn_decision_t d;
    hak_learn_next(&l, &d);
    bool trial = d.knob >= 0 && d.cfg[d.knob] != hak_learn_best(&l)[d.knob];
    w.phase = trial ? 1 : 0;
    world_hist(&w, h);
    if (trial)
      for (int c = 0; c < NCLASS; c++) h[c] /= 8;
    w.phase = 0;
    double cost = world_cost(&w, d.cfg) * (trial ? 20 : 1);
    *trials += trial;
    hak_learn_feed(&l, cost, h, NCLASS);
  }
  *frozen = hak_learn_state(&l) == HAK_LEARN_STATE_FROZEN;
  CHECKF(best_is(&l, 1, 4), "carry %.2f seed %llu: best %u %u", carry, (unsigned long long)seed,
         hak_learn_best(&l)[0], hak_learn_best(&l)[1]);
  return (unsigned)l.breaks;
}

static void trial_tail(void) {
  unsigned most = 0, most_bare = 0;
  for (uint64_t seed = 1; seed <= 10; seed++) {
    unsigned trials, bare_trials;
    bool frozen, bare_frozen;
    unsigned breaks = trial_tail_run(0.05, seed, &trials, &frozen);
    CHECKF(breaks == 0 && frozen && trials <= 8, "seed %llu: %u breaks, %u trials, %s", (unsigned long long)seed,
           breaks, trials, frozen ? "frozen" : "still learning");
    unsigned bare = trial_tail_run(0, seed, &bare_trials, &bare_frozen);
    CHECKF(bare > 0 && bare_trials > trials, "seed %llu without the carry: %u breaks, %u trials against %u",
           (unsigned long long)seed, bare, bare_trials, trials);
    if (trials > most) most = trials;
    if (bare_trials > most_bare) most_bare = bare_trials;
  }
  printf("[most trials: %u; %u without the carry] ", most, most_bare);
}

static void lifecycle_start_frozen(void) {
  hak_learn_params_t p;
  params_for_test(&p, HAK_LEARN_UCB1, 1);
  p.start = HAK_LEARN_STATE_FROZEN;
  p.canary_every = 5;
  hak_learn_knob_t kn[3];
  world_knobs(kn);
  kn[0].start = 3;
  hak_learn_t l;
  CHECK(hak_learn_init(&l, &p, kn, 3) == 0);
  CHECK(hak_learn_state(&l) == HAK_LEARN_STATE_FROZEN);
  CHECK(strstr(hak_learn_reason(&l), "frozen") != NULL);
  CHECK(hak_learn_best(&l)[0] == 3 && hak_learn_best(&l)[1] == 2);
  CHECK(hak_learn_idle(&l) == 5);
  CHECK(hak_learn_skip(&l, 4) == 0 && hak_learn_idle(&l) == 1);
  CHECK(hak_learn_skip(&l, 1) == HAK_LEARN_EV_STATE);
  CHECK(hak_learn_state(&l) == HAK_LEARN_STATE_CANARY && hak_learn_idle(&l) == 0);
  world_t w;
  world_init(&w, 5);
  feed_phase(&l, &w, 8); /* the reference */
  CHECK(hak_learn_state(&l) == HAK_LEARN_STATE_CANARY);
  w.phase = 1;
  feed_phase(&l, &w, 2);
  CHECK(hak_learn_state(&l) == HAK_LEARN_STATE_CANARY);
  feed_phase(&l, &w, 1);
  CHECK(hak_learn_state(&l) == HAK_LEARN_STATE_LEARN);

  /* a given reference: a shift is seen from the first CANARY windows */
  p.canary_every = 1;
  CHECK(hak_learn_init(&l, &p, kn, 3) == 0);
  uint64_t h[NCLASS];
  w.phase = 0;
  world_hist(&w, h);
  hak_learn_set_reference(&l, h, NCLASS);
  w.phase = 1;
  feed_phase(&l, &w, 4); /* 1 FROZEN + 3 shifted CANARY windows */
  CHECK(hak_learn_state(&l) == HAK_LEARN_STATE_LEARN);

  /* canary_every = 0: FROZEN for good, sleeping allowed forever */
  p.canary_every = 0;
  hak_learn_init(&l, &p, kn, 3);
  CHECK(hak_learn_idle(&l) == UINT32_MAX);
  feed_phase(&l, &w, 100);
  CHECK(hak_learn_skip(&l, 1000000) == 0 && hak_learn_state(&l) == HAK_LEARN_STATE_FROZEN);

  /* every knob pinned */
  p.start = HAK_LEARN_STATE_LEARN;
  kn[0].pinned = kn[1].pinned = true;
  CHECK(hak_learn_init(&l, &p, kn, 3) == 0);
  CHECK(hak_learn_state(&l) == HAK_LEARN_STATE_FROZEN);
  CHECK(strstr(hak_learn_reason(&l), "pinned") != NULL);
  hak_learn_decision_t d;
  hak_learn_next(&l, &d);
  CHECK(d.knob == -1 && !d.challenger && d.cfg[0] == 3);

  /* the learning budget: freeze_after windows */
  params_for_test(&p, HAK_LEARN_UCB1, 3);
  p.freeze_after = 40;
  p.settle_min = 1000; /* p99 never settles: only the budget can end LEARN */
  world_knobs(kn);
  hak_learn_init(&l, &p, kn, 3);
  feed_phase(&l, &w, 39);
  CHECK(hak_learn_state(&l) == HAK_LEARN_STATE_LEARN);
  feed_phase(&l, &w, 1);
  CHECK(hak_learn_state(&l) == HAK_LEARN_STATE_FROZEN);
  CHECK(strstr(hak_learn_reason(&l), "budget") != NULL);
}

/* Knobs that act on some allocations only (bin_lo).  Bins 0-7 are small
 * classes, 8-9 "Large"; knob 0 acts on everything (optimum 4), knob 1 on
 * the Large bins alone (optimum 1, starting at 5).  While no window holds
 * a Large allocation, knob 1's arms cannot differ: it is never played off
 * its incumbent, in LEARN or as a canary challenger, and LEARN ends sooner
 * than when the same flat knob is explored (bin_lo 0).  Once Large
 * allocations come, the shift sends the learner back to LEARN and knob 1
 * is learned. */
#define UB 10
static void unused_hist(uint64_t *rs, bool large, uint64_t *h) {
  for (int b = 0; b < UB; b++) h[b] = 0;
  for (int i = 0; i < HIST_DRAWS; i++) {
    uint64_t r = rng_next(rs);
    h[large && r % 4 == 0 ? 8 + (r >> 8) % 2 : (r >> 8) % 8]++;
  }
}

static unsigned unused_run(hak_learn_t *l, uint64_t *rs, bool large, unsigned max, int until, unsigned *off) {
  unsigned n = 0;
  uint64_t h[UB];
  while (n < max && !(until >= 0 && hak_learn_state(l) == (hak_learn_state_t)until)) {
    hak_learn_decision_t d;
    hak_learn_next(l, &d);
    if (d.cfg[1] != hak_learn_best(l)[1]) (*off)++;
    unused_hist(rs, large, h);
    double c = bowl(d.cfg[0], 4, 0.2) * (large ? bowl(d.cfg[1], 1, 0.2) : 1.0);
    hak_learn_feed(l, noisy(rs, c, 0.05), h, UB);
    n++;
  }
  return n;
}

static void unused_knobs(void) {
  unsigned worst = 0, worst_flat = 0;
  for (int algo = 0; algo < 2; algo++)
    for (uint64_t seed = 1; seed <= 5; seed++) {
      hak_learn_params_t p;
      params_for_test(&p, (hak_learn_algo_t)algo, seed);
      hak_learn_knob_t kn[2] = {knob("all", 6, 2, false), knob("large", 6, 5, false)};
      /* the same flat knob, explored: how long LEARN takes without bin_lo */
      hak_learn_t l;
      CHECK(hak_learn_init(&l, &p, kn, 2) == 0);
      uint64_t rs = seed * 977;
      unsigned off = 0, flat = unused_run(&l, &rs, false, 2000, HAK_LEARN_STATE_FROZEN, &off);
      CHECK(off > 0);

      kn[1].bin_lo = 8;
      CHECK(hak_learn_init(&l, &p, kn, 2) == 0);
      rs = seed * 977;
      off = 0;
      unsigned n = unused_run(&l, &rs, false, 2000, HAK_LEARN_STATE_FROZEN, &off);
      CHECKF(hak_learn_state(&l) == HAK_LEARN_STATE_FROZEN && n < flat,
             "%s seed %llu: froze after %u windows, %u when the knob is explored", algo ? "elo" : "ucb1",
             (unsigned long long)seed, n, flat);
      CHECK(hak_learn_best(&l)[0] == 4 && hak_learn_best(&l)[1] == 5);
      CHECKF(l.unused_windows <= 1, "%llu windows on the unused knob's turn", (unsigned long long)l.unused_windows);
      if (n > worst) worst = n;
      if (flat > worst_flat) worst_flat = flat;
      unused_run(&l, &rs, false, 1000, -1, &off); /* CANARY: challengers of knob 0 only */
      CHECKF(off == 0, "%s seed %llu: the unused knob was played off its incumbent %u times",
             algo ? "elo" : "ucb1", (unsigned long long)seed, off);
      CHECK(hak_learn_state(&l) == HAK_LEARN_STATE_CANARY);

      unused_run(&l, &rs, true, 3, -1, &off); /* the shift: back to LEARN */
      CHECK(hak_learn_state(&l) == HAK_LEARN_STATE_LEARN);
      unused_run(&l, &rs, true, 2000, HAK_LEARN_STATE_FROZEN, &off);
      CHECKF(hak_learn_best(&l)[0] == 4 && hak_learn_best(&l)[1] == 1, "%s seed %llu: froze on %u,%u",
             algo ? "elo" : "ucb1", (unsigned long long)seed, hak_learn_best(&l)[0], hak_learn_best(&l)[1]);
    }
  printf("[slowest freeze: %u windows, %u with the knob explored] ", worst, worst_flat);
}

/* A knob whose step down saves memory and nothing else (mem_down): knob 0
 * a cache of 5 steps starting at 2, whose time is 100 at 2 and up and
 * half as much again per step below; its memory costs m x (step + 1).
 * Knob 1 (optimum 1) keeps the learner busy with a second knob.  With
 * m = 1 memory is 3 % of the cost at step 2: a step down cannot win the
 * 8 % a move needs, and is never played, in LEARN or as a canary's
 * challenger; the same knob without mem_down is played there (so the
 * bound, not the costs, keeps it off).  With the time flat and m = 40
 * (memory 55 % of the cost) the steps down are tried and taken: the
 * learner freezes at 0. */
static unsigned memdown_run(hak_learn_t *l, uint64_t *rs, double m, bool flat, unsigned max, int until,
                            unsigned *down) {
  unsigned n = 0;
  uint64_t h[UB];
  while (n < max && !(until >= 0 && hak_learn_state(l) == (hak_learn_state_t)until)) {
    hak_learn_decision_t d;
    hak_learn_next(l, &d);
    if (d.cfg[0] < 2) (*down)++;
    unused_hist(rs, false, h);
    unsigned a = d.cfg[0];
    double t = flat || a >= 2 ? 100.0 : 100.0 * (1.0 + 0.5 * (2 - a));
    double mem = m * (a + 1), c = (t + mem) * bowl(d.cfg[1], 1, 0.2);
    double noisy_c = noisy(rs, c, 0.05);
    hak_learn_mem_share(l, mem * bowl(d.cfg[1], 1, 0.2) / noisy_c);
    hak_learn_feed(l, noisy_c, h, UB);
    n++;
  }
  return n;
}

static void mem_down(void) {
  for (int algo = 0; algo < 2; algo++)
    for (uint64_t seed = 1; seed <= 5; seed++) {
      hak_learn_params_t p;
      params_for_test(&p, (hak_learn_algo_t)algo, seed);
      const char *an = algo ? "elo" : "ucb1";
      hak_learn_knob_t kn[2] = {knob("cache", 5, 2, false), knob("other", 4, 3, false)};
      hak_learn_t l;
      uint64_t rs = seed * 31;
      unsigned down = 0;
      CHECK(hak_learn_init(&l, &p, kn, 2) == 0);
      memdown_run(&l, &rs, 1.0, false, 3000, HAK_LEARN_STATE_FROZEN, &down);
      CHECKF(down > 0, "%s seed %llu: without mem_down the step down was never played", an,
             (unsigned long long)seed);

      kn[0].mem_down = true;
      CHECK(hak_learn_init(&l, &p, kn, 2) == 0);
      rs = seed * 31;
      down = 0;
      memdown_run(&l, &rs, 1.0, false, 3000, HAK_LEARN_STATE_FROZEN, &down);
      CHECKF(hak_learn_state(&l) == HAK_LEARN_STATE_FROZEN && hak_learn_best(&l)[0] >= 2 &&
                 hak_learn_best(&l)[1] == 1,
             "%s seed %llu: %s on %u,%u", an, (unsigned long long)seed, hak_learn_state_name(hak_learn_state(&l)),
             hak_learn_best(&l)[0], hak_learn_best(&l)[1]);
      memdown_run(&l, &rs, 1.0, false, 1000, -1, &down); /* FROZEN and CANARY */
      CHECKF(down == 0, "%s seed %llu: a step down played %u times at 3 %% memory", an, (unsigned long long)seed,
             down);

      CHECK(hak_learn_init(&l, &p, kn, 2) == 0);
      memdown_run(&l, &rs, 40.0, true, 3000, HAK_LEARN_STATE_FROZEN, &down);
      CHECKF(hak_learn_state(&l) == HAK_LEARN_STATE_FROZEN && hak_learn_best(&l)[0] == 0,
             "%s seed %llu: memory 55 %% of the cost, froze on %u (state %s)", an, (unsigned long long)seed,
             hak_learn_best(&l)[0], hak_learn_state_name(hak_learn_state(&l)));
    }
}

/* A knob that holds state (a cache): the first window after its value
 * changes costs 3 x (the cache fills or empties), the ones after it the
 * arm's.  Knob 0 settles (optimum 3, starting at 1: its neighbour is 0.67 x
 * as dear), knob 1 does not (optimum 1, starting at 2).  Settling, exactly
 * the windows right after knob 0 changed are marked, each is followed by
 * the same decision, and LEARN freezes on both optima.  The same knob
 * without settling is checked too, so that the model is seen to need it:
 * each trial of a neighbour is then its first window and looks dearer. */
static unsigned settle_run(hak_learn_t *l, uint64_t *rs, unsigned max, unsigned *bad) {
  unsigned n = 0;
  uint64_t h[UB];
  hak_learn_decision_t last = {.knob = -1};
  memcpy(last.cfg, hak_learn_applied(l), l->nknobs);
  while (n < max && hak_learn_state(l) != HAK_LEARN_STATE_FROZEN) {
    hak_learn_decision_t d;
    hak_learn_next(l, &d);
    bool changed = d.cfg[0] != last.cfg[0];
    if (l->knob[0].settle && d.settle != changed) (*bad)++;
    if (last.settle && (memcmp(d.cfg, last.cfg, l->nknobs) || d.knob != last.knob)) (*bad)++;
    unused_hist(rs, false, h);
    double c = bowl(d.cfg[0], 3, 0.2) * bowl(d.cfg[1], 1, 0.2) * (changed ? 3.0 : 1.0);
    hak_learn_feed(l, noisy(rs, c, 0.05), h, UB);
    last = d;
    n++;
  }
  return n;
}

static void settle_windows(void) {
  unsigned worst = 0, settled = 0;
  for (int algo = 0; algo < 2; algo++)
    for (uint64_t seed = 1; seed <= 5; seed++) {
      hak_learn_params_t p;
      params_for_test(&p, (hak_learn_algo_t)algo, seed);
      hak_learn_knob_t kn[2] = {knob("cache", 5, 1, false), knob("other", 4, 2, false)};
      hak_learn_t l;
      uint64_t rs = seed * 131;
      unsigned bad = 0;
      CHECK(hak_learn_init(&l, &p, kn, 2) == 0);
      settle_run(&l, &rs, 3000, &bad);
      CHECKF(hak_learn_best(&l)[0] == 1, "%s seed %llu: without settling, moved to %u",
             algo ? "elo" : "ucb1", (unsigned long long)seed, hak_learn_best(&l)[0]);

      kn[0].settle = true;
      CHECK(hak_learn_init(&l, &p, kn, 2) == 0);
      rs = seed * 131;
      unsigned n = settle_run(&l, &rs, 3000, &bad);
      CHECKF(hak_learn_state(&l) == HAK_LEARN_STATE_FROZEN && hak_learn_best(&l)[0] == 3 &&
                 hak_learn_best(&l)[1] == 1,
             "%s seed %llu: %s on %u,%u after %u windows", algo ? "elo" : "ucb1", (unsigned long long)seed,
             hak_learn_state_name(hak_learn_state(&l)), hak_learn_best(&l)[0], hak_learn_best(&l)[1], n);
      CHECKF(bad == 0, "%u windows settled wrongly or not repeated", bad);
      CHECK(l.settle_windows > 0);
      if (n > worst) worst = n;
      settled += (unsigned)l.settle_windows;
    }
  printf("[slowest freeze: %u windows; %u settling windows in all] ", worst, settled);
}

/* Odds and ends: state names, invalid knobs, ladder lookup, the L1
 * distance, next() without feed(), estimates. */
static void api(void) {
  CHECK(strcmp(hak_learn_state_name(HAK_LEARN_STATE_LEARN), "LEARN") == 0);
  CHECK(strcmp(hak_learn_state_name(HAK_LEARN_STATE_FROZEN), "FROZEN") == 0);
  CHECK(strcmp(hak_learn_state_name(HAK_LEARN_STATE_CANARY), "CANARY") == 0);
  CHECK(strcmp(hak_learn_state_name((hak_learn_state_t)7), "?") == 0);

  hak_learn_t l;
  hak_learn_knob_t kn[HAK_LEARN_MAX_KNOBS + 1];
  for (int i = 0; i <= HAK_LEARN_MAX_KNOBS; i++) kn[i] = knob("k", 4, 1, false);
  CHECK(hak_learn_init(&l, NULL, kn, 0) == -1);
  CHECK(hak_learn_init(&l, NULL, kn, HAK_LEARN_MAX_KNOBS + 1) == -1);
  CHECK(hak_learn_init(&l, NULL, kn, HAK_LEARN_MAX_KNOBS) == 0);
  kn[1].start = 4;
  CHECK(hak_learn_init(&l, NULL, kn, 2) == -1);
  kn[1] = knob("k", 0, 0, false);
  CHECK(hak_learn_init(&l, NULL, kn, 2) == -1);
  kn[1] = knob("k", HAK_LEARN_MAX_ARMS + 1, 0, false);
  CHECK(hak_learn_init(&l, NULL, kn, 2) == -1);

  hak_learn_knob_t big[3];
  world_knobs(big);
  CHECK(hak_learn_ladder_find(&big[0], 300 << 10) == 2);
  CHECK(hak_learn_ladder_find(&big[0], 1e12) == 5);
  CHECK(hak_learn_ladder_find(&big[1], 0) == 0);
  CHECK(hak_learn_ladder_find(&big[2], 1.4) == 2);

  double ref[HAK_LEARN_HIST_BINS] = {0};
  ref[0] = 1.0;
  uint64_t h[100] = {0};
  CHECK(hak_learn_l1(ref, h, 100) == -1);
  h[0] = 10;
  CHECK(hak_learn_l1(ref, h, 100) == 0.0);
  h[1] = 10;
  CHECK(fabs(hak_learn_l1(ref, h, 100) - 1.0) < 1e-12);
  h[0] = h[1] = 0;
  h[99] = 5; /* folded into bin 79 */
  CHECK(fabs(hak_learn_l1(ref, h, 100) - 2.0) < 1e-12);

  /* next() twice gives one decision; feed() consumes it */
  hak_learn_knob_t two[2] = {knob("a", 6, 2, false), knob("b", 3, 1, false)};
  CHECK(hak_learn_init(&l, NULL, two, 2) == 0);
  hak_learn_decision_t d1, d2;
  for (int i = 0; i < 10; i++) {
    hak_learn_next(&l, &d1);
    hak_learn_next(&l, &d2);
    CHECK(memcmp(&d1, &d2, sizeof d1) == 0);
    hak_learn_feed(&l, 1.0, NULL, 0);
  }
  hak_learn_est_t e;
  CHECK(hak_learn_estimate(&l, 0, 2, &e) && e.incumbent && e.n > 0 && e.mean > 0);
  CHECK(!hak_learn_estimate(&l, 0, 6, &e) && !hak_learn_estimate(&l, 2, 0, &e));
  /* a feed without next() is a window of the best configuration; a NaN
   * cost is no measurement */
  uint32_t n0 = l.tuner.sel[l.tuner.active].count[l.tuner.sel[l.tuner.active].cur];
  hak_learn_feed(&l, 1.2, NULL, 0);
  CHECK(l.tuner.sel[l.tuner.active].count[l.tuner.sel[l.tuner.active].cur] == n0 + 1);
  hak_learn_feed(&l, NAN, NULL, 0);
  CHECK(l.tuner.sel[l.tuner.active].count[l.tuner.sel[l.tuner.active].cur] == n0 + 1);
  CHECK(hak_learn_shift(&l) == -1);
}

/* Same seeds, same decisions: the whole run is a function of its inputs. */
static uint64_t run_hash(hak_learn_algo_t algo) {
  hak_learn_params_t p;
  params_for_test(&p, algo, 77);
  hak_learn_knob_t kn[3];
  world_knobs(kn);
  hak_learn_t l;
  hak_learn_init(&l, &p, kn, 3);
  world_t w;
  world_init(&w, 99);
  uint64_t h[NCLASS], hash = 1469598103934665603ull;
  for (int i = 0; i < 1500; i++) {
    if (i == 700) w.phase = 1;
    hak_learn_decision_t d;
    hak_learn_next(&l, &d);
    world_hist(&w, h);
    unsigned ev = hak_learn_feed(&l, world_cost(&w, d.cfg), h, NCLASS);
    for (unsigned k = 0; k < 3; k++) hash = (hash ^ d.cfg[k]) * 1099511628211ull;
    hash = (hash ^ (ev + 8u * hak_learn_state(&l))) * 1099511628211ull;
  }
  return hash;
}

static void determinism(void) {
  CHECK(run_hash(HAK_LEARN_UCB1) == run_hash(HAK_LEARN_UCB1));
  CHECK(run_hash(HAK_LEARN_ELO) == run_hash(HAK_LEARN_ELO));
  CHECK(run_hash(HAK_LEARN_ELO) != run_hash(HAK_LEARN_UCB1));
}

/* hak_exp / hak_log (src/fmath.c, instead of libm) against libm: relative
 * error within 1e-12 over the ranges UCB1, ELO and the profiler use and
 * well beyond, and the edges (0, negative, infinity, NaN, subnormal). */
static void fmath(void) {
  double worst_e = 0, worst_l = 0;
  for (double x = -700; x <= 700; x += 0.0137) {
    double r = fabs(hak_exp(x) - exp(x)) / exp(x);
    if (r > worst_e) worst_e = r;
  }
  for (double x = 1e-300; x < 1e300; x *= 1.37) {
    double want = log(x), r = fabs(hak_log(x) - want) / (fabs(want) > 1 ? fabs(want) : 1);
    if (r > worst_l) worst_l = r;
  }
  for (double x = 0.5; x < 2.0; x += 1e-4) {
    double r = fabs(hak_log(x) - log(x));
    if (r > worst_l) worst_l = r;
  }
  CHECKF(worst_e <= 1e-12, "hak_exp: worst relative error %.3g", worst_e);
  CHECKF(worst_l <= 1e-12, "hak_log: worst error %.3g", worst_l);
  CHECK(hak_exp(0) == 1.0 && hak_exp(800) == INFINITY && hak_exp(-800) == 0.0 && isnan(hak_exp(NAN)));
  CHECK(hak_log(1) == 0.0 && hak_log(0) == -INFINITY && isnan(hak_log(-1)) && hak_log(INFINITY) == INFINITY);
  CHECK(fabs(hak_log(4.9e-324) - log(4.9e-324)) < 1e-9);
  CHECK(hak_sqrt(2.25) == 1.5);
  printf("\n  exp err %.2g, log err %.2g\n%-28s    ", worst_e, worst_l, "");
}

int main(int argc, char **argv) {
  section_select(argc, argv);
  RUN_SECTION(p2);
  RUN_SECTION(ucb1_convex);
  RUN_SECTION(elo_convex);
  RUN_SECTION(hysteresis);
  RUN_SECTION(cooldown);
  RUN_SECTION(tuner);
  RUN_SECTION(lifecycle_walk);
  RUN_SECTION(lifecycle_stationary);
  RUN_SECTION(lifecycle_recall);
  RUN_SECTION(canary_challenger);
  RUN_SECTION(lifecycle_phases);
  RUN_SECTION(trial_tail);
  RUN_SECTION(lifecycle_start_frozen);
  RUN_SECTION(unused_knobs);
  RUN_SECTION(settle_windows);
  RUN_SECTION(mem_down);
  RUN_SECTION(api);
  RUN_SECTION(determinism);
  RUN_SECTION(fmath);
  return check_report("learn_unit");
}
