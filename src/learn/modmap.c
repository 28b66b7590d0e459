/* This process's modules, as policy files need them: which file an address
 * lies in and where that file is loaded (from /proc/self/maps, not the
 * loader, whose lock may be held when malloc runs), and the functions in a
 * file's symbol tables (read from the file).  Nothing here allocates:
 * buffers are scratch mappings. */
#include "modmap.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "../internal.h"
#include "../msg.h"
#include "../os.h"

/* ---- /proc/self/maps ----------------------------------------------------- */

typedef struct map_line {
  uintptr_t start, end, offset;
  const char *path; /* NUL-terminated, "" for anonymous */
} map_line_t;

/* Parses "start-end perms offset dev inode path". */
static bool parse_map(char *line, map_line_t *m) {
  char *s = line;
  uintptr_t v[3] = {0, 0, 0};
  for (int f = 0; f < 3; f++) {
    if (f == 2) { /* skip the perms field */
      while (*s && *s != ' ') s++;
      while (*s == ' ') s++;
    }
    bool any = false;
    for (;; s++) {
      unsigned d = *s >= '0' && *s <= '9' ? (unsigned)(*s - '0')
                   : (*s | 0x20) >= 'a' && (*s | 0x20) <= 'f' ? (unsigned)((*s | 0x20) - 'a' + 10) : 16;
      if (d == 16) break;
      v[f] = v[f] * 16 + d;
      any = true;
    }
    if (!any) return false;
    if (*s == '-' || *s == ' ') s++;
  }
  for (int skip = 0; skip < 2; skip++) { /* dev, inode */
    while (*s == ' ') s++;
    while (*s && *s != ' ') s++;
  }
  while (*s == ' ') s++;
  m->start = v[0], m->end = v[1], m->offset = v[2];
  m->path = s;
  return true;
}

/* Calls fn for every line of /proc/self/maps until it returns true. */
static bool each_map(bool (*fn)(const map_line_t *m, void *arg), void *arg) {
  int fd = hak_os_open("/proc/self/maps", O_RDONLY, 0);
  if (fd < 0) return false;
  size_t cap = (size_t)64 << 10;
  char *buf = hak_os_map_aligned(cap, HAK_PAGE);
  bool done = false;
  size_t have = 0;
  while (buf && !done) {
    long r = hak_os_read(fd, buf + have, cap - 1 - have);
    if (r <= 0) break;
    have += (size_t)r;
    size_t start = 0;
    for (size_t i = 0; i < have && !done; i++)
      if (buf[i] == '\n') {
        buf[i] = 0;
        map_line_t m;
        if (parse_map(buf + start, &m)) done = fn(&m, arg);
        start = i + 1;
      }
    memmove(buf, buf + start, have - start); /* a partial line waits for more */
    have -= start;
    if (have == cap - 1) have = 0; /* a line longer than the buffer: dropped */
  }
  if (buf) hak_os_unmap(buf, cap);
  hak_os_close(fd);
  return done;
}

typedef struct find_addr {
  uintptr_t addr;
  char *path;
  size_t cap;
  uintptr_t start, offset;
} find_addr_t;

static bool find_addr(const map_line_t *m, void *arg) {
  find_addr_t *f = arg;
  if (f->addr < m->start || f->addr >= m->end || m->path[0] != '/') return false;
  hak_fmt(f->path, f->cap, "%s", m->path);
  return true;
}

typedef struct find_base {
  const char *path;
  uintptr_t lowest;
  bool found;
} find_base_t;

/* The file's lowest mapping, less its file offset: where its first byte
 * would be. */
static bool find_base(const map_line_t *m, void *arg) {
  find_base_t *f = arg;
  if (strcmp(m->path, f->path) != 0) return false;
  uintptr_t b = m->start - m->offset;
  if (!f->found || b < f->lowest) f->lowest = b;
  f->found = true;
  return false;
}

/* ---- ELF files ----------------------------------------------------------- */

static bool pread_all(int fd, void *buf, size_t n, off_t at) {
  size_t got = 0;
  while (got < n) {
    long r = hak_os_pread(fd, (char *)buf + got, n - got, (uint64_t)at + got);
    if (r <= 0) return false;
    got += (size_t)r;
  }
  return true;
}

static void *scratch(size_t n, size_t *cap) {
  *cap = hak_align_up(n ? n : 1, HAK_PAGE);
  return hak_os_map_aligned(*cap, HAK_PAGE);
}

/* A file's function symbols: walks its symbol table (.symtab, else
 * .dynsym), calling fn for each defined function until it returns true. */
typedef bool (*sym_fn)(const char *name, uintptr_t value, uintptr_t size, void *arg);

static bool each_function(const char *path, sym_fn fn, void *arg, bool *is_exec) {
  int fd = hak_os_open(path, O_RDONLY, 0);
  if (fd < 0) return false;
  bool done = false;
  Elf64_Ehdr eh;
  void *sh = NULL, *syms = NULL, *strs = NULL;
  size_t shcap = 0, symcap = 0, strcap = 0;
  if (!pread_all(fd, &eh, sizeof eh, 0) || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
      eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_shentsize != sizeof(Elf64_Shdr) || eh.e_shnum == 0 ||
      eh.e_shnum > 4096)
    goto out;
  *is_exec = eh.e_type == ET_EXEC;
  size_t shbytes = (size_t)eh.e_shnum * sizeof(Elf64_Shdr);
  if (!(sh = scratch(shbytes, &shcap)) || !pread_all(fd, sh, shbytes, (off_t)eh.e_shoff)) goto out;
  const Elf64_Shdr *sec = sh, *tab = NULL;
  for (unsigned i = 0; i < eh.e_shnum; i++)
    if (sec[i].sh_type == SHT_SYMTAB || (sec[i].sh_type == SHT_DYNSYM && !tab)) tab = &sec[i];
  if (!tab || tab->sh_link >= eh.e_shnum || tab->sh_entsize != sizeof(Elf64_Sym)) goto out;
  const Elf64_Shdr *st = &sec[tab->sh_link];
  if (tab->sh_size > ((size_t)256 << 20) || st->sh_size > ((size_t)256 << 20)) goto out;
  if (!(syms = scratch(tab->sh_size, &symcap)) || !pread_all(fd, syms, tab->sh_size, (off_t)tab->sh_offset))
    goto out;
  if (!(strs = scratch(st->sh_size + 1, &strcap)) || !pread_all(fd, strs, st->sh_size, (off_t)st->sh_offset))
    goto out;
  ((char *)strs)[st->sh_size] = 0;
  const Elf64_Sym *sym = syms;
  for (size_t i = 0; i < tab->sh_size / sizeof *sym && !done; i++)
    if (ELF64_ST_TYPE(sym[i].st_info) == STT_FUNC && sym[i].st_shndx != SHN_UNDEF && sym[i].st_name < st->sh_size)
      done = fn((const char *)strs + sym[i].st_name, sym[i].st_value, sym[i].st_size, arg);
out:
  if (sh) hak_os_unmap(sh, shcap);
  if (syms) hak_os_unmap(syms, symcap);
  if (strs) hak_os_unmap(strs, strcap);
  hak_os_close(fd);
  return done;
}

typedef struct sym_at {
  uintptr_t off;
  char *name;
  size_t cap;
  uintptr_t sym_off;
} sym_at_t;

static bool sym_at(const char *name, uintptr_t value, uintptr_t size, void *arg) {
  sym_at_t *a = arg;
  if (!*name || a->off < value || a->off >= value + (size ? size : 1)) return false;
  hak_fmt(a->name, a->cap, "%s", name);
  a->sym_off = a->off - value;
  return true;
}

/* Every function of that name: static functions share names across files
 * (a program's many `run`s, `init`s), so the first one found was often
 * another file's, and the site resolved to an address nothing calls from.
 * The one at the recorded offset wins (the same build); otherwise a name
 * must be unique (a rebuild moved it) or the site does not resolve. */
typedef struct sym_named {
  const char *name;
  uintptr_t sym_off, offset; /* the site: in the function, in the module */
  uintptr_t value;
  unsigned n;
  bool exact;
} sym_named_t;

static bool sym_named(const char *name, uintptr_t value, uintptr_t size, void *arg) {
  (void)size;
  sym_named_t *a = arg;
  if (strcmp(name, a->name) != 0) return false;
  a->n++;
  if (a->exact) return false;
  a->exact = value + a->sym_off == a->offset;
  a->value = value;
  return false; /* every one is seen */
}

/* ---- the interface --------------------------------------------------------- */

/* A module's load bias: its link-time addresses (and symbol values) plus
 * the bias are this process's.  0 for a fixed-address executable. */
static bool module_bias(const char *path, bool is_exec, uintptr_t *bias) {
  if (is_exec) {
    *bias = 0;
    return true;
  }
  find_base_t f = {path, 0, false};
  each_map(find_base, &f);
  *bias = f.lowest;
  return f.found;
}

bool hak_mod_of_addr(uintptr_t addr, char *path, size_t cap, uintptr_t *offset) {
  find_addr_t f = {addr, path, cap, 0, 0};
  if (!each_map(find_addr, &f)) return false;
  Elf64_Ehdr eh;
  bool is_exec = false;
  int fd = hak_os_open(path, O_RDONLY, 0);
  if (fd >= 0) {
    if (pread_all(fd, &eh, sizeof eh, 0)) is_exec = eh.e_type == ET_EXEC;
    hak_os_close(fd);
  }
  uintptr_t bias;
  if (!module_bias(path, is_exec, &bias)) return false;
  *offset = addr - bias;
  return true;
}

bool hak_mod_symbol_at(const char *path, uintptr_t offset, char *name, size_t cap, uintptr_t *sym_off) {
  sym_at_t a = {offset, name, cap, 0};
  bool is_exec = false;
  if (!each_function(path, sym_at, &a, &is_exec)) return false;
  *sym_off = a.sym_off;
  return true;
}

bool hak_mod_resolve(const char *path, const char *symbol, uintptr_t sym_off, uintptr_t offset, uintptr_t *addr) {
  bool is_exec = false;
  sym_named_t n = {.name = symbol, .sym_off = sym_off, .offset = offset};
  if (symbol && *symbol) each_function(path, sym_named, &n, &is_exec); /* walks them all: false whatever it found */
  bool by_symbol = n.n > 0 && (n.exact || n.n == 1);
  if (!by_symbol) {
    int fd = hak_os_open(path, O_RDONLY, 0);
    Elf64_Ehdr eh;
    if (fd >= 0) {
      if (pread_all(fd, &eh, sizeof eh, 0)) is_exec = eh.e_type == ET_EXEC;
      hak_os_close(fd);
    }
    if (symbol && *symbol) return false; /* the function is gone: the site no longer exists */
  }
  uintptr_t bias;
  if (!module_bias(path, is_exec, &bias)) return false; /* not loaded (yet) */
  *addr = bias + (by_symbol ? n.value + sym_off : offset);
  return true;
}
