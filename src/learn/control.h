/* The learning layer's side that touches the allocator: the knobs (which
 * policy fields the learner may move, and their ladders), the controller
 * thread that runs the windows, and policy files.  The brain it drives is
 * learn.h. */
#ifndef HAKMEM_LEARN_CONTROL_H
#define HAKMEM_LEARN_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../policy.h"
#include "learn.h"

/* ---- knobs (knobs.c) ----------------------------------------------------- */
enum {
#define HAK_KNOB(id, ...) HAK_KNOB_##id,
#include "knobs.def"
#undef HAK_KNOB
  HAK_NKNOBS
};

/* The ladders; `start` is the step nearest to the policy's value, and a
 * knob whose option the user set is pinned. */
void hak_knobs_init(hak_learn_knob_t *knobs, const hak_policy_t *from);
/* The histogram bins knob `knob` acts on under policy p (hak_learn_knob_t.bin_lo). */
void hak_knob_bins(unsigned knob, const hak_policy_t *p, uint8_t *lo, uint8_t *hi);
/* The policy `base` with every knob at its step in cfg. */
void hak_knobs_apply(const hak_learn_knob_t *knobs, const uint8_t *cfg, const hak_policy_t *base,
                     hak_policy_t *out);
/* A knob's value in the policy, as a double (for logs and policy files). */
double hak_knob_value(unsigned knob, const hak_policy_t *p);
/* Sets a knob's field from a value (policy files); false if out of range. */
bool hak_knob_set(unsigned knob, hak_policy_t *p, double v);
const char *hak_knob_name(unsigned knob);
bool hak_knob_pinned(unsigned knob); /* its option was set in the environment */
/* Index of the knob with this name, -1 if none. */
int hak_knob_find(const char *name, size_t len);

/* ---- the controller (ace.c) ----------------------------------------------- */
/* Process init, after the policy: the mode decides whether a controller
 * will run, and with what lifecycle. */
void hak_control_init(void);
/* The reference histogram a policy file was learned on. */
void hak_control_set_reference(const uint64_t *hist, unsigned n);
/* Called from slow paths: starts the controller once the process has
 * lived and committed enough for its mode (see docs/learning.md); now_ms
 * 0 reads the clock (only while no controller runs yet). */
void hak_control_tick(uint64_t now_ms);
/* A process that holds enough idle memory to matter (the BigCache over its
 * fixed budget): starts the controller now, whatever the process's age.
 * True if a controller runs (or is starting), to return idle memory. */
bool hak_control_hurry(void);
/* At exit: stops the windows, prints/writes the learned policy if asked. */
void hak_control_exit(void);
/* Fork: the child has no controller thread; it starts a new one later. */
void hak_control_fork_child(void);
void hak_control_fork_prepare(void);
void hak_control_fork_parent(void);

/* ---- policy files (policyfile.c) ----------------------------------------- */
/* Reads a policy file into *p (knobs not in the file keep p's values) and
 * the reference histogram into ref[nref] (0s when absent).  On any error,
 * reports it once (one line, naming the file and the problem) and returns
 * false with *p untouched. */
bool hak_policyfile_read(const char *path, hak_policy_t *p, uint64_t *ref, unsigned nref);
/* Writes the policy (and the histogram it was learned on) as JSON. */
bool hak_policyfile_write(const char *path, const hak_policy_t *p, const double *ref, unsigned nref,
                          const char *state);

#endif
