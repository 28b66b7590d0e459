/* realloc-grow: buffers grown by realloc in steps, as a string builder
 * appending to its buffer does.  16 buffers; each op appends 1 B-4 KiB to a
 * random one (realloc, then write the new part).  When a buffer passes its
 * limit (4 KiB-1 MiB, log-uniform, new each time) it is freed and starts
 * again.  Allocators that can grow a block in place copy less.  The first
 * word is checked after every realloc: the contents must move with it.
 * One op = one realloc (plus a free when a buffer restarts). */
#include "../bench_common.h"

#include <string.h>

#define BUFS 16

typedef struct buf {
  char *p;
  size_t size, limit;
  uint64_t tag;
} buf_t;

static void run(bench_t *b) {
  bench_thread_t *t = &b->thr[0];
  buf_t bufs[BUFS] = {{0}};
  for (long i = 0; i < b->ops; i++) {
    buf_t *f = &bufs[rnd(t) % BUFS];
    uint64_t t0 = lat_begin(t);
    if (f->size >= f->limit) {
      free(f->p);
      f->p = NULL;
      f->size = 0;
      f->limit = rnd_log(t, 4 << 10, 1 << 20);
      f->tag = rnd(t);
    }
    size_t size = f->size + (f->size ? rnd_range(t, 1, 4096) : 16);
    char *p = realloc(f->p, size);
    if (!p)
      bench_die("realloc(%zu) returned NULL", size);
    if (f->size) {
      block_check(p, size, f->tag);
      memset(p + f->size, 'x', size - f->size);
    } else {
      block_tag(p, size, f->tag);
    }
    f->p = p;
    f->size = size;
    lat_end(t, t0);
  }
  for (int i = 0; i < BUFS; i++)
    free(bufs[i].p);
}

const workload_t wl_realloc_grow = {
    .name = "realloc-grow",
    .default_ops = 300000,
    .run = run,
    .about = "16 buffers grown by realloc, 1 B-4 KiB at a time, up to 4 KiB-1 MiB",
};
