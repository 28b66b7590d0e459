/* Statistics (stats.c): hak_stats_get, hak_stats_json and hak_stats_print
 * are public (hakmem.h). */
#ifndef HAKMEM_STATS_H
#define HAKMEM_STATS_H
#include "hakmem.h"
#endif
