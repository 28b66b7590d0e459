/* Per-site decisions for Large and Big blocks (sites.c): what a call
 * site's history says about its blocks, an immutable site -> decision table
 * the policy snapshot points to, and policy-file sites resolved to this
 * process's addresses (module + offset, or symbol + offset, so a file
 * outlives ASLR and a rebuild). */
#ifndef HAKMEM_LEARN_SITES_H
#define HAKMEM_LEARN_SITES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../site.h"

/* Decision bits. */
#define HAK_SITE_LONG 1u     /* its Large blocks live long: placed apart from short-lived ones */
#define HAK_SITE_CACHE 2u    /* its freed Big blocks are reused soon: their pages go last */
#define HAK_SITE_NOCACHE 4u  /* it allocates Big blocks once: their freed pages go first */
#define HAK_SITE_GROW 8u     /* its reallocs grow blocks again and again: growth headroom */
#define HAK_SITE_DECIDED 16u /* looked at: a table entry whose other bits may all be 0 */

/* The rules, in one place (docs/learning.md, "Per-site decisions"). */
typedef struct hak_site_rules {
  uint32_t min_blocks;    /* 4: blocks before a site's lifetime is judged */
  uint32_t long_ms;       /* 1000: mean lifetime (or age of unfreed blocks) of a long-lived site */
  uint32_t reuse_gap_ms;  /* 1000: mean gap between a site's Big allocations that counts as reuse */
  uint32_t oneoff_ms;     /* 2000: a site's single Big block this old: a one-off */
  uint32_t grow_min;      /* 4: growing reallocs, and at least half its blocks' count */
} hak_site_rules_t;
void hak_site_rules_default(hak_site_rules_t *r);

/* The decision bits for a history, at process time now_ms (pure). */
unsigned hak_site_decide(const hak_site_history_t *h, uint32_t now_ms, const hak_site_rules_t *r);

/* ---- the table ------------------------------------------------------------ */
#define HAK_SITE_TABLE 1024 /* slots, a power of two */
typedef struct hak_site_entry {
  uintptr_t addr;
  uint32_t flags;
} hak_site_entry_t;
typedef struct hak_site_table {
  hak_site_entry_t e[HAK_SITE_TABLE];
  unsigned n;
} hak_site_table_t;

/* One hash probe sequence; 0 for a site the table does not know. */
static inline unsigned hak_site_lookup(const hak_site_table_t *t, const void *site) {
  if (!t || !site) return 0;
  uintptr_t a = (uintptr_t)site;
  unsigned k = (unsigned)(((uint64_t)a * 0x9E3779B97F4A7C15ull) >> 54) & (HAK_SITE_TABLE - 1);
  for (unsigned i = 0; i < 16; i++, k = (k + 1) & (HAK_SITE_TABLE - 1)) {
    if (t->e[k].addr == a) return t->e[k].flags;
    if (!t->e[k].addr) return 0;
  }
  return 0;
}
/* Adds (or updates) a site in a table being built; false when full. */
bool hak_site_table_put(hak_site_table_t *t, uintptr_t addr, unsigned flags);

/* The controller: decisions from every site's history now, merged with
 * the policy file's (resolved) sites; `final` (at exit, for the policy
 * file): a site that allocated one Big block in the whole run is a one-off,
 * however recent.  Returns a new immutable table when
 * something changed, NULL otherwise (or when no table is left: at most
 * HAK_SITE_TABLES are ever made; they are never freed). */
#define HAK_SITE_TABLES 32
const hak_site_table_t *hak_sites_learn(uint32_t now_ms, const hak_site_table_t *cur, bool final);

/* Sites learning records Large/Big blocks' sites (set at init). */
extern bool hak_sites_learning;

/* ---- policy files --------------------------------------------------------- */
/* A site as a file names it: module path, offset in it, and when known the
 * function and the offset in it. */
typedef struct hak_site_key {
  char module[256];
  char symbol[128];
  uintptr_t offset, symbol_offset;
  unsigned flags;
} hak_site_key_t;
/* Keeps a file's site; resolved now or when its module is loaded. */
void hak_sites_file_add(const hak_site_key_t *k);
/* Resolves the file's sites not yet resolved; returns the table to start
 * from (NULL if the file had none).  Reports unresolvable ones with
 * HAKMEM_VERBOSE. */
const hak_site_table_t *hak_sites_file_table(bool report);
/* Describes the site at addr for a file; false if its module is unknown. */
bool hak_site_key_of(uintptr_t addr, hak_site_key_t *k);

#endif
