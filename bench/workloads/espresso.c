/* espresso: the allocation pattern of a logic minimiser, single-threaded.
 * The run is a series of passes.  A pass allocates a burst of 20-400
 * "cubes" (16-200 B), then combines random pairs: a new cube of a
 * neighbouring size is allocated, both parents are read into it and one
 * parent is freed; then the survivors are freed in random order, except
 * one in 16, which is appended to one of 8 "covers": pointer arrays grown
 * by realloc (x1.5) that live over many passes.  A cover that reaches its
 * limit (256-4096 entries) is freed with its cubes and starts again.
 * One op = one cube malloc'd (the covers' reallocs, about one per 150
 * cubes, come on top). */
#include "../bench_common.h"

#include <string.h>

#define COVERS 8
#define BURST_MAX 400
#define KEEP_ONE_IN 16

typedef struct cover {
  slot_t *items; /* the array grown by realloc */
  size_t n, cap, limit;
} cover_t;

static long ops_done;

/* A new cube in *s (whatever *s held is not ours any more). */
static void cube_new(bench_thread_t *t, slot_t *s, size_t size) {
  s->p = NULL;
  uint64_t t0 = lat_begin(t);
  slot_replace(s, size);
  lat_end(t, t0);
  ops_done++;
}

static void cover_add(bench_thread_t *t, cover_t *c, slot_t cube) {
  if (c->n == c->cap) {
    size_t cap = c->cap ? c->cap + c->cap / 2 : 8;
    uint64_t t0 = lat_begin(t);
    slot_t *p = realloc(c->items, cap * sizeof *p);
    lat_end(t, t0);
    if (!p)
      bench_die("realloc(.., %zu) returned NULL", cap * sizeof *p);
    c->items = p;
    c->cap = cap;
  }
  c->items[c->n++] = cube;
  if (c->n >= c->limit) {
    for (size_t i = 0; i < c->n; i++)
      slot_free(&c->items[i]);
    free(c->items);
    *c = (cover_t){.limit = rnd_range(t, 256, 4096)};
  }
}

static void run(bench_t *b) {
  bench_thread_t *t = &b->thr[0];
  cover_t covers[COVERS];
  slot_t burst[BURST_MAX];
  for (int i = 0; i < COVERS; i++)
    covers[i] = (cover_t){.limit = rnd_range(t, 256, 4096)};
  ops_done = 0;
  while (ops_done < b->ops) {
    int n = (int)rnd_range(t, 20, BURST_MAX);
    if (n > b->ops - ops_done)
      n = (int)(b->ops - ops_done);
    for (int i = 0; i < n; i++)
      cube_new(t, &burst[i], rnd_range(t, 16, 200));
    for (int k = n / 2; k > 0 && ops_done < b->ops; k--) { /* combine pairs */
      int i = (int)(rnd(t) % (uint64_t)n), j = (int)(rnd(t) % (uint64_t)n);
      if (i == j)
        continue;
      size_t size = burst[i].size + rnd_range(t, 0, 16) - 8;
      if (size < 16 || size > 200)
        size = burst[i].size;
      slot_t merged = {0};
      cube_new(t, &merged, size);
      /* read both parents into it, past the tags */
      size_t n1 = size < burst[i].size ? size : burst[i].size;
      memcpy((char *)merged.p + 8, (char *)burst[i].p + 8, n1 - 8);
      ((char *)merged.p)[8] ^= ((char *)burst[j].p)[8];
      slot_free(&burst[i]);
      burst[i] = merged;
    }
    for (int i = n - 1; i > 0; i--) { /* free in random order */
      int j = (int)(rnd(t) % (uint64_t)(i + 1));
      slot_t s = burst[j];
      burst[j] = burst[i];
      if (rnd(t) % KEEP_ONE_IN == 0)
        cover_add(t, &covers[rnd(t) % COVERS], s);
      else
        slot_free(&s);
    }
    if (n)
      slot_free(&burst[0]);
  }
  for (int i = 0; i < COVERS; i++) {
    for (size_t j = 0; j < covers[i].n; j++)
      slot_free(&covers[i].items[j]);
    free(covers[i].items);
  }
}

const workload_t wl_espresso = {
    .name = "espresso",
    .default_ops = 15000000,
    .run = run,
    .about = "bursts of 16-200 B cubes combined and freed; a few long-lived arrays grown by realloc",
};
