/* big-buffers: zero-filled big buffers, as C++ `new char[n]()` makes them.
 * 20 live buffers of 5-25 MiB (uniform); each op replaces a random one
 * with calloc, then reads one byte of every 4 KiB page of the new buffer
 * (all must be zero), as the zeroing of new[]() would touch them.  An
 * allocator that hands out fresh pages from the kernel gets its zeros for
 * free (and the reads map the shared zero page); one that reuses memory
 * must clear it.  One op = free + calloc + read; the first 20 callocs fill
 * the slots and are not counted. */
#include "../bench_common.h"

#define SLOTS 20
#define LO (5u << 20)
#define HI (25u << 20)

static void *zeroed(size_t size) {
  unsigned char *p = calloc(1, size);
  if (!p)
    bench_malloc_failed(size);
  const volatile unsigned char *c = p;
  unsigned any = 0;
  for (size_t i = 0; i < size; i += 4096)
    any |= c[i];
  any |= c[size - 1];
  if (any)
    bench_die("calloc(1, %zu) returned %p with non-zero bytes", size, (void *)p);
  block_tag(p, size, addr_tag(p));
  return p;
}

static void run(bench_t *b) {
  bench_thread_t *t = &b->thr[0];
  slot_t slots[SLOTS];
  for (int i = 0; i < SLOTS; i++) {
    slots[i].size = rnd_range(t, LO, HI);
    slots[i].p = zeroed(slots[i].size);
  }
  for (long i = 0; i < b->ops; i++) {
    slot_t *s = &slots[rnd(t) % SLOTS];
    size_t size = rnd_range(t, LO, HI);
    uint64_t t0 = lat_begin(t);
    slot_free(s);
    s->p = zeroed(size);
    s->size = size;
    lat_end(t, t0);
  }
  for (int i = 0; i < SLOTS; i++)
    slot_free(&slots[i]);
}

const workload_t wl_big_buffers = {
    .name = "big-buffers",
    .default_ops = 2000,
    .run = run,
    .sample_every = 1, /* slow ops: time each */
    .about = "20 live calloc'd buffers of 5-25 MiB replaced at random, one byte read per page",
};
