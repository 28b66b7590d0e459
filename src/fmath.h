/* The little floating-point maths hakmem needs (the profiler's sample
 * weights, the learner's UCB1 and ELO), without libm: linking libm costs
 * every process a few hundred KiB of resident pages for three functions.
 * Accurate to about 1e-12 relative over the ranges used. */
#ifndef HAKMEM_FMATH_H
#define HAKMEM_FMATH_H

double hak_exp(double x);
double hak_log(double x); /* x > 0 */
static inline double hak_sqrt(double x) { return __builtin_sqrt(x); } /* sqrtsd: -fno-math-errno */

#endif
