/* The contended half of hak_lock: spin briefly, then yield the CPU.  Global
 * locks guard only slow paths (Large, Big, segment lists), so a simple
 * test-and-test-and-set lock beats a futex here. */
#include "internal.h"

hak_front void hak_lock_slow(hak_lock_t *l) {
  for (unsigned spins = 0;; spins++) {
    if (atomic_load_explicit(&l->v, memory_order_relaxed) == 0) {
      int z = 0;
      if (atomic_compare_exchange_weak_explicit(&l->v, &z, 1, memory_order_acquire,
                                                memory_order_relaxed))
        return;
    }
    if (spins < 64)
      __builtin_ia32_pause();
    else
      hak_os_yield();
  }
}
