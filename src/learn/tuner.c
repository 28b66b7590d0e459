/* The coordinate-wise tuner (hak_tuner_*): one selector per knob, one
 * movable knob explored at a time.  Exploring one knob at a time keeps
 * every window within one step of the incumbent configuration (a bad
 * window costs one knob's step, never a combination), and it makes each
 * knob's comparison a clean one: only that knob differs between its arms. */
#include "learn.h"

/* Ends the turn (clean if the knob did not move) and gives the next one to
 * the next movable knob that had something to act on in the last window;
 * a knob passed by for having nothing counts as a clean turn.  If no knob
 * had anything, the turn comes back to where it was. */
static void next_turn(hak_tuner_t *t) {
  if (t->turn_switches == 0) t->clean_turns++;
  else t->clean_turns = 0;
  unsigned k = t->active;
  for (unsigned i = 1; i <= t->nknobs; i++) {
    unsigned j = (k + i) % t->nknobs;
    if (!t->movable[j]) continue;
    t->active = (uint8_t)j;
    if (!t->unused[j] || j == k) break;
    t->clean_turns++;
  }
  t->turn_len = 0;
  t->turn_switches = 0;
  /* the knob's estimates were taken while another knob stood elsewhere:
   * comparing them with fresh windows would credit this knob for the
   * other's move */
  if (t->stale[t->active]) {
    hak_sel_reset(&t->sel[t->active]);
    t->stale[t->active] = false;
  }
  t->sel[t->active].since_switch = 0;
}

void hak_tuner_init(hak_tuner_t *t, const hak_learn_knob_t *knobs, unsigned n,
                    const hak_sel_params_t *sp, uint32_t stable_m, uint32_t turn_max) {
  if (n > HAK_LEARN_MAX_KNOBS) n = HAK_LEARN_MAX_KNOBS;
  hak_sel_params_t p;
  if (sp) p = *sp;
  else hak_sel_params_default(&p);
  *t = (hak_tuner_t){.nknobs = (uint8_t)n, .active = HAK_TUNER_NONE,
                     .stable_m = stable_m ? stable_m : 1,
                     .turn_max = turn_max};
  if (t->turn_max < t->stable_m) t->turn_max = t->stable_m;
  uint64_t seed = p.seed;
  for (unsigned k = 0; k < n; k++) {
    p.seed = seed + 0x9E3779B97F4A7C15ull * (k + 1); /* distinct streams per knob */
    hak_sel_init(&t->sel[k], &p, knobs[k].n, knobs[k].start);
    t->movable[k] = !knobs[k].pinned && knobs[k].n > 1;
    if (t->movable[k]) {
      t->n_movable++;
      if (t->active == HAK_TUNER_NONE) t->active = (uint8_t)k;
    }
  }
}

int hak_tuner_pick(hak_tuner_t *t, uint8_t *cfg) {
  hak_tuner_best(t, cfg);
  if (t->active == HAK_TUNER_NONE) return -1;
  cfg[t->active] = (uint8_t)hak_sel_pick(&t->sel[t->active]);
  return t->active;
}

/* A turn may end only once the incumbent's neighbourhood has been seen:
 * the incumbent measured `base` times, each neighbour at least once, and no
 * neighbour halfway through a winning streak.  Otherwise a short stable_m
 * would end turns before a better neighbour was even tried. */
static bool looked_around(const hak_sel_t *s) {
  unsigned c = s->cur;
  if (s->count[c] < s->p.base) return false;
  for (int d = -1; d <= 1; d += 2) {
    int a = (int)c + d;
    if (!hak_sel_playable(s, a)) continue;
    if (s->count[a] == 0) return false;
    if (s->streak[a] > 0 && s->mean[a] <= (1.0 - s->p.gain) * s->mean[c]) return false;
  }
  return true;
}

bool hak_tuner_update(hak_tuner_t *t, int knob, unsigned arm, double cost) {
  if (t->active == HAK_TUNER_NONE) return false;
  if (knob < 0) { /* a window of the incumbents: the active knob's cur */
    knob = t->active;
    arm = t->sel[knob].cur;
  }
  if ((unsigned)knob != t->active) return false; /* only the knob on its turn learns */
  if (t->unused[knob]) { /* its arms were all the same this window */
    next_turn(t);
    return false;
  }
  hak_sel_t *s = &t->sel[knob];
  bool moved = hak_sel_update(s, arm, cost);
  t->turn_len++;
  if (moved) {
    t->turn_switches++;
    for (unsigned k = 0; k < t->nknobs; k++)
      if (k != (unsigned)knob) t->stale[k] = true;
  }
  if ((s->since_switch >= t->stable_m && t->turn_len >= t->stable_m && looked_around(s)) ||
      t->turn_len >= t->turn_max)
    next_turn(t);
  return moved;
}

bool hak_tuner_settled(const hak_tuner_t *t) { return t->clean_turns >= t->n_movable; }

void hak_tuner_best(const hak_tuner_t *t, uint8_t *cfg) {
  for (unsigned k = 0; k < t->nknobs; k++) cfg[k] = t->sel[k].cur;
}

void hak_tuner_reset(hak_tuner_t *t) {
  for (unsigned k = 0; k < t->nknobs; k++) {
    hak_sel_reset(&t->sel[k]);
    t->stale[k] = false;
  }
  t->turn_len = 0;
  t->turn_switches = 0;
  t->clean_turns = 0;
}

/* Every knob's: a knob whose turn comes next would otherwise pair its first
 * window with its incumbent's last one, from before the change. */
void hak_tuner_break(hak_tuner_t *t) {
  for (unsigned k = 0; k < t->nknobs; k++) hak_sel_break(&t->sel[k]);
}

void hak_tuner_unused(hak_tuner_t *t, const bool *unused) {
  for (unsigned k = 0; k < t->nknobs; k++) t->unused[k] = unused[k];
}

void hak_tuner_recall(hak_tuner_t *t, const uint8_t *cfg) {
  for (unsigned k = 0; k < t->nknobs; k++)
    if (t->movable[k]) hak_sel_set(&t->sel[k], cfg[k]);
  hak_tuner_reset(t);
}

void hak_tuner_adopt(hak_tuner_t *t, unsigned knob, unsigned arm) {
  if (knob >= t->nknobs || !t->movable[knob]) return;
  hak_sel_set(&t->sel[knob], arm);
  t->active = (uint8_t)knob;
  t->turn_len = 0;
  t->turn_switches = 1; /* this turn moved the knob: not a clean one */
  t->clean_turns = 0;
  for (unsigned k = 0; k < t->nknobs; k++)
    if (k != knob) t->stale[k] = true;
}
