/* See fmath.h. */
#include "fmath.h"

#include <stdint.h>
#include <string.h>

#define LN2 0.6931471805599453094

/* 2^k as a double, k in [-1022, 1023]. */
static double pow2i(int k) {
  uint64_t bits = (uint64_t)(k + 1023) << 52;
  double d;
  memcpy(&d, &bits, sizeof d);
  return d;
}

double hak_exp(double x) {
  if (x != x) return x;
  if (x > 709.0) return __builtin_inf();
  if (x < -708.0) return 0.0;
  /* x = k ln2 + r, |r| <= ln2 / 2; exp(r) by its series (13 terms are
   * plenty for |r| < 0.35). */
  int k = (int)(x / LN2 + (x < 0 ? -0.5 : 0.5));
  double r = x - k * LN2, term = 1.0, sum = 1.0;
  for (int i = 1; i < 14; i++) term *= r / i, sum += term;
  return sum * pow2i(k);
}

double hak_log(double x) {
  if (!(x > 0)) return x == 0 ? -__builtin_inf() : __builtin_nan("");
  if (x == __builtin_inf()) return x;
  /* x = m 2^e with m in [sqrt(1/2), sqrt(2)); log m = 2 atanh s,
   * s = (m - 1) / (m + 1), |s| < 0.172. */
  uint64_t bits;
  memcpy(&bits, &x, sizeof bits);
  int e = (int)((bits >> 52) & 0x7ff);
  if (e == 0) { /* subnormal: scale up first */
    x *= pow2i(54);
    memcpy(&bits, &x, sizeof bits);
    e = (int)((bits >> 52) & 0x7ff) - 54;
  }
  e -= 1023;
  bits = (bits & ~(0x7ffull << 52)) | (1023ull << 52);
  double m;
  memcpy(&m, &bits, sizeof m);
  if (m > 1.4142135623730951) m *= 0.5, e++;
  double s = (m - 1) / (m + 1), s2 = s * s, term = s, sum = 0;
  for (int i = 1; i < 30; i += 2) sum += term / i, term *= s2;
  return 2 * sum + e * LN2;
}
