/* C++'s operator new and delete, under their mangled names.  A C++
 * program's `new` then comes here straight, not through libstdc++'s
 * operator new, which called malloc: every `new` of the program was one
 * call site (operator new itself) in profiles and per-site policies, and
 * paid a call more.  Only a failure leaves C: the new_handler loop and
 * std::bad_alloc belong to the program's C++ runtime (libstdc++ or libc++),
 * looked up by name when one is needed.  A C program calls none of this. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>

#include "fastpath.h"
#include "msg.h"

typedef void (*cxx_handler_t)(void);
typedef cxx_handler_t (*cxx_get_handler_t)(void);
typedef void (*cxx_throw_t)(void);

/* libstdc++'s name, else libc++'s: a C++ runtime loaded after us (dlopen)
 * is found too. */
static void *cxx_sym(const char *gnu, const char *llvm) {
  void *f = dlsym(RTLD_DEFAULT, gnu);
  return f ? f : dlsym(RTLD_DEFAULT, llvm);
}

/* The allocation failed: call the new_handler while there is one, as the
 * standard asks, then throw std::bad_alloc (or, nothrow, return NULL).  A
 * handler that throws from a nothrow new ends the program, as it would
 * escape a noexcept function. */
static hak_noinline void *cxx_new_failed(size_t n, size_t align, bool nothrow, void *site) {
  cxx_get_handler_t get;
  *(void **)&get = cxx_sym("_ZSt15get_new_handlerv", "_ZNSt3__115get_new_handlerEv");
  for (;;) {
    cxx_handler_t h = get ? get() : NULL;
    if (!h) break;
    h();
    void *p = hak_alloc_routed(n, align, false, site);
    if (p) return p;
  }
  if (nothrow) return NULL;
  cxx_throw_t thr;
  *(void **)&thr = cxx_sym("_ZSt17__throw_bad_allocv", "_ZNSt3__117__throw_bad_allocEv");
  if (thr) thr();
  hak_error("operator new(%zu): out of memory, and no C++ runtime to throw std::bad_alloc", n);
  abort();
}

/* The fast path inlined, as in malloc: its slow path takes the caller's
 * address (HAK_RA) as the call site.  The array forms are the same
 * functions (aliases): one copy of each in the front of our text, where
 * the code every C++ process runs has to fit (internal.h, hak_front). */
HAK_EXPORT hak_front void *_Znwm(size_t n) {
  void *p = hak_alloc_fast(n);
  return hak_likely(p != NULL) ? p : cxx_new_failed(n, 0, false, HAK_RA());
}

HAK_EXPORT void *_ZnwmRKSt9nothrow_t(size_t n, const void *nothrow) {
  (void)nothrow;
  void *p = hak_alloc_fast(n);
  return hak_likely(p != NULL) ? p : cxx_new_failed(n, 0, true, HAK_RA());
}

HAK_EXPORT void *_ZnwmSt11align_val_t(size_t n, size_t align) {
  void *p = hak_alloc_routed(n, align, false, HAK_RA());
  return p ? p : cxx_new_failed(n, align, false, HAK_RA());
}

HAK_EXPORT void *_ZnwmSt11align_val_tRKSt9nothrow_t(size_t n, size_t align, const void *nothrow) {
  (void)nothrow;
  void *p = hak_alloc_routed(n, align, false, HAK_RA());
  return p ? p : cxx_new_failed(n, align, true, HAK_RA());
}

#define CXX_ALIAS(name, of) HAK_EXPORT __typeof__(of) name __attribute__((alias(#of)));
CXX_ALIAS(_Znam, _Znwm)
CXX_ALIAS(_ZnamRKSt9nothrow_t, _ZnwmRKSt9nothrow_t)
CXX_ALIAS(_ZnamSt11align_val_t, _ZnwmSt11align_val_t)
CXX_ALIAS(_ZnamSt11align_val_tRKSt9nothrow_t, _ZnwmSt11align_val_tRKSt9nothrow_t)

/* Every delete is this free: a block's size and alignment are known from
 * where it lies, so the forms that pass them (in registers the free does
 * not read) are aliases of it too. */
hak_front static void cxx_delete(void *p) { hak_free_fast(p); }

CXX_ALIAS(_ZdlPv, cxx_delete)
CXX_ALIAS(_ZdaPv, cxx_delete)
CXX_ALIAS(_ZdlPvm, cxx_delete)
CXX_ALIAS(_ZdaPvm, cxx_delete)
CXX_ALIAS(_ZdlPvRKSt9nothrow_t, cxx_delete)
CXX_ALIAS(_ZdaPvRKSt9nothrow_t, cxx_delete)
CXX_ALIAS(_ZdlPvSt11align_val_t, cxx_delete)
CXX_ALIAS(_ZdaPvSt11align_val_t, cxx_delete)
CXX_ALIAS(_ZdlPvmSt11align_val_t, cxx_delete)
CXX_ALIAS(_ZdaPvmSt11align_val_t, cxx_delete)
CXX_ALIAS(_ZdlPvSt11align_val_tRKSt9nothrow_t, cxx_delete)
CXX_ALIAS(_ZdaPvSt11align_val_tRKSt9nothrow_t, cxx_delete)
