/* Per-site decisions (see sites.h): the rules that read a site's history,
 * the immutable tables the policy snapshot points to, and the sites a
 * policy file brought, resolved to this process's addresses. */
#include "sites.h"

#include <string.h>

#include "../internal.h"
#include "../msg.h"
#include "../options.h"
#include "modmap.h"

bool hak_sites_learning;

void hak_site_rules_default(hak_site_rules_t *r) {
  *r = (hak_site_rules_t){.min_blocks = 4, .long_ms = 1000, .reuse_gap_ms = 1000, .oneoff_ms = 2000, .grow_min = 4};
}

unsigned hak_site_decide(const hak_site_history_t *h, uint32_t now, const hak_site_rules_t *r) {
  unsigned f = HAK_SITE_DECIDED;
  uint64_t live = h->allocs > h->frees ? h->allocs - h->frees : 0;
  uint64_t small_blocks = h->allocs > h->big ? h->allocs - h->big : 0; /* Large ones */
  /* Lifetime (Large): the freed blocks' mean, or, while few were freed,
   * how long the live ones have lived at least (since the site began). */
  if (small_blocks >= r->min_blocks) {
    bool long_freed = h->frees >= r->min_blocks && h->life_ms >= (uint64_t)r->long_ms * h->frees;
    bool long_live = h->frees * 4 <= h->allocs && live >= r->min_blocks && now >= h->first_ms &&
                     now - h->first_ms >= r->long_ms;
    if (long_freed || long_live) f |= HAK_SITE_LONG;
  }
  /* Reuse (Big): allocations close together are served by the BigCache;
   * a single one that stays single is not worth its budget. */
  if (h->big >= 3 && h->gaps && h->gap_ms <= (uint64_t)r->reuse_gap_ms * h->gaps) f |= HAK_SITE_CACHE;
  else if (h->big == 1 && h->allocs == 1 && now >= h->last_ms && now - h->last_ms >= r->oneoff_ms)
    f |= HAK_SITE_NOCACHE;
  /* Growth: reallocs that grow, again and again. */
  if (h->grows >= r->grow_min && h->grows * 2 >= h->allocs) f |= HAK_SITE_GROW;
  return f;
}

bool hak_site_table_put(hak_site_table_t *t, uintptr_t addr, unsigned flags) {
  if (!addr) return false;
  unsigned k = (unsigned)(((uint64_t)addr * 0x9E3779B97F4A7C15ull) >> 54) & (HAK_SITE_TABLE - 1);
  for (unsigned i = 0; i < 16; i++, k = (k + 1) & (HAK_SITE_TABLE - 1)) {
    if (t->e[k].addr == addr) {
      t->e[k].flags = flags;
      return true;
    }
    if (!t->e[k].addr) {
      if (t->n >= HAK_SITE_TABLE / 2) return false; /* keep probes short */
      t->e[k].addr = addr;
      t->e[k].flags = flags;
      t->n++;
      return true;
    }
  }
  return false;
}

/* Published tables: never freed (a slow path may still read an old one). */
hak_big_bss static hak_site_table_t tables[HAK_SITE_TABLES];
static unsigned ntables;
hak_big_bss static hak_site_table_t building;

/* ---- policy-file sites ------------------------------------------------------ */
#define FILE_SITES 512
hak_big_bss static hak_site_key_t file_sites[FILE_SITES];
static bool file_resolved[FILE_SITES];
static uintptr_t file_addr[FILE_SITES];
static unsigned nfile;
static const hak_site_table_t *file_table;

void hak_sites_file_add(const hak_site_key_t *k) {
  if (nfile < FILE_SITES) file_sites[nfile++] = *k;
}

static bool same_table(const hak_site_table_t *a, const hak_site_table_t *b) {
  if (!a || !b) return a == b;
  if (a->n != b->n) return false;
  for (unsigned i = 0; i < HAK_SITE_TABLE; i++)
    if (a->e[i].addr && hak_site_lookup(b, (void *)a->e[i].addr) != a->e[i].flags) return false;
  return true;
}

static const hak_site_table_t *publish(const hak_site_table_t *t, const hak_site_table_t *cur) {
  if (same_table(t, cur) || ntables == HAK_SITE_TABLES) return NULL;
  tables[ntables] = *t;
  return &tables[ntables++];
}

const hak_site_table_t *hak_sites_file_table(bool report) {
  if (!nfile) return NULL;
  bool more = false;
  for (unsigned i = 0; i < nfile; i++) {
    if (file_resolved[i]) continue;
    const hak_site_key_t *k = &file_sites[i];
    if (hak_mod_resolve(k->module, k->symbol, k->symbol_offset, k->offset, &file_addr[i])) {
      file_resolved[i] = more = true;
    } else if (report && HAK_OPT(VERBOSE)) {
      hak_error("policy file: site %s%s%s+0x%lx does not resolve in this process; ignored for now", k->module,
                *k->symbol ? " " : "", k->symbol, (unsigned long)(*k->symbol ? k->symbol_offset : k->offset));
    }
  }
  if (!more) return file_table;
  memset(&building, 0, sizeof building);
  for (unsigned i = 0; i < nfile; i++)
    if (file_resolved[i]) hak_site_table_put(&building, file_addr[i], file_sites[i].flags | HAK_SITE_DECIDED);
  const hak_site_table_t *t = publish(&building, file_table);
  if (t) file_table = t;
  return file_table;
}

/* ---- learning ----------------------------------------------------------------- */

const hak_site_table_t *hak_sites_learn(uint32_t now_ms, const hak_site_table_t *cur, bool final) {
  hak_site_rules_t r;
  hak_site_rules_default(&r);
  /* At exit, for the policy file, the run is the measure: blocks that
   * lived a quarter of it on average are long-lived (a site whose blocks
   * all live to the end, allocated all along, averages a half), a single
   * Big block is a one-off. */
  if (final) {
    r.oneoff_ms = 0;
    if (r.long_ms > now_ms / 4) r.long_ms = now_ms / 4;
  }
  memset(&building, 0, sizeof building);
  /* What the file said stands unless the history here says otherwise. */
  if (file_table)
    for (unsigned i = 0; i < HAK_SITE_TABLE; i++)
      if (file_table->e[i].addr) hak_site_table_put(&building, file_table->e[i].addr, file_table->e[i].flags);
  hak_site_history_t h;
  for (unsigned k = 0; k < hak_site_capacity(); k++) {
    if (!hak_site_history(k, &h)) continue;
    unsigned f = hak_site_decide(&h, now_ms, &r);
    unsigned had = hak_site_lookup(&building, (void *)h.addr);
    /* A site with too little history yet keeps the file's word. */
    if (f == HAK_SITE_DECIDED && had) continue;
    if (f != HAK_SITE_DECIDED || had) hak_site_table_put(&building, h.addr, f);
  }
  return publish(&building, cur);
}

bool hak_site_key_of(uintptr_t addr, hak_site_key_t *k) {
  memset(k, 0, sizeof *k);
  if (!hak_mod_of_addr(addr, k->module, sizeof k->module, &k->offset)) return false;
  if (!hak_mod_symbol_at(k->module, k->offset, k->symbol, sizeof k->symbol, &k->symbol_offset)) k->symbol[0] = 0;
  return true;
}
