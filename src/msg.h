/* Messages without stdio: a tiny formatter writing to a file descriptor
 * with write(2), safe inside malloc, signal handlers and after fork.
 * msg.c also reports misuse (hak_report_misuse, declared in internal.h). */
#ifndef HAKMEM_MSG_H
#define HAKMEM_MSG_H

#include <stdarg.h>
#include <stddef.h>

/* Formats %s %d %u %ld %lu %zu %zd %llu %p %x %c %% and a width for numbers
 * (e.g. %12zu, %-10s, %03u) into buf; always NUL-terminates; returns the
 * length. */
size_t hak_vfmt(char *buf, size_t cap, const char *fmt, va_list ap);
size_t hak_fmt(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Writes to fd (retrying on short writes). */
void hak_fdprintf(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "hakmem: ..." on stderr. */
void hak_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void hak_write_all(int fd, const char *s, size_t n);

/* A sink for long formatted output: with fd >= 0 it writes buf out when it
 * fills; with fd < 0 it keeps what fits in buf (NUL-terminated) and counts
 * the length the whole output needs in `total`. */
typedef struct hak_sink {
  char *buf;
  size_t cap, len, total;
  int fd;
} hak_sink_t;
void hak_sink_printf(hak_sink_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void hak_sink_flush(hak_sink_t *s);

#endif
