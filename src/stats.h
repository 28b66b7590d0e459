/* Process-wide figures and the exit summary. */
#ifndef HAKMEM_STATS_H
#define HAKMEM_STATS_H

/* Writes a readable summary to fd without allocating. */
void hak_stats_print(int fd);

#endif
