/* phase-change: a program whose allocation pattern changes, so that the
 * best policy changes with it.  Two phases, run A B A B:
 *   A  Large-block churn with reuse: 256 blocks of 64-256 KiB are
 *      allocated (a byte written per page) and freed again, over and over;
 *      memory kept after the frees is reused at once (fewer page faults).
 *   B  small objects: a burst of 256k objects of 32-256 B, 15 in 16 freed
 *      at once, then churn of the rest; memory kept after the burst is
 *      never reused (it only costs memory).
 * One op = one allocation with its later free; A gets 1/64 of the ops of
 * B (its ops are dearer). */
#include "../bench_common.h"

#define A_BATCH 256
#define B_BURST (256 * 1024)

static void phase_large(bench_t *b, long ops) {
  bench_thread_t *t = &b->thr[0];
  slot_t batch[A_BATCH] = {{0}};
  for (long done = 0; done < ops;) {
    int n = ops - done < A_BATCH ? (int)(ops - done) : A_BATCH;
    for (int i = 0; i < n; i++) {
      size_t size = rnd_log(t, 64 << 10, 256 << 10);
      uint64_t t0 = lat_begin(t);
      slot_replace(&batch[i], size);
      block_touch(batch[i].p, size);
      lat_end(t, t0);
    }
    for (int i = 0; i < n; i++) slot_free(&batch[i]);
    done += n;
  }
}

static void phase_small(bench_t *b, long ops) {
  bench_thread_t *t = &b->thr[0];
  slot_t *s = bench_scratch((size_t)B_BURST * sizeof *s);
  long burst = ops / 2 < B_BURST ? ops / 2 : B_BURST;
  for (long i = 0; i < burst; i++) {
    uint64_t t0 = lat_begin(t);
    slot_replace(&s[i], rnd_range(t, 32, 256));
    lat_end(t, t0);
  }
  long keep = burst / 16 ? burst / 16 : 1;
  for (long i = keep; i < burst; i++) slot_free(&s[i]);
  for (long i = burst; i < ops; i++) {
    uint64_t t0 = lat_begin(t);
    slot_replace(&s[rnd(t) % (uint64_t)keep], rnd_range(t, 32, 256));
    lat_end(t, t0);
  }
  for (long i = 0; i < keep; i++) slot_free(&s[i]);
}

static void run(bench_t *b) {
  long half[2] = {b->ops / 2, b->ops - b->ops / 2};
  for (int round = 0; round < 2; round++) {
    long large = half[round] / 65;
    phase_large(b, large);
    phase_small(b, half[round] - large);
  }
}

const workload_t wl_phase_change = {
    .name = "phase-change",
    .default_ops = 60000000,
    .run = run,
    .about = "Large-block churn with reuse, then a burst of small objects mostly freed, twice",
};
