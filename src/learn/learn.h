/* The learning layer's brain: everything that decides, nothing that
 * measures.  P² streaming quantiles (p2.c), a selector over one ladder of
 * knob values with the seed's safety rules (sel.c) choosing arms by UCB1
 * (ucb1.c) or ELO ratings (elo.c), a coordinate-wise tuner over several
 * knobs (tuner.c) and the LEARN -> FROZEN -> CANARY lifecycle (lifecycle.c).
 *
 * All of it is pure C: no allocation, no stdio, no clock, no globals.  Time
 * is the count of windows fed in; costs and size-class histograms are
 * inputs.  Structures are fixed-size, so the controller can keep them in
 * static storage.  Not thread-safe: one owner (the controller thread) calls
 * everything.  See docs/learning.md. */
#ifndef HAKMEM_LEARN_H
#define HAKMEM_LEARN_H

#include <stdbool.h>
#include <stdint.h>

#define HAK_LEARN_MAX_KNOBS 8
#define HAK_LEARN_MAX_ARMS 8    /* steps on one ladder */
#define HAK_LEARN_HIST_BINS 96  /* size-class histogram bins (hakmem has 80 classes, Large, Big) */
#define HAK_LEARN_SETTLE_MAX 16 /* longest p99 settling span */
#define HAK_LEARN_PHASES 4      /* allocation mixes whose learned policy is remembered */

/* ---- P² streaming quantile (p2.c) ---------------------------------------
 * Jain & Chlamtac (1985): five markers, O(1) memory and time per sample. */
typedef struct {
  double q;       /* the quantile, 0 < q < 1 */
  double h[5];    /* marker heights; the first 5 samples until count == 5 */
  double pos[5];  /* actual marker positions, 1-based */
  double want[5]; /* desired positions */
  double inc[5];  /* desired position increment per sample */
  uint64_t count;
} hak_p2_t;

void hak_p2_init(hak_p2_t *p, double q);
void hak_p2_add(hak_p2_t *p, double x); /* non-finite x is ignored */
/* The estimate; exact (interpolated) below 5 samples, 0 with none. */
double hak_p2_value(const hak_p2_t *p);
uint64_t hak_p2_count(const hak_p2_t *p);

/* ---- knobs --------------------------------------------------------------
 * A knob is a short ordered ladder of values.  The learner only ever sees
 * ladder indices; value[] is there so the lead's table and logs have one
 * home (the learner ignores it). */
typedef struct {
  const char *name; /* static string, for logs */
  uint8_t n;        /* steps, 1..HAK_LEARN_MAX_ARMS */
  uint8_t start;    /* index applied at start (shipped default or policy file) */
  bool pinned;      /* set explicitly by the user: never moved */
  /* The knob acts only on the allocations counted in histogram bins
   * [bin_lo, bin_hi) (bin_hi 0: to the last bin; both 0: on every one).
   * A window with none there leaves it unused: its arms cannot differ, so
   * the window says nothing about them (the tuner and the canary pass it
   * by, see hak_tuner_unused).  hak_learn_knob_bins moves the range as
   * the policy moves it (a cache of Big blocks acts on what the big
   * threshold makes Big). */
  uint8_t bin_lo, bin_hi;
  /* The knob holds state that a change takes a while to reach (a cache
   * fills or empties): the window right after its value changes measures
   * the change, not the new value.  That window is not measured and the
   * next one repeats the decision (see hak_learn_decision_t.settle). */
  bool settle;
  /* A step down the ladder trades time for memory and nothing else (a
   * smaller cache, a shorter purge delay: the allocator's work can only
   * grow): it can gain at most the memory's share of the cost, and is not
   * tried while that share is below the gain a move needs (see
   * hak_learn_mem_share). */
  bool mem_down;
  double value[HAK_LEARN_MAX_ARMS];
} hak_learn_knob_t;

/* Index of the ladder step nearest to v (ties: the lower step). */
unsigned hak_learn_ladder_find(const hak_learn_knob_t *k, double v);

/* ---- one-ladder selector (sel.c, ucb1.c, elo.c) -------------------------
 * Costs are lower-is-better and must be >= 0 (negative ones count as 0,
 * non-finite ones are ignored).  The selector keeps an incumbent arm `cur`
 * (the applied one) and only ever plays cur or cur +- 1.  The incumbent
 * moves to a neighbour only when that neighbour's mean cost is at least
 * `gain` below cur's after each of `win_streak` consecutive plays of the
 * neighbour, and not within `cooldown` windows of the previous move. */
typedef enum { HAK_LEARN_UCB1 = 0, HAK_LEARN_ELO = 1 } hak_learn_algo_t;

typedef struct {
  hak_learn_algo_t algo; /* UCB1 */
  double gain;           /* 0.08: a challenger must cost <= (1-gain) x cur */
  uint32_t win_streak;   /* 3 consecutive winning windows of the challenger */
  uint32_t cooldown;     /* 4: windows after a switch with no switch */
  uint32_t mem;          /* 32: means weigh samples max(1/n, 1/mem) */
  uint32_t base;         /* 3: windows of the incumbent before a neighbour is tried */
  double ucb_c;          /* 0.1: UCB1 bonus c*sqrt(ln N / n_i), costs relative */
  double elo_k;          /* 32: ELO K-factor */
  double elo_temp;       /* 50: softmax temperature, rating points */
  double elo_draw;       /* 0.02: window within +-2% of cur's mean = draw */
  uint64_t seed;         /* ELO's xorshift state (0 = a fixed constant) */
} hak_sel_params_t;

typedef struct {
  hak_sel_params_t p;
  uint8_t n;   /* arms */
  uint8_t cur; /* incumbent */
  uint32_t cooldown_left;
  uint32_t since_switch; /* updates since the last switch, reset or turn start */
  uint32_t switches;     /* since init */
  uint64_t total;        /* plays since the last reset */
  uint64_t rng;
  uint32_t count[HAK_LEARN_MAX_ARMS];  /* plays since the last reset */
  uint32_t streak[HAK_LEARN_MAX_ARMS]; /* consecutive winning plays */
  double mean[HAK_LEARN_MAX_ARMS];     /* cost estimate */
  /* A neighbour's cost relative to the incumbent's window just before it,
   * averaged over its plays: what a switch compares (see clear_win). */
  double pair[HAK_LEARN_MAX_ARMS];
  uint32_t pairs[HAK_LEARN_MAX_ARMS];
  double last_cur;                     /* the incumbent's last window */
  /* The last challenger window's pair, kept until the incumbent's next
   * window brackets it (hak_sel_update): its cost, the incumbent window
   * before it and the ratio it was counted with. */
  double pend_cost, pend_before, pend_ratio;
  uint8_t last;                        /* arm of the last play; HAK_SEL_NONE after a break */
  double rating[HAK_LEARN_MAX_ARMS];   /* ELO rating (stays 1500 under UCB1) */
  bool no_down;                        /* cur - 1 cannot win: not played */
} hak_sel_t;

void hak_sel_params_default(hak_sel_params_t *p);
void hak_sel_init(hak_sel_t *s, const hak_sel_params_t *p, unsigned n_arms, unsigned start);
void hak_sel_reset(hak_sel_t *s);            /* forget estimates, keep cur */
void hak_sel_set(hak_sel_t *s, unsigned arm); /* move cur by decree; cooldown starts */
/* Whether arm a (cur or a neighbour) exists and may be played: not
 * cur - 1 while no_down says it cannot win. */
static inline bool hak_sel_playable(const hak_sel_t *s, int a) {
  return a >= 0 && a < s->n && !(s->no_down && a == (int)s->cur - 1);
}
/* The arm to play next window: cur, or cur +- 1.  First cur until it has
 * `base` windows, then each unplayed neighbour once (cur-1, cur+1), then
 * the algorithm. */
unsigned hak_sel_pick(hak_sel_t *s);
/* A window played `arm` and cost `cost`.  True when cur moved to `arm`. */
bool hak_sel_update(hak_sel_t *s, unsigned arm, double cost);
/* The workload changed since the last window: the next window is not
 * compared with the incumbent's last one (no pair, no game, its winning
 * streak neither grows nor breaks), and the incumbent is played next. */
#define HAK_SEL_NONE 0xff
void hak_sel_break(hak_sel_t *s);

/* UCB1 (ucb1.c): reward of arm i = -mean_i / mean_cur (costs relative to
 * the incumbent, so c does not depend on the cost's unit); the pick is the
 * neighbour maximising reward + c*sqrt(ln N / n_i), N = plays of the
 * neighbourhood.  Ties go to cur. */
double hak_ucb1_score(const hak_sel_t *s, unsigned arm);
unsigned hak_ucb1_pick(const hak_sel_t *s);

/* ELO (elo.c): a challenger's window against cur's mean is a win (cost <=
 * (1-draw) mean), a loss (>= (1+draw) mean) or a draw; both ratings move by
 * K(S - E).  The pick samples the neighbourhood with probability
 * proportional to exp(rating / temp), from the struct's xorshift state. */
double hak_elo_expect(double ra, double rb); /* P(a beats b) */
void hak_elo_rate(hak_sel_t *s, unsigned arm, double cost); /* before the mean update */
unsigned hak_elo_pick(hak_sel_t *s);
uint64_t hak_elo_rand(uint64_t *state); /* xorshift64* */

/* ---- coordinate-wise tuner (tuner.c) ------------------------------------
 * One selector per knob; one movable knob (unpinned, >1 step) at a time
 * has its turn and is explored, the others stay on their incumbents.  A
 * turn ends once the knob's incumbent has held for stable_m windows of the
 * turn and its neighbours have been tried (or after turn_max windows);
 * turns go round-robin.  When a knob
 * moves, the others' estimates are stale (measured under another
 * configuration) and are forgotten at the start of their next turn. */
#define HAK_TUNER_NONE 0xff

typedef struct {
  hak_sel_t sel[HAK_LEARN_MAX_KNOBS];
  uint8_t nknobs;
  uint8_t n_movable;
  uint8_t active; /* knob on its turn, or HAK_TUNER_NONE */
  bool movable[HAK_LEARN_MAX_KNOBS];
  bool stale[HAK_LEARN_MAX_KNOBS];
  bool unused[HAK_LEARN_MAX_KNOBS]; /* nothing to act on in the last window */
  uint32_t stable_m, turn_max;
  uint32_t turn_len;      /* windows of the current turn */
  uint32_t turn_switches; /* incumbent moves during the current turn */
  uint32_t clean_turns;   /* consecutive finished turns with no move */
} hak_tuner_t;

void hak_tuner_init(hak_tuner_t *t, const hak_learn_knob_t *knobs, unsigned n,
                    const hak_sel_params_t *sp, uint32_t stable_m, uint32_t turn_max);
/* Fills cfg[nknobs] for the next window; returns the knob under trial, -1
 * if none (every knob pinned). */
int hak_tuner_pick(hak_tuner_t *t, uint8_t *cfg);
/* The window picked for `knob` played `arm` (knob -1: the incumbents). True
 * when an incumbent moved. */
bool hak_tuner_update(hak_tuner_t *t, int knob, unsigned arm, double cost);
bool hak_tuner_settled(const hak_tuner_t *t); /* a full round of clean turns */
void hak_tuner_best(const hak_tuner_t *t, uint8_t *cfg);
void hak_tuner_reset(hak_tuner_t *t); /* forget all estimates, keep incumbents */
void hak_tuner_break(hak_tuner_t *t); /* hak_sel_break on every knob */
/* Which knobs had nothing to act on in the window about to be fed (before
 * hak_tuner_update).  An unused knob's turn ends at that window, which
 * its selector never sees, and turns pass unused knobs by; either counts as a
 * turn without a move.  So a program of small objects alone learns the
 * two knobs that act on it, not six, and the others keep their values. */
void hak_tuner_unused(hak_tuner_t *t, const bool *unused);
/* Make `arm` knob's incumbent (a canary win) and give that knob the turn. */
void hak_tuner_adopt(hak_tuner_t *t, unsigned knob, unsigned arm);
/* Every movable knob's incumbent from cfg (a recalled policy), estimates
 * forgotten. */
void hak_tuner_recall(hak_tuner_t *t, const uint8_t *cfg);

/* ---- lifecycle (lifecycle.c) --------------------------------------------
 * Each window the owner asks hak_learn_next() what to apply, runs the
 * window, and hands its cost and size-class histogram to hak_learn_feed(). */
typedef enum {
  HAK_LEARN_STATE_LEARN = 0,
  HAK_LEARN_STATE_FROZEN = 1,
  HAK_LEARN_STATE_CANARY = 2,
} hak_learn_state_t;

const char *hak_learn_state_name(hak_learn_state_t s); /* "LEARN", "FROZEN", "CANARY" */

typedef struct {
  hak_sel_params_t sel;
  hak_learn_state_t start; /* LEARN; FROZEN = start frozen on the knobs' start */
  /* LEARN and convergence */
  uint32_t stable_m;     /* 6: windows an incumbent holds to end a knob's turn */
  uint32_t turn_max;     /* 48: longest turn */
  uint32_t settle_span;  /* 8: p99 compared with its value this many incumbent windows ago */
  uint32_t settle_min;   /* 12: incumbent windows before p99 can count as settled */
  double settle_eps;     /* 0.05: relative p99 change that counts as settled */
  uint32_t freeze_after; /* 600: LEARN windows before freezing anyway; 0 = never */
  /* FROZEN and CANARY */
  uint32_t canary_every; /* 1: FROZEN windows before CANARY starts; 0 = never */
  uint32_t canary_len;   /* 0: CANARY windows before FROZEN again; 0 = stay */
  double canary_frac;    /* 0.05: share of CANARY windows given to a challenger */
  uint32_t canary_trials;/* 3: windows a challenger must win in a row */
  uint32_t base_min;     /* 4: best-config windows measured before a challenger runs */
  /* shift detection */
  double shift_l1;       /* 0.3: L1 distance of normalised histograms */
  double carry;          /* 0: share of a window's allocations the next window may count */
  uint32_t shift_k;      /* 3: consecutive shifted windows */
  uint64_t hist_min;     /* 4096: allocations for a window's histogram to count */
  uint32_t ref_windows;  /* 8: windows before the reference histogram is usable */
  uint32_t ref_mem;      /* 32: reference = mean of histograms, weight max(1/n, 1/ref_mem) */
} hak_learn_params_t;

void hak_learn_params_default(hak_learn_params_t *p);

typedef struct {
  hak_learn_state_t state;
  uint8_t cfg[HAK_LEARN_MAX_KNOBS]; /* ladder index per knob for the window */
  int8_t knob;     /* knob under trial (LEARN) or the challenger's (CANARY), -1 none */
  bool challenger; /* a CANARY window given to a challenger */
  bool settle;     /* a settling knob changed since the last window: not
                    * measured, and the next window repeats this one */
} hak_learn_decision_t;

typedef struct {
  double mean;     /* cost estimate of the arm (this knob's turn's context) */
  uint32_t n;      /* windows behind it since the estimates were last reset */
  double rating;   /* ELO rating (1500 = unrated) */
  bool incumbent;
} hak_learn_est_t;

/* Returned by feed/skip: what changed. */
#define HAK_LEARN_EV_STATE 1u /* the state changed: see hak_learn_reason() */
#define HAK_LEARN_EV_BEST 2u  /* the best (incumbent) configuration changed */

typedef struct {
  hak_learn_params_t p;
  hak_learn_knob_t knob[HAK_LEARN_MAX_KNOBS];
  uint8_t nknobs;
  hak_learn_state_t state;
  const char *reason; /* static string: why the last transition */
  uint8_t best[HAK_LEARN_MAX_KNOBS];
  hak_tuner_t tuner;
  hak_learn_decision_t pend, last;
  bool have_pend;
  bool repeat;            /* the last window settled: the next repeats it */
  uint64_t settle_windows; /* windows not measured for settling */
  uint64_t windows;       /* fed or skipped since init */
  uint32_t state_windows; /* in the current state */
  uint32_t learn_windows; /* in the current LEARN stretch */
  uint32_t transitions;
  /* cost of the best configuration: P² p50/p99 and their settling */
  hak_p2_t p50, p99;
  double settle_ring[HAK_LEARN_SETTLE_MAX];
  bool settled;
  /* reference histogram and shift detection */
  double ref[HAK_LEARN_HIST_BINS];
  uint32_t ref_n;
  double last_l1; /* -1 when the last window had no usable histogram */
  /* the last measured LEARN window's histogram: a pair across a change of
   * the allocation mix compares two workloads, not two arms */
  double prev_frac[HAK_LEARN_HIST_BINS];
  uint64_t prev_total;
  bool prev_tail;  /* the last window's counts were mostly the one before's */
  uint64_t breaks; /* windows not paired with the one before them, for that */
  uint64_t unused_windows; /* LEARN windows whose knob on trial had nothing to act on */
  double mem_share;        /* of the cost, for the next window (hak_learn_mem_share) */
  double mem_share_best;   /* the incumbent's last measured window's */
  uint32_t shift_streak;
  /* The mix the current LEARN stretch learns: the mean of its windows'
   * histograms since the mix last changed, shift_k windows in a row off
   * it (ref spans the whole stretch). */
  double mix[HAK_LEARN_HIST_BINS];
  uint32_t mix_n, mix_off; /* windows in it; windows in a row off it */
  /* Mixes learned before: the mix each frozen LEARN stretch froze on (its
   * `mix`) and the policy, so that a workload that comes back to a mix
   * gets its policy again without learning it anew (recall). */
  struct {
    double ref[HAK_LEARN_HIST_BINS];
    uint8_t cfg[HAK_LEARN_MAX_KNOBS];
    uint64_t used; /* `windows` when last frozen on or recalled; 0 = empty */
  } phase[HAK_LEARN_PHASES];
  uint32_t recalls;
  /* canary */
  double canary_acc;
  double base_mean; /* best config's cost since the freeze */
  uint32_t base_n;
  uint8_t chal_pos; /* rotation: slot 2k = knob k one step down, 2k+1 = up */
  uint32_t chal_n;
  double chal_mean;
} hak_learn_t;

/* -1 if the knobs are invalid (n == 0 or > 8, a knob with 0 or > 8 steps,
 * start out of range); the struct is then unusable. */
int hak_learn_init(hak_learn_t *l, const hak_learn_params_t *p, const hak_learn_knob_t *knobs,
                   unsigned nknobs);
/* What to apply for the next window.  Asking again before feeding gives the
 * same decision. */
void hak_learn_next(hak_learn_t *l, hak_learn_decision_t *d);
/* The window that followed hak_learn_next() (or, without one, a window of
 * the best configuration) cost `cost`; hist (may be NULL) counts its
 * allocations per size class, nbins <= 80 (more are folded into the last).
 * Returns HAK_LEARN_EV_* bits. */
unsigned hak_learn_feed(hak_learn_t *l, double cost, const uint64_t *hist, unsigned nbins);
/* `windows` windows passed unmeasured (a FROZEN controller asleep). */
unsigned hak_learn_skip(hak_learn_t *l, uint32_t windows);
/* Windows the owner may sleep through (then skip them): nonzero only in
 * FROZEN; UINT32_MAX when FROZEN never ends (canary_every == 0). */
uint32_t hak_learn_idle(const hak_learn_t *l);
/* Give the reference histogram (e.g. stored with a policy file). */
void hak_learn_set_reference(hak_learn_t *l, const uint64_t *hist, unsigned nbins);
/* Knob k acts on histogram bins [lo, hi) from the next window on (see
 * hak_learn_knob_t.bin_lo). */
void hak_learn_knob_bins(hak_learn_t *l, unsigned k, unsigned lo, unsigned hi);
/* The memory's share of the next fed window's cost (0..1): an incumbent
 * window's sets which mem_down knobs may step down (default 1: all). */
void hak_learn_mem_share(hak_learn_t *l, double share);

hak_learn_state_t hak_learn_state(const hak_learn_t *l);
const char *hak_learn_reason(const hak_learn_t *l);
const uint8_t *hak_learn_best(const hak_learn_t *l);    /* nknobs indices */
const uint8_t *hak_learn_applied(const hak_learn_t *l); /* config of the last window */
bool hak_learn_estimate(const hak_learn_t *l, unsigned knob, unsigned arm, hak_learn_est_t *e);
double hak_learn_p50(const hak_learn_t *l); /* cost of the best config */
double hak_learn_p99(const hak_learn_t *l);
double hak_learn_shift(const hak_learn_t *l); /* last L1 distance, -1 if none */
/* sum_b |hist_b / sum(hist) - ref_b|, in [0, 2]; ref normalised. -1 if
 * hist is empty. */
double hak_learn_l1(const double *ref, const uint64_t *hist, unsigned nbins);

#endif
