/* A second file of test_learn_prog with static functions named like the
 * sites of test_learn_prog.c: a real program's static functions share names
 * across files (its many `run`s), and a policy file's site must resolve to
 * the one it was recorded in (learn_sites).  Linked first, so that its
 * `long_site` comes first in the symbol table. */
#include <stdlib.h>

__attribute__((noinline)) static void *long_site(size_t n) {
  void *p = calloc(1, n);
  __asm__ volatile("" : : "r"(p) : "memory");
  return p;
}

void learn_prog_twin(void);
void learn_prog_twin(void) { free(long_site(64)); }
