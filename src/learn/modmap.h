/* This process's modules (modmap.c): policy files name a site by module
 * and offset, or by function and offset, so that they survive ASLR and a
 * rebuild. */
#ifndef HAKMEM_LEARN_MODMAP_H
#define HAKMEM_LEARN_MODMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The file addr lies in, and addr's offset in it (link-time address). */
bool hak_mod_of_addr(uintptr_t addr, char *path, size_t cap, uintptr_t *offset);
/* The function containing a module offset, and the offset in it. */
bool hak_mod_symbol_at(const char *path, uintptr_t offset, char *name, size_t cap, uintptr_t *sym_off);
/* This process's address of a site: by its function (when given) plus
 * sym_off, else by its module offset.  False if the module is not loaded
 * or the function no longer exists. */
bool hak_mod_resolve(const char *path, const char *symbol, uintptr_t sym_off, uintptr_t offset, uintptr_t *addr);

#endif
