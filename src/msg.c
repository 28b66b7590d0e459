/* See msg.h.  Deliberately small: it is used on error paths where nothing
 * else is safe. */
#include "msg.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "options.h"
#include "os.h"

static size_t fmt_num(char *tmp, unsigned long long v, unsigned base) {
  size_t n = 0;
  do {
    tmp[n++] = "0123456789abcdef"[v % base];
    v /= base;
  } while (v);
  return n;
}

size_t hak_vfmt(char *buf, size_t cap, const char *fmt, va_list ap) {
  size_t o = 0;
#define PUT(ch)                      \
  do {                               \
    if (o + 1 < cap) buf[o] = (ch);  \
    o++;                             \
  } while (0)
  for (const char *f = fmt; *f; f++) {
    if (*f != '%') {
      PUT(*f);
      continue;
    }
    f++;
    int left = 0, width = 0, lng = 0, zero = 0;
    if (*f == '-') left = 1, f++;
    if (*f == '0') zero = 1, f++; /* numbers padded with zeros: %03u */
    while (*f >= '0' && *f <= '9') width = width * 10 + (*f++ - '0');
    while (*f == 'l' || *f == 'z') lng++, f++;
    char tmp[32];
    const char *s = tmp;
    size_t len = 0;
    int neg = 0;
    switch (*f) {
      case 's':
        s = va_arg(ap, const char *);
        if (!s) s = "(null)";
        len = strlen(s);
        break;
      case 'c':
        tmp[0] = (char)va_arg(ap, int);
        len = 1;
        break;
      case 'd': {
        long long v = lng ? va_arg(ap, long long) : va_arg(ap, int);
        unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
        neg = v < 0;
        char r[24];
        size_t k = fmt_num(r, u, 10);
        if (neg) tmp[len++] = '-';
        while (k) tmp[len++] = r[--k];
        break;
      }
      case 'u':
      case 'x':
      case 'p': {
        unsigned long long v;
        if (*f == 'p') {
          v = (uintptr_t)va_arg(ap, void *);
          tmp[len++] = '0', tmp[len++] = 'x';
        } else {
          v = lng ? va_arg(ap, unsigned long long) : va_arg(ap, unsigned);
        }
        char r[24];
        size_t k = fmt_num(r, v, *f == 'u' ? 10 : 16);
        while (k) tmp[len++] = r[--k];
        break;
      }
      case '%':
        tmp[0] = '%';
        len = 1;
        break;
      default:
        tmp[0] = '?';
        len = 1;
        if (!*f) f--;
        break;
    }
    int pad = width > (int)len ? width - (int)len : 0;
    if (!left && zero && *f != 's' && *f != 'c') {
      size_t k = 0;
      if (len && s[0] == '-') { /* the sign before the zeros */
        PUT('-');
        k = 1;
      }
      while (pad-- > 0) PUT('0');
      for (; k < len; k++) PUT(s[k]);
      continue;
    }
    if (!left)
      while (pad-- > 0) PUT(' ');
    for (size_t i = 0; i < len; i++) PUT(s[i]);
    if (left)
      while (pad-- > 0) PUT(' ');
  }
#undef PUT
  if (cap) buf[o < cap ? o : cap - 1] = 0;
  return o < cap ? o : cap - 1;
}

size_t hak_fmt(char *buf, size_t cap, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  size_t n = hak_vfmt(buf, cap, fmt, ap);
  va_end(ap);
  return n;
}

void hak_write_all(int fd, const char *s, size_t n) {
  while (n) {
    long w = hak_os_write(fd, s, n);
    if (w <= 0) break;
    s += w;
    n -= (size_t)w;
  }
}

void hak_fdprintf(int fd, const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  size_t n = hak_vfmt(buf, sizeof buf, fmt, ap);
  va_end(ap);
  hak_write_all(fd, buf, n);
}

void hak_error(const char *fmt, ...) {
  char buf[512];
  size_t n = hak_fmt(buf, sizeof buf, "hakmem: ");
  va_list ap;
  va_start(ap, fmt);
  n += hak_vfmt(buf + n, sizeof buf - n - 1, fmt, ap);
  va_end(ap);
  buf[n++] = '\n';
  hak_write_all(2, buf, n);
}

void hak_sink_flush(hak_sink_t *s) {
  if (s->fd >= 0) {
    hak_write_all(s->fd, s->buf, s->len);
    s->len = 0;
  }
}

void hak_sink_printf(hak_sink_t *s, const char *fmt, ...) {
  char tmp[1024];
  va_list ap;
  va_start(ap, fmt);
  size_t n = hak_vfmt(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  s->total += n;
  if (s->fd >= 0 && s->len + n > s->cap) hak_sink_flush(s);
  if (!s->cap) return;
  size_t room = s->cap - s->len - (s->fd < 0); /* a memory sink keeps a NUL */
  size_t k = n < room ? n : room;
  memcpy(s->buf + s->len, tmp, k);
  s->len += k;
  if (s->fd < 0) s->buf[s->len] = 0;
}

static _Atomic unsigned errors_reported;
hak_misuse_counters_t hak_misuse;

/* Misuse is counted always, and reported a bounded number of times: a
 * broken program must not drown its own output. */
hak_cold void hak_report_misuse(const char *what, const void *p, bool twice) {
  HAK_STAT_INC(*(twice ? &hak_misuse.double_frees : &hak_misuse.invalid_frees));
  if (HAK_OPT(REPORT_ERRORS)) {
    unsigned n = atomic_fetch_add_explicit(&errors_reported, 1, memory_order_relaxed);
    if (n < 16) hak_error("%s of %p; %s", what, p, HAK_OPT(ON_ERROR) == HAK_ON_ERROR_ABORT ? "aborting" : "ignored");
    if (n == 16) hak_error("further errors are not reported");
  }
  hak_misuse_stop();
}

/* HAKMEM_ON_ERROR=abort: a misuse, once reported, stops the process. */
void hak_misuse_stop(void) {
  if (HAK_OPT(ON_ERROR) == HAK_ON_ERROR_ABORT) abort();
}
