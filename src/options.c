/* Options: parsed from `environ` once, at process init, without allocating. */
#include "options.h"

#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "internal.h"
#include "msg.h"

extern char **environ;

const hak_option_desc_t hak_option_table[HAK_O_COUNT] = {
#define HAK_OPTION(id, name, kind, def, lo, hi, help) {name, kind, def, lo, hi, help},
#include "options.def"
#undef HAK_OPTION
};

long long hak_opt[HAK_O_COUNT];
bool hak_opt_set[HAK_O_COUNT];
const char *hak_opt_str[HAK_O_COUNT];

static const char *const mode_names[] = {"minimal", "fast", "balanced", "learning", "research", NULL};
static const char *const algo_names[] = {"ucb1", "elo", NULL};
static const char *const on_error_names[] = {"report", "abort", NULL};

const char *const *hak_option_choices(int id) {
  switch (id) {
    case HAK_O_MODE: return mode_names;
    case HAK_O_LEARN_ALGO: return algo_names;
    case HAK_O_ON_ERROR: return on_error_names;
  }
  return NULL;
}

const char *hak_mode_name(long long mode) {
  return mode >= 0 && mode < 5 ? mode_names[mode] : "?";
}

/* Index of s among an option's choices (exact, like every other value), -1 if none. */
static int choice_index(const char *const *names, const char *s) {
  for (int i = 0; names && names[i]; i++)
    if (!strcmp(s, names[i])) return i;
  return -1;
}

/* A decimal number with up to six decimals, or a percentage ("5%"), in
 * millionths. */
static bool parse_real(const char *s, long long *out) {
  unsigned long long whole = 0, frac = 0, scale = 1000000;
  if (!*s || *s == '%') return false;
  for (; *s >= '0' && *s <= '9'; s++) {
    if (whole > 1000000000ull) return false;
    whole = whole * 10 + (unsigned long long)(*s - '0');
  }
  if (*s == '.') {
    s++;
    for (; *s >= '0' && *s <= '9'; s++)
      if (scale > 1) scale /= 10, frac += (unsigned long long)(*s - '0') * scale;
  }
  unsigned long long v = whole * 1000000ull + frac;
  if (*s == '%') v /= 100, s++;
  if (*s) return false;
  *out = (long long)v;
  return true;
}

/* The option named by the n bytes at s, or -1. */
static int option_named(const char *s, size_t n) {
  for (int i = 0; i < HAK_O_COUNT; i++)
    if (strlen(hak_option_table[i].name) == n && !strncmp(s, hak_option_table[i].name, n)) return i;
  return -1;
}

/* The length of an environment entry's name. */
static size_t env_name_len(const char *e) {
  const char *eq = strchr(e, '=');
  return eq ? (size_t)(eq - e) : strlen(e);
}

/* Every option's value in the environment (the first, as getenv finds
 * it), from one pass over it: one scan of the whole environment per
 * option cost every process start 36 x its length strncmp calls, 70k of
 * the 222k instructions /bin/true ran with the library (callgrind). */
static void env_values(const char *val[HAK_O_COUNT]) {
  if (!environ) return;
  for (char **e = environ; *e; e++) {
    if (strncmp(*e, "HAKMEM_", 7) != 0) continue;
    size_t n = env_name_len(*e);
    int i = (*e)[n] == '=' ? option_named(*e, n) : -1;
    if (i >= 0 && !val[i]) val[i] = *e + n + 1;
  }
}

/* Parses a decimal number with an optional K/M/G suffix (sizes only). */
static bool parse_number(const char *s, bool size, long long *out) {
  unsigned long long v = 0;
  if (!*s) return false;
  if (s[0] == '0' && (s[1] | 0x20) == 'x' && s[2]) { /* 0xA5: a fill byte reads better in hex */
    for (s += 2; *s; s++) {
      unsigned d = *s >= '0' && *s <= '9' ? (unsigned)(*s - '0')
                   : (*s | 0x20) >= 'a' && (*s | 0x20) <= 'f' ? (unsigned)((*s | 0x20) - 'a' + 10) : 16;
      if (d > 15 || v > (1ull << 50)) return false;
      v = v * 16 + d;
    }
    *out = (long long)v;
    return true;
  }
  for (; *s >= '0' && *s <= '9'; s++) {
    if (v > (1ull << 50)) return false;
    v = v * 10 + (unsigned long long)(*s - '0');
  }
  if (size && *s) {
    unsigned shift = 0;
    switch (*s | 0x20) {
      case 'k': shift = 10; break;
      case 'm': shift = 20; break;
      case 'g': shift = 30; break;
      default: return false;
    }
    s++;
    if ((*s | 0x20) == 'b' || (*s | 0x20) == 'i') s++; /* 4KB, 4KiB */
    if (*s == 'B') s++;
    if (v > (1ull << (62 - shift))) return false;
    v <<= shift;
  }
  if (*s) return false;
  *out = (long long)v;
  return true;
}

static bool parse_value(int id, const hak_option_desc_t *d, const char *s, long long *out) {
  switch (d->kind) {
    case HAK_OPT_BOOL:
      if (!strcmp(s, "1") || !strcmp(s, "on") || !strcmp(s, "yes") || !strcmp(s, "true")) {
        *out = 1;
        return true;
      }
      if (!strcmp(s, "0") || !strcmp(s, "off") || !strcmp(s, "no") || !strcmp(s, "false")) {
        *out = 0;
        return true;
      }
      return false;
    case HAK_OPT_CHOICE: {
      int k = choice_index(hak_option_choices(id), s);
      if (k < 0) return false;
      *out = k;
      return true;
    }
    case HAK_OPT_REAL:
      return parse_real(s, out) && *out >= d->lo && *out <= d->hi;
    case HAK_OPT_SIZE:
    case HAK_OPT_INT:
      return parse_number(s, d->kind == HAK_OPT_SIZE, out) && *out >= d->lo && *out <= d->hi;
    case HAK_OPT_PATH:
      *out = 1;
      return *s != 0;
  }
  return false;
}

/* A REAL value (millionths) as a short decimal: 50000 -> "0.05". */
static void real_str(char *buf, size_t cap, long long v) {
  size_t n = hak_fmt(buf, cap, "%lld", v / 1000000);
  long long f = v % 1000000;
  if (!f) return;
  char digits[8];
  for (int k = 5; k >= 0; k--, f /= 10) digits[k] = (char)('0' + f % 10);
  digits[6] = 0;
  size_t k = 6;
  while (k > 1 && digits[k - 1] == '0') digits[--k] = 0;
  hak_fmt(buf + n, cap - n, ".%s", digits);
}

const char *hak_option_value_str(int id, long long v, char *buf, size_t cap) {
  const hak_option_desc_t *d = &hak_option_table[id];
  switch (d->kind) {
    case HAK_OPT_CHOICE: {
      const char *const *names = hak_option_choices(id);
      hak_fmt(buf, cap, "%s", v >= 0 && names && v < 8 ? names[v] : "?");
      break;
    }
    case HAK_OPT_REAL: real_str(buf, cap, v); break;
    case HAK_OPT_PATH: hak_fmt(buf, cap, "%s", hak_opt_str[id] ? hak_opt_str[id] : "-"); break;
    default: hak_fmt(buf, cap, "%lld", v);
  }
  return buf;
}

static void report_bad(int id, const hak_option_desc_t *d, const char *s) {
  char def[48], lo[48], hi[48], names[128];
  hak_option_value_str(id, d->def, def, sizeof def);
  switch (d->kind) {
    case HAK_OPT_BOOL:
      hak_error("%s=%s is not a boolean (use 0 or 1); using %lld", d->name, s, d->def);
      break;
    case HAK_OPT_CHOICE: {
      size_t n = 0;
      names[0] = 0;
      const char *const *c = hak_option_choices(id);
      for (int k = 0; c && c[k]; k++) n += hak_fmt(names + n, sizeof names - n, "%s%s", k ? ", " : "", c[k]);
      hak_error("%s=%s is not %s (%s); using %s", d->name, s, id == HAK_O_MODE ? "a mode" : "one of", names, def);
      break;
    }
    case HAK_OPT_PATH:
      hak_error("%s is empty; ignored", d->name);
      break;
    case HAK_OPT_REAL:
      hak_error("%s=%s is not a number in [%s, %s] (decimals or a percentage); using %s", d->name, s,
                hak_option_value_str(id, d->lo, lo, sizeof lo), hak_option_value_str(id, d->hi, hi, sizeof hi),
                def);
      break;
    default:
      hak_error("%s=%s is not a number in [%lld, %lld]%s; using %lld", d->name, s, d->lo, d->hi,
                d->kind == HAK_OPT_SIZE ? " (K/M/G suffixes allowed)" : "", d->def);
  }
}

/* Edit distance between two short names (typo suggestions). */
static inline char upper(char c) { return c >= 'a' && c <= 'z' ? (char)(c - 32) : c; }

static unsigned edit_distance(const char *a, const char *b) {
  unsigned row[64];
  size_t la = strlen(a), lb = strlen(b);
  if (la > 63 || lb > 63) return 99;
  for (size_t j = 0; j <= lb; j++) row[j] = (unsigned)j;
  for (size_t i = 1; i <= la; i++) {
    unsigned diag = row[0];
    row[0] = (unsigned)i;
    for (size_t j = 1; j <= lb; j++) {
      unsigned up = row[j];
      unsigned best = diag + (upper(a[i - 1]) != upper(b[j - 1]));
      if (up + 1 < best) best = up + 1;
      if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
      row[j] = best;
      diag = up;
    }
  }
  return row[lb];
}

static void report_unknown(const char *name) {
  const char *best = NULL;
  unsigned bd = 4; /* suggest only close names */
  for (int i = 0; i < HAK_O_COUNT; i++) {
    unsigned d = edit_distance(name, hak_option_table[i].name);
    if (d < bd) bd = d, best = hak_option_table[i].name;
  }
  if (best) hak_error("unknown option %s ignored; did you mean %s?", name, best);
  else hak_error("unknown option %s ignored (see `hakmem options`)", name);
}

/* The default of option i under a mode: the table's, unless the preset
 * says otherwise.  Explicit variables override presets; a bad value falls
 * back to this. */
static long long preset_default(int i, long long mode) {
  if (mode == HAK_MODE_RESEARCH && i == HAK_O_VERBOSE) return 1;
  /* minimal: memory first.  Huge pages make a Big buffer's first touch and
   * its TLB misses cheaper (sort -26 %, xz -6 -13 %) but cost RSS where a
   * buffer is touched sparsely (xz: 28.1 -> 32.5 MiB). */
  if (mode == HAK_MODE_MINIMAL &&
      (i == HAK_O_BIGCACHE || i == HAK_O_LARGE_CACHE || i == HAK_O_SEGMENT_CACHE || i == HAK_O_THP))
    return 0;
  if (HAKMEM_SECURE && i == HAK_O_ON_ERROR) return HAK_ON_ERROR_ABORT; /* the secure library stops */
  return hak_option_table[i].def;
}

hak_front void hak_options_init(void) {
  const char *val[HAK_O_COUNT] = {0};
  env_values(val);
  /* The mode first: the other defaults depend on it. */
  for (int pass = 0; pass < 2; pass++)
    for (int i = 0; i < HAK_O_COUNT; i++) {
      if ((i == HAK_O_MODE) != (pass == 0)) continue;
      hak_option_desc_t d = hak_option_table[i];
      d.def = preset_default(i, pass ? hak_opt[HAK_O_MODE] : d.def);
      hak_opt[i] = d.def;
      const char *s = val[i];
      if (!s) continue;
      long long v;
      if (parse_value(i, &d, s, &v)) {
        hak_opt[i] = v;
        hak_opt_set[i] = true;
        if (d.kind == HAK_OPT_PATH) hak_opt_str[i] = s;
      } else {
        report_bad(i, &d, s);
      }
    }
  /* A HAKMEM_* name we do not know is probably a typo. */
  if (environ)
    for (char **e = environ; *e; e++) {
      if (strncmp(*e, "HAKMEM_", 7) != 0) continue;
      size_t n = env_name_len(*e);
      if (option_named(*e, n) < 0) {
        char name[64];
        size_t k = n < sizeof name - 1 ? n : sizeof name - 1;
        memcpy(name, *e, k);
        name[k] = 0;
        report_unknown(name);
      }
    }
  if (hak_opt[HAK_O_VERBOSE]) hak_options_print(2);
}

void hak_options_print(int fd) {
  for (int i = 0; i < HAK_O_COUNT; i++) {
    char v[64];
    hak_fdprintf(fd, "hakmem: %-24s %s\n", hak_option_table[i].name, hak_option_value_str(i, hak_opt[i], v, sizeof v));
  }
}
