/* test_sites — per-site decisions (src/learn/sites.c): the rules on
 * synthetic site histories, the decision table, and a site table that
 * overflows (its "other" row gets the default decision).  Linked to the
 * static hakmem_api, whose internal functions it calls. */
#include "check.h"

#include "../src/learn/sites.h"

uint32_t hak_site_clock(void);

static hak_site_history_t hist(uint64_t allocs, uint64_t frees, uint64_t mean_life, uint64_t big, uint64_t gaps,
                               uint64_t mean_gap, uint64_t grows, uint32_t first, uint32_t last) {
  hak_site_history_t h = {.addr = 0x1234, .allocs = allocs, .frees = frees, .life_ms = mean_life * frees,
                          .big = big, .bytes = allocs * 65536, .gaps = gaps, .gap_ms = mean_gap * gaps,
                          .grows = grows, .first_ms = first, .last_ms = last};
  return h;
}

static void rules(void) {
  hak_site_rules_t r;
  hak_site_rules_default(&r);
  const uint32_t now = 10000;
  unsigned f;
  /* Long-lived by the freed blocks' mean lifetime ... */
  hak_site_history_t h = hist(10, 10, 2500, 0, 9, 10, 0, 100, 500);
  f = hak_site_decide(&h, now, &r);
  CHECKF(f & HAK_SITE_LONG, "mean life 2.5 s: flags %#x", f);
  /* ... or by blocks still alive long after the site began. */
  h = hist(10, 1, 5, 0, 9, 10, 0, 100, 9900);
  CHECK(hak_site_decide(&h, now, &r) & HAK_SITE_LONG);
  /* Short-lived blocks, and too few blocks to say: not long-lived. */
  h = hist(100, 100, 20, 0, 99, 1, 0, 100, 9000);
  CHECK(!(hak_site_decide(&h, now, &r) & HAK_SITE_LONG));
  h = hist(3, 3, 5000, 0, 2, 1, 0, 100, 200);
  CHECK(!(hak_site_decide(&h, now, &r) & HAK_SITE_LONG));
  /* A site that has just begun is not long-lived yet. */
  h = hist(10, 0, 0, 0, 9, 10, 0, 9800, 9900);
  CHECK(!(hak_site_decide(&h, now, &r) & HAK_SITE_LONG));
  /* Big blocks reused soon: cache; once and long ago: no cache. */
  h = hist(20, 20, 5, 20, 19, 30, 0, 100, 9000);
  f = hak_site_decide(&h, now, &r);
  CHECKF((f & HAK_SITE_CACHE) && !(f & HAK_SITE_NOCACHE), "reused Big: flags %#x", f);
  h = hist(1, 1, 5, 1, 0, 0, 0, 1000, 1000);
  f = hak_site_decide(&h, now, &r);
  CHECKF((f & HAK_SITE_NOCACHE) && !(f & HAK_SITE_CACHE), "one-off Big: flags %#x", f);
  /* ... but not a single one that is recent (it may come again), nor one
   * whose allocations are far apart. */
  h = hist(1, 1, 5, 1, 0, 0, 0, 9500, 9500);
  CHECK(!(hak_site_decide(&h, now, &r) & (HAK_SITE_NOCACHE | HAK_SITE_CACHE)));
  h = hist(5, 5, 5, 5, 4, 3000, 0, 100, 9000);
  CHECK(!(hak_site_decide(&h, now, &r) & (HAK_SITE_NOCACHE | HAK_SITE_CACHE)));
  /* Growth: reallocs that grow again and again; a few do not count. */
  h = hist(10, 10, 5, 0, 9, 5, 40, 100, 9000);
  CHECK(hak_site_decide(&h, now, &r) & HAK_SITE_GROW);
  h = hist(100, 100, 5, 0, 99, 5, 3, 100, 9000);
  CHECK(!(hak_site_decide(&h, now, &r) & HAK_SITE_GROW));
  /* Every decision carries the "looked at" bit. */
  CHECK(hak_site_decide(&h, now, &r) & HAK_SITE_DECIDED);
}

static hak_site_table_t table;

static void decision_table(void) {
  memset(&table, 0, sizeof table);
  CHECK(hak_site_lookup(&table, (void *)0x1000) == 0);
  CHECK(hak_site_lookup(NULL, (void *)0x1000) == 0);
  CHECK(hak_site_table_put(&table, 0x1000, HAK_SITE_LONG));
  CHECK(hak_site_table_put(&table, 0x2000, HAK_SITE_CACHE));
  CHECK(hak_site_lookup(&table, (void *)0x1000) == HAK_SITE_LONG);
  CHECK(hak_site_lookup(&table, (void *)0x2000) == HAK_SITE_CACHE);
  CHECK(hak_site_lookup(&table, (void *)0x3000) == 0);
  CHECK(hak_site_table_put(&table, 0x1000, HAK_SITE_GROW)); /* update */
  CHECK(hak_site_lookup(&table, (void *)0x1000) == HAK_SITE_GROW && table.n == 2);
  /* Full: further sites are refused, and those in it keep their word. */
  unsigned put = 0;
  for (uintptr_t a = 0x10000; a < 0x10000 + 4 * HAK_SITE_TABLE * 16; a += 16) put += hak_site_table_put(&table, a, 1);
  CHECK(put > 0 && put < 4 * HAK_SITE_TABLE && table.n <= HAK_SITE_TABLE / 2);
  CHECK(hak_site_lookup(&table, (void *)0x2000) == HAK_SITE_CACHE);
}

/* More call sites than the site table holds (through the explicit API, with
 * made-up sites): the overflow goes to the "other" row, which gets the
 * default decision, and the sites that fitted are decided as usual. */
static void overflow(void) {
  enum { N = 6000 };
  static void *blocks[N];
  for (int i = 0; i < N; i++) {
    blocks[i] = hak_alloc_at(96 << 10, (const void *)(uintptr_t)(0x7f0000000000ull + (uintptr_t)i * 64));
    CHECK(blocks[i] != NULL);
  }
  /* Each site: one Large block, alive; judged at a time far in the future. */
  const hak_site_table_t *t = hak_sites_learn(hak_site_clock() + 100000, NULL, true);
  unsigned decided = 0, other = 0;
  for (int i = 0; i < N; i++) {
    hak_site_history_t h;
    uintptr_t a = 0x7f0000000000ull + (uintptr_t)i * 64;
    if (hak_site_history_of(a, &h)) decided++;
    else other += hak_site_lookup(t, (void *)a) == 0;
  }
  CHECKF(decided > 0 && decided < N && other == N - decided,
         "%u sites in the table, %u in the other row with the default decision", decided, other);
  for (int i = 0; i < N; i++) hak_free(blocks[i]);
}

int main(int argc, char **argv) {
  section_select(argc, argv);
  RUN_SECTION(rules);
  RUN_SECTION(decision_table);
  RUN_SECTION(overflow);
  return check_report("sites");
}
