/* hakmem-options: lists every HAKMEM_* option from the one table
 * (src/options.def), as text or (--markdown) as the markdown table that
 * README.md and docs/options.md carry.  `hakmem options` runs it. */
#include <stdio.h>
#include <string.h>

#include "../src/options.h"

static const char *const kind_names[] = {"bool", "size", "int", "choice", "path", "real"};

/* A size with the largest K/M/G suffix that divides it exactly. */
static void fmt_size(char *buf, size_t cap, long long v) {
  static const char suffix[] = "GMK";
  for (int i = 0; i < 3; i++) {
    int shift = 30 - 10 * i;
    long long unit = 1ll << shift;
    if (v != 0 && v % unit == 0) {
      snprintf(buf, cap, "%lld%c", v / unit, suffix[i]);
      return;
    }
  }
  snprintf(buf, cap, "%lld", v);
}

static void fmt_value(char *buf, size_t cap, int opt, const hak_option_desc_t *d, long long v) {
  switch (d->kind) {
    case HAK_OPT_SIZE: fmt_size(buf, cap, v); break;
    case HAK_OPT_CHOICE:
    case HAK_OPT_REAL: hak_option_value_str(opt, v, buf, cap); break;
    case HAK_OPT_PATH: snprintf(buf, cap, "-"); break;
    default: snprintf(buf, cap, "%lld", v);
  }
}

static void fmt_range(char *buf, size_t cap, int opt, const hak_option_desc_t *d) {
  char lo[32], hi[32];
  switch (d->kind) {
    case HAK_OPT_BOOL: snprintf(buf, cap, "0 or 1"); break;
    case HAK_OPT_PATH: snprintf(buf, cap, "a file path"); break;
    case HAK_OPT_CHOICE: {
      size_t n = 0;
      buf[0] = 0;
      const char *const *c = hak_option_choices(opt);
      for (int m = 0; c && c[m] && n < cap; m++) n += (size_t)snprintf(buf + n, cap - n, "%s%s", m ? ", " : "", c[m]);
      break;
    }
    default:
      fmt_value(lo, sizeof lo, opt, d, d->lo);
      fmt_value(hi, sizeof hi, opt, d, d->hi);
      snprintf(buf, cap, "%s to %s", lo, hi);
  }
}

/* Markdown cells: a '|' in the text would split the cell. */
static void put_cell(const char *s) {
  for (; *s; s++) {
    if (*s == '|') fputc('\\', stdout);
    fputc(*s, stdout);
  }
}

static void usage(FILE *f) {
  fputs("usage: hakmem-options [--markdown | --knobs]\n"
        "Lists every HAKMEM_* environment variable hakmem reads: its type, default,\n"
        "accepted range and meaning (--markdown: as a markdown table).\n"
        "--knobs: the learner's knobs, one per line: name, variable, ladder values.\n",
        f);
}

/* The learner's knobs (src/learn/knobs.def), for `hakmem bench --sweep`. */
static int print_knobs(void) {
#define HAK_KNOB(id, kname, opt, ...)                                       \
  {                                                                         \
    static const double v[] = {__VA_ARGS__};                                \
    printf("%s %s", kname, hak_option_table[HAK_O_##opt].name);            \
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) printf(" %.15g", v[i]); \
    printf("\n");                                                           \
  }
#include "../src/learn/knobs.def"
#undef HAK_KNOB
  return ferror(stdout) ? 1 : 0;
}

int main(int argc, char **argv) {
  int markdown = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--markdown")) markdown = 1;
    else if (!strcmp(argv[i], "--knobs")) return print_knobs();
    else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      usage(stdout);
      return 0;
    } else {
      fprintf(stderr, "hakmem-options: unknown argument '%s'\n", argv[i]);
      usage(stderr);
      return 2;
    }
  }
  char def[64], range[128];
  if (markdown) {
    puts("| variable | type | default | range | meaning |");
    puts("|---|---|---|---|---|");
  } else {
    puts("hakmem options: HAKMEM_* environment variables, read once at start-up.");
    puts("Sizes take K, M or G suffixes; a bad value is reported and the default used.\n");
    printf("%-28s %-6s %-9s %s\n", "variable", "type", "default", "range");
  }
  for (int i = 0; i < HAK_O_COUNT; i++) {
    const hak_option_desc_t *d = &hak_option_table[i];
    fmt_value(def, sizeof def, i, d, d->def);
    fmt_range(range, sizeof range, i, d);
    if (markdown) {
      printf("| `%s` | %s | %s | %s | ", d->name, kind_names[d->kind], def, range);
      put_cell(d->help);
      puts(" |");
    } else {
      printf("%-28s %-6s %-9s %s\n", d->name, kind_names[d->kind], def, range);
      printf("    %s\n", d->help);
    }
  }
  return ferror(stdout) ? 1 : 0;
}
