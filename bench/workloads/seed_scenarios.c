/* The seed's scenarios: a buffer is allocated, filled (one write per page)
 * and freed again, over and over, at three sizes and rates:
 *   json   64 KiB, 1000 per round (frequent: parse buffers)
 *   mir   256 KiB,  100 per round (compiler IR)
 *   vm      2 MiB,   10 per round (infrequent: VM heaps)
 *   mixed  all three in one stream, in the same 1000:100:10 proportion.
 * One op = malloc + touch + free of one buffer; the op is what is timed. */
#include "../bench_common.h"

static void one_buffer(bench_thread_t *t, size_t size) {
  uint64_t t0 = lat_begin(t);
  char *p = xmalloc(size);
  block_touch(p, size);
  free(p);
  lat_end(t, t0);
}

static void run_fixed(bench_t *b, size_t size) {
  for (long i = 0; i < b->ops; i++)
    one_buffer(&b->thr[0], size);
}

static void run_json(bench_t *b) { run_fixed(b, 64 << 10); }
static void run_mir(bench_t *b) { run_fixed(b, 256 << 10); }
static void run_vm(bench_t *b) { run_fixed(b, 2 << 20); }

static void run_mixed(bench_t *b) {
  bench_thread_t *t = &b->thr[0];
  for (long i = 0; i < b->ops; i++) {
    uint64_t r = rnd(t) % 1110; /* 1000 json : 100 mir : 10 vm */
    one_buffer(t, r < 1000 ? 64 << 10 : r < 1100 ? 256 << 10 : 2 << 20);
  }
}

const workload_t wl_json = {
    .name = "json",
    .default_ops = 2000000,
    .run = run_json,
    .about = "64 KiB buffer malloc/touch/free, frequent",
};

const workload_t wl_mir = {
    .name = "mir",
    .default_ops = 1000000,
    .run = run_mir,
    .about = "256 KiB buffer malloc/touch/free",
};

const workload_t wl_vm = {
    .name = "vm",
    .default_ops = 100000,
    .run = run_vm,
    .sample_every = 1, /* slow ops: time each */
    .about = "2 MiB buffer malloc/touch/free, infrequent",
};

const workload_t wl_mixed = {
    .name = "mixed",
    .default_ops = 2000000,
    .run = run_mixed,
    .about = "json, mir and vm buffers interleaved 1000:100:10",
};
