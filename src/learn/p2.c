/* P² streaming quantile (Jain & Chlamtac, CACM 1985): hak_p2_*.  Five
 * markers track the minimum, q/2, q, (1+q)/2 and the maximum; each sample
 * moves the marker positions and, when a middle marker drifts a whole
 * position from where it should be, adjusts its height by a piecewise-
 * parabolic (else linear) interpolation.  O(1) memory and time. */
#include <math.h>

#include "learn.h"

void hak_p2_init(hak_p2_t *p, double q) {
  if (!(q > 0.0 && q < 1.0)) q = 0.5;
  *p = (hak_p2_t){.q = q};
  for (int i = 0; i < 5; i++) p->pos[i] = i + 1;
  p->want[0] = 1;
  p->want[1] = 1 + 2 * q;
  p->want[2] = 1 + 4 * q;
  p->want[3] = 3 + 2 * q;
  p->want[4] = 5;
  p->inc[0] = 0;
  p->inc[1] = q / 2;
  p->inc[2] = q;
  p->inc[3] = (1 + q) / 2;
  p->inc[4] = 1;
}

static void sort5(double *h, int n) {
  for (int i = 1; i < n; i++)
    for (int j = i; j > 0 && h[j - 1] > h[j]; j--) {
      double t = h[j];
      h[j] = h[j - 1];
      h[j - 1] = t;
    }
}

static double parabolic(const hak_p2_t *p, int i, double d) {
  const double *n = p->pos, *h = p->h;
  return h[i] + d / (n[i + 1] - n[i - 1]) *
                    ((n[i] - n[i - 1] + d) * (h[i + 1] - h[i]) / (n[i + 1] - n[i]) +
                     (n[i + 1] - n[i] - d) * (h[i] - h[i - 1]) / (n[i] - n[i - 1]));
}

void hak_p2_add(hak_p2_t *p, double x) {
  if (!isfinite(x)) return;
  if (p->count < 5) {
    p->h[p->count++] = x;
    if (p->count == 5) sort5(p->h, 5);
    return;
  }
  int k; /* the cell x falls in: h[k] <= x < h[k+1] */
  if (x < p->h[0]) {
    p->h[0] = x;
    k = 0;
  } else if (x >= p->h[4]) {
    p->h[4] = x;
    k = 3;
  } else {
    k = 0;
    while (k < 3 && x >= p->h[k + 1]) k++;
  }
  for (int i = k + 1; i < 5; i++) p->pos[i] += 1;
  for (int i = 0; i < 5; i++) p->want[i] += p->inc[i];
  for (int i = 1; i <= 3; i++) {
    double d = p->want[i] - p->pos[i];
    if ((d >= 1 && p->pos[i + 1] - p->pos[i] > 1) || (d <= -1 && p->pos[i - 1] - p->pos[i] < -1)) {
      int s = d > 0 ? 1 : -1;
      double hp = parabolic(p, i, s);
      if (!(p->h[i - 1] < hp && hp < p->h[i + 1])) /* parabola overshoots: linear */
        hp = p->h[i] + s * (p->h[i + s] - p->h[i]) / (p->pos[i + s] - p->pos[i]);
      p->h[i] = hp;
      p->pos[i] += s;
    }
  }
  p->count++;
}

double hak_p2_value(const hak_p2_t *p) {
  if (p->count >= 5) return p->h[2];
  if (p->count == 0) return 0.0;
  double h[5];
  int n = (int)p->count;
  for (int i = 0; i < n; i++) h[i] = p->h[i];
  sort5(h, n);
  double r = p->q * (n - 1); /* linear interpolation between order statistics */
  int lo = (int)r;
  if (lo >= n - 1) return h[n - 1];
  return h[lo] + (r - lo) * (h[lo + 1] - h[lo]);
}

uint64_t hak_p2_count(const hak_p2_t *p) { return p->count; }
