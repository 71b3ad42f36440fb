/* progs.h — tiny helpers for the plain test programs. Nothing here knows about cohook. */
#ifndef PROGS_H
#define PROGS_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Fail loudly: the message goes to stderr, the exit status tells the harness. */
#define CHECK(cond)                                                                                  \
  do {                                                                                               \
    if (!(cond)) {                                                                                   \
      fprintf(stderr, "%s:%d: check failed: %s (errno %d %s)\n", __FILE__, __LINE__, #cond, errno,    \
              strerror(errno));                                                                      \
      exit(3);                                                                                       \
    }                                                                                                \
  } while (0)

/* The process's OS threads now (/proc/self/status "Threads:"), or -1. */
static inline __attribute__((unused)) int os_threads(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  int n = -1;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "Threads: %d", &n) == 1) break;
  if (f) fclose(f);
  return n;
}

static inline double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A reproducible byte pattern and its check: position-dependent, so reordering shows. */
static inline unsigned char pattern(uint64_t i) { return (unsigned char)((i * 2654435761u) >> 13); }

#endif
