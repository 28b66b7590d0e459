/* Call-site profiles: who allocates what (see docs/profiling.md).
 * The site of an allocation is the return address of the malloc-family
 * call.  Large and Big blocks are recorded always (their headers keep the
 * site); Tiny/Mid allocations are sampled about once per HAKMEM_PROFILE_SAMPLE
 * bytes, and a sampled allocation is served as a Large span so that its
 * free is seen too.  Nothing here runs unless profiling is on. */
#ifndef HAKMEM_SITE_H
#define HAKMEM_SITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h" /* hak_sites_on */

void hak_site_init(void);
/* Index of the site (0 is the "other" row when the table is full); big:
 * a Big block (its own mapping).  weight: the profile's sample weight in
 * bytes (0: recorded exactly); when the learner records alone (no
 * profile), the number of blocks this one stands for (0 as 1). */
uint16_t hak_site_alloc(void *site, size_t size, size_t weight, bool big);
/* A realloc at this site grew a Large or Big block. */
void hak_site_grow(void *site);
/* A site's Large/Big history (per-site decisions are made from it). */
typedef struct hak_site_history {
  uintptr_t addr;
  uint64_t allocs, frees, life_ms; /* life_ms: summed over the freed blocks */
  uint64_t big, bytes, gaps, gap_ms, grows;
  uint32_t first_ms, last_ms;      /* hak_site_clock() of its first and last allocation */
} hak_site_history_t;
/* Row k of the table (k < hak_site_capacity()): false if empty or without
 * Large/Big blocks. */
bool hak_site_history(unsigned k, hak_site_history_t *h);
unsigned hak_site_capacity(void);
/* The history of the site at this address, if the table has it. */
bool hak_site_history_of(uintptr_t addr, hak_site_history_t *h);
/* weight: as hak_site_alloc's. */
void hak_site_free(uint16_t idx, size_t size, size_t weight, uint32_t born);
/* The weight of a sampled block of `size` bytes. */
size_t hak_site_weight(size_t size);
#define HAK_SITE_UNTRACKED 0xFFFFu /* a block allocated while profiling was off */
/* Exact count of an explicit hak_alloc_cs call whose block is not tracked. */
void hak_site_count(void *site, size_t size);
/* Learning alone records one Large block in about this many (alloc.c). */
#define HAK_SITE_LEARN_EVERY 8u
/* Milliseconds since start, for lifetimes. */
uint32_t hak_site_clock(void);
/* The controller, each window: keep a coarse copy of the clock (on), or
 * stop keeping it when it stops (off: the clock is read again). */
void hak_site_clock_keep(bool on);
/* Mean bytes between samples, and a random draw around it. */
int64_t hak_site_next_interval(uint64_t *rng);
/* Writes FILE (table), FILE.json and FILE.folded; 0 on success. */
int hak_site_write(const char *path);
void hak_site_at_exit(void);

#endif
