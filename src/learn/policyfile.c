/* Policy files: the learned policy as JSON a person can read and edit.
 *
 *   {"hakmem_policy": 1, "state": "FROZEN",
 *    "knobs": {"big_threshold": 2097152, "purge_delay_ms": 1000, ...},
 *    "reference_histogram": [0.01, ...]}
 *
 * Reading never allocates (a scratch mapping holds the file) and never
 * half-applies: any error (missing file, bad JSON, unknown knob, value out
 * of range) is reported once and nothing is taken from the file. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../internal.h"
#include "../msg.h"
#include "../os.h"
#include "control.h"
#include "sites.h"

#define POLICY_FILE_MAX ((size_t)16 << 20)
#define HIST_SCALE 1e9 /* a fraction in the file, counts out of HIST_SCALE in memory */

typedef struct parser {
  const char *s, *end;
  const char *err; /* first error, static text */
} parser_t;

static void ws(parser_t *p) {
  while (p->s < p->end && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r')) p->s++;
}

static bool fail(parser_t *p, const char *why) {
  if (!p->err) p->err = why;
  return false;
}

static bool eat(parser_t *p, char c) {
  ws(p);
  if (p->s < p->end && *p->s == c) {
    p->s++;
    return true;
  }
  return false;
}

/* A string without escapes we need to understand: returns its span. */
static bool string(parser_t *p, const char **str, size_t *len) {
  if (!eat(p, '"')) return fail(p, "expected a string");
  const char *b = p->s;
  while (p->s < p->end && *p->s != '"') {
    if (*p->s == '\\' && p->s + 1 < p->end) p->s++;
    p->s++;
  }
  if (p->s >= p->end) return fail(p, "unterminated string");
  *str = b;
  *len = (size_t)(p->s - b);
  p->s++;
  return true;
}

static bool number(parser_t *p, double *out) {
  ws(p);
  const char *b = p->s;
  bool neg = false;
  if (p->s < p->end && *p->s == '-') neg = true, p->s++;
  double v = 0, scale = 1;
  bool digits = false;
  while (p->s < p->end && *p->s >= '0' && *p->s <= '9') v = v * 10 + (*p->s++ - '0'), digits = true;
  if (p->s < p->end && *p->s == '.') {
    p->s++;
    while (p->s < p->end && *p->s >= '0' && *p->s <= '9') scale /= 10, v += (*p->s++ - '0') * scale, digits = true;
  }
  if (p->s < p->end && (*p->s == 'e' || *p->s == 'E')) {
    p->s++;
    bool eneg = p->s < p->end && *p->s == '-';
    if (p->s < p->end && (*p->s == '-' || *p->s == '+')) p->s++;
    int e = 0;
    while (p->s < p->end && *p->s >= '0' && *p->s <= '9' && e < 400) e = e * 10 + (*p->s++ - '0');
    while (e-- > 0) v = eneg ? v / 10 : v * 10;
  }
  if (!digits) {
    p->s = b;
    return fail(p, "expected a number");
  }
  *out = neg ? -v : v;
  return true;
}

static bool skip_value(parser_t *p, int depth);

static bool skip_container(parser_t *p, char close, int depth) {
  if (eat(p, close)) return true;
  do {
    if (close == '}') {
      const char *k;
      size_t n;
      if (!string(p, &k, &n) || !eat(p, ':')) return fail(p, "expected \"key\": value");
    }
    if (!skip_value(p, depth + 1)) return false;
  } while (eat(p, ','));
  return eat(p, close) || fail(p, close == '}' ? "expected , or }" : "expected , or ]");
}

static bool skip_value(parser_t *p, int depth) {
  if (depth > 64) return fail(p, "nested too deeply");
  ws(p);
  if (p->s >= p->end) return fail(p, "unexpected end");
  const char *k;
  size_t n;
  double d;
  switch (*p->s) {
    case '{': p->s++; return skip_container(p, '}', depth);
    case '[': p->s++; return skip_container(p, ']', depth);
    case '"': return string(p, &k, &n);
    case 't': if (p->end - p->s >= 4 && !memcmp(p->s, "true", 4)) { p->s += 4; return true; } break;
    case 'f': if (p->end - p->s >= 5 && !memcmp(p->s, "false", 5)) { p->s += 5; return true; } break;
    case 'n': if (p->end - p->s >= 4 && !memcmp(p->s, "null", 4)) { p->s += 4; return true; } break;
    default: return number(p, &d);
  }
  return fail(p, "unexpected text");
}

static bool key_is(const char *k, size_t n, const char *want) {
  return strlen(want) == n && !memcmp(k, want, n);
}

static bool read_knobs(parser_t *p, hak_policy_t *pol, char *bad, size_t badcap) {
  if (!eat(p, '{')) return fail(p, "\"knobs\" must be an object");
  if (eat(p, '}')) return true;
  do {
    const char *k;
    size_t n;
    double v;
    if (!string(p, &k, &n) || !eat(p, ':') || !number(p, &v)) return fail(p, "knobs: expected \"name\": number");
    int idx = hak_knob_find(k, n);
    if (idx < 0 || !hak_knob_set((unsigned)idx, pol, v)) {
      size_t m = n < badcap - 1 ? n : badcap - 1;
      memcpy(bad, k, m);
      bad[m] = 0;
      return fail(p, idx < 0 ? "unknown knob" : "knob value out of range");
    }
  } while (eat(p, ','));
  return eat(p, '}') || fail(p, "knobs: expected , or }");
}

static bool read_hist(parser_t *p, uint64_t *ref, unsigned nref) {
  if (!eat(p, '[')) return fail(p, "\"reference_histogram\" must be an array");
  if (eat(p, ']')) return true;
  unsigned i = 0;
  do {
    double v;
    if (!number(p, &v)) return false;
    if (v < 0 || v > 1) return fail(p, "reference_histogram: fractions between 0 and 1");
    if (i < nref) ref[i] = (uint64_t)(v * HIST_SCALE);
    i++;
  } while (eat(p, ','));
  if (!eat(p, ']')) return fail(p, "reference_histogram: expected , or ]");
  /* Another number of bins: written by a hakmem with other size classes,
   * whose bins mean other sizes.  No reference then (the first windows
   * watched make it), rather than a shift seen at once. */
  if (i != nref) memset(ref, 0, nref * sizeof *ref);
  return true;
}

/* Site decisions by name, as a file spells them. */
static const struct {
  const char *name;
  unsigned flag;
} decision_names[] = {{"long_lived", HAK_SITE_LONG}, {"cache", HAK_SITE_CACHE}, {"no_cache", HAK_SITE_NOCACHE},
                      {"grow", HAK_SITE_GROW}};

static bool hex_or_number(parser_t *p, uintptr_t *out) {
  ws(p);
  if (p->s < p->end && *p->s == '"') { /* "0x1a2b" */
    const char *k;
    size_t n;
    if (!string(p, &k, &n)) return false;
    uintptr_t v = 0;
    size_t i = n > 2 && k[0] == '0' && (k[1] | 0x20) == 'x' ? 2 : 0;
    if (i == n) return fail(p, "expected a hex offset");
    for (; i < n; i++) {
      unsigned d = k[i] >= '0' && k[i] <= '9' ? (unsigned)(k[i] - '0')
                   : (k[i] | 0x20) >= 'a' && (k[i] | 0x20) <= 'f' ? (unsigned)((k[i] | 0x20) - 'a' + 10) : 16;
      if (d == 16 || v >> 60) return fail(p, "expected a hex offset");
      v = v * 16 + d;
    }
    *out = v;
    return true;
  }
  double d;
  if (!number(p, &d) || d < 0) return fail(p, "expected an offset");
  *out = (uintptr_t)d;
  return true;
}

static bool copy_str(parser_t *p, char *dst, size_t cap) {
  const char *k;
  size_t n;
  if (!string(p, &k, &n)) return false;
  if (n >= cap) return fail(p, "name too long");
  memcpy(dst, k, n);
  dst[n] = 0;
  return true;
}

/* "sites": [{"module": "/usr/bin/x", "offset": "0x1234", "symbol": "f",
 *            "symbol_offset": 18, "decision": ["long_lived", ...], ...}] */
static bool read_sites(parser_t *p, hak_site_key_t *keys, unsigned *nkeys, unsigned cap) {
  if (!eat(p, '[')) return fail(p, "\"sites\" must be an array");
  if (eat(p, ']')) return true;
  do {
    hak_site_key_t k;
    memset(&k, 0, sizeof k);
    bool module = false, offset = false;
    if (!eat(p, '{')) return fail(p, "a site must be an object");
    if (!eat(p, '}')) {
      do {
        const char *key;
        size_t n;
        if (!string(p, &key, &n) || !eat(p, ':')) return fail(p, "expected \"key\": value");
        if (key_is(key, n, "module")) {
          if (!copy_str(p, k.module, sizeof k.module)) return false;
          module = true;
        } else if (key_is(key, n, "offset")) {
          if (!hex_or_number(p, &k.offset)) return false;
          offset = true;
        } else if (key_is(key, n, "symbol")) {
          if (!copy_str(p, k.symbol, sizeof k.symbol)) return false;
        } else if (key_is(key, n, "symbol_offset")) {
          if (!hex_or_number(p, &k.symbol_offset)) return false;
        } else if (key_is(key, n, "decision")) {
          if (!eat(p, '[')) return fail(p, "\"decision\" must be an array of names");
          if (!eat(p, ']')) {
            do {
              const char *d;
              size_t dn;
              if (!string(p, &d, &dn)) return false;
              unsigned i = 0;
              while (i < sizeof decision_names / sizeof decision_names[0] && !key_is(d, dn, decision_names[i].name)) i++;
              if (i == sizeof decision_names / sizeof decision_names[0]) return fail(p, "unknown site decision");
              k.flags |= decision_names[i].flag;
            } while (eat(p, ','));
            if (!eat(p, ']')) return fail(p, "decision: expected , or ]");
          }
        } else if (!skip_value(p, 0)) { /* "why", comments */
          return false;
        }
      } while (eat(p, ','));
      if (!eat(p, '}')) return fail(p, "site: expected , or }");
    }
    if (!module || !offset) return fail(p, "a site needs \"module\" and \"offset\"");
    if (*nkeys < cap) keys[(*nkeys)++] = k;
  } while (eat(p, ','));
  return eat(p, ']') || fail(p, "sites: expected , or ]");
}

#define FILE_KEYS 512
hak_big_bss static hak_site_key_t file_keys[FILE_KEYS];

static bool parse(parser_t *p, hak_policy_t *pol, uint64_t *ref, unsigned nref, char *bad, size_t badcap,
                  unsigned *nkeys) {
  bool version = false;
  if (!eat(p, '{')) return fail(p, "not a JSON object");
  if (!eat(p, '}')) {
    do {
      const char *k;
      size_t n;
      if (!string(p, &k, &n) || !eat(p, ':')) return fail(p, "expected \"key\": value");
      if (key_is(k, n, "hakmem_policy")) {
        double v;
        if (!number(p, &v)) return false;
        if (v != 1) return fail(p, "unsupported \"hakmem_policy\" version (this hakmem reads 1)");
        version = true;
      } else if (key_is(k, n, "knobs")) {
        if (!read_knobs(p, pol, bad, badcap)) return false;
      } else if (key_is(k, n, "reference_histogram")) {
        if (!read_hist(p, ref, nref)) return false;
      } else if (key_is(k, n, "sites")) {
        if (!read_sites(p, file_keys, nkeys, FILE_KEYS)) return false;
      } else if (!skip_value(p, 0)) { /* state, comments, later additions */
        return false;
      }
    } while (eat(p, ','));
    if (!eat(p, '}')) return fail(p, "expected , or }");
  }
  ws(p);
  if (p->s != p->end) return fail(p, "text after the policy object");
  return version || fail(p, "no \"hakmem_policy\": 1 (not a hakmem policy file)");
}

bool hak_policyfile_read(const char *path, hak_policy_t *out, uint64_t *ref, unsigned nref) {
  int saved = errno;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) {
    hak_error("policy file %s: cannot read it (%s); using the defaults", path,
              errno == ENOENT ? "no such file" : "open failed");
    if (fd >= 0) close(fd);
    errno = saved;
    return false;
  }
  if (st.st_size <= 0 || (size_t)st.st_size > POLICY_FILE_MAX) {
    hak_error("policy file %s: %s; using the defaults", path, st.st_size <= 0 ? "empty" : "too large");
    close(fd);
    errno = saved;
    return false;
  }
  size_t size = (size_t)st.st_size, cap = hak_align_up(size, HAK_PAGE);
  char *buf = hak_os_map_aligned(cap, HAK_PAGE);
  size_t got = 0;
  while (buf && got < size) {
    ssize_t r = read(fd, buf + got, size - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += (size_t)r;
  }
  close(fd);
  errno = saved;
  if (!buf || got != size) {
    if (buf) hak_os_unmap(buf, cap);
    hak_error("policy file %s: cannot read it; using the defaults", path);
    return false;
  }
  hak_policy_t pol = *out;
  uint64_t hist[HAK_LEARN_HIST_BINS];
  memset(hist, 0, sizeof hist);
  char bad[64] = "";
  parser_t p = {buf, buf + size, NULL};
  unsigned nkeys = 0;
  bool ok = parse(&p, &pol, hist, nref < HAK_LEARN_HIST_BINS ? nref : HAK_LEARN_HIST_BINS, bad, sizeof bad, &nkeys);
  if (!ok) {
    size_t line = 1;
    for (const char *c = buf; c < p.s && c < buf + size; c++) line += *c == '\n';
    if (*bad) hak_error("policy file %s, line %zu: %s \"%s\"; using the defaults", path, line, p.err, bad);
    else hak_error("policy file %s, line %zu: %s; using the defaults", path, line, p.err);
  } else {
    *out = pol;
    if (ref) memcpy(ref, hist, (nref < HAK_LEARN_HIST_BINS ? nref : HAK_LEARN_HIST_BINS) * sizeof *ref);
    for (unsigned i = 0; i < nkeys; i++) hak_sites_file_add(&file_keys[i]);
  }
  hak_os_unmap(buf, cap);
  return ok;
}

static void json_str(hak_sink_t *s, const char *v) {
  hak_sink_printf(s, "\"");
  for (; *v; v++)
    if (*v == '"' || *v == '\\') hak_sink_printf(s, "\\%c", *v);
    else if ((unsigned char)*v >= 0x20) hak_sink_printf(s, "%c", *v);
  hak_sink_printf(s, "\"");
}

/* The decisions, each with the history it was made from (the "why"). */
static void write_sites(hak_sink_t *s, const hak_site_table_t *t) {
  if (!t) return;
  bool first = true;
  for (unsigned i = 0; i < HAK_SITE_TABLE; i++) {
    unsigned f = t->e[i].flags & ~HAK_SITE_DECIDED;
    hak_site_key_t k;
    if (!t->e[i].addr || !f || !hak_site_key_of(t->e[i].addr, &k)) continue;
    hak_sink_printf(s, "%s\n    {\"module\": ", first ? ",\n  \"sites\": [" : ",");
    first = false;
    json_str(s, k.module);
    hak_sink_printf(s, ", \"offset\": \"0x%lx\"", (unsigned long)k.offset);
    if (*k.symbol) {
      hak_sink_printf(s, ", \"symbol\": ");
      json_str(s, k.symbol);
      hak_sink_printf(s, ", \"symbol_offset\": %lu", (unsigned long)k.symbol_offset);
    }
    hak_sink_printf(s, ", \"decision\": [");
    bool d1 = true;
    for (unsigned j = 0; j < sizeof decision_names / sizeof decision_names[0]; j++)
      if (f & decision_names[j].flag) {
        hak_sink_printf(s, "%s\"%s\"", d1 ? "" : ", ", decision_names[j].name);
        d1 = false;
      }
    hak_sink_printf(s, "]");
    hak_site_history_t h;
    if (hak_site_history_of(t->e[i].addr, &h))
      hak_sink_printf(s, ", \"why\": {\"blocks\": %llu, \"freed\": %llu, \"mean_life_ms\": %llu, \"big\": %llu, "
                         "\"mean_gap_ms\": %llu, \"grows\": %llu}",
                      (unsigned long long)h.allocs, (unsigned long long)h.frees,
                      (unsigned long long)(h.frees ? h.life_ms / h.frees : 0), (unsigned long long)h.big,
                      (unsigned long long)(h.gaps ? h.gap_ms / h.gaps : 0), (unsigned long long)h.grows);
    hak_sink_printf(s, "}");
  }
  if (!first) hak_sink_printf(s, "\n  ]");
}

bool hak_policyfile_write(const char *path, const hak_policy_t *pol, const double *ref, unsigned nref,
                          const char *state) {
  char name[1024];
  size_t o = 0;
  for (const char *c = path; *c && o + 24 < sizeof name; c++) {
    if (c[0] == '%' && c[1] == 'p') {
      o += hak_fmt(name + o, sizeof name - o, "%d", hak_os_pid());
      c++;
    } else {
      name[o++] = *c;
    }
  }
  name[o] = 0;
  int saved = errno;
  int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  errno = saved;
  if (fd < 0) {
    hak_error("cannot write the policy file %s", name);
    return false;
  }
  char buf[4096];
  hak_sink_t s = {.buf = buf, .cap = sizeof buf, .fd = fd};
  hak_sink_printf(&s, "{\n  \"hakmem_policy\": 1,\n  \"state\": \"%s\",\n  \"knobs\": {", state);
  for (unsigned k = 0; k < HAK_NKNOBS; k++) {
    double v = hak_knob_value(k, pol);
    long long whole = (long long)v, milli = (long long)((v - (double)whole) * 1000 + 0.5);
    hak_sink_printf(&s, "%s\n    \"%s\": %lld", k ? "," : "", hak_knob_name(k), whole);
    if (milli) hak_sink_printf(&s, ".%u%u%u", (unsigned)(milli / 100), (unsigned)(milli / 10 % 10), (unsigned)(milli % 10));
  }
  hak_sink_printf(&s, "\n  }");
  if (ref && nref) {
    hak_sink_printf(&s, ",\n  \"reference_histogram\": [");
    for (unsigned i = 0; i < nref; i++) {
      long long v = (long long)(ref[i] * 1e6 + 0.5); /* six decimals */
      if (v > 1000000) v = 1000000;
      hak_sink_printf(&s, "%s%s%lld.", i ? "," : "", i % 12 ? " " : "\n    ", v / 1000000);
      long long f = v % 1000000;
      char d[7];
      for (int k = 5; k >= 0; k--, f /= 10) d[k] = (char)('0' + f % 10);
      d[6] = 0;
      hak_sink_printf(&s, "%s", d);
    }
    hak_sink_printf(&s, "\n  ]");
  }
  write_sites(&s, pol->sites);
  hak_sink_printf(&s, "\n}\n");
  hak_sink_flush(&s);
  close(fd);
  return true;
}
