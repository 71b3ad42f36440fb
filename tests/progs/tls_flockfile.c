/* tls_flockfile — flockfile/funlockfile keep a record whole, with a blocking call inside.
 * 8 threads each write 50 log records (400 in all) to one FILE * (a tmpfile), each record made of
 * several fputs/fprintf calls between flockfile and funlockfile, with a blocking call inside the
 * locked region (a usleep, and a pthread_mutex that a ninth thread holds now and then while it
 * sleeps). glibc's stdio lock is recursive and owned by the calling thread (its thread descriptor):
 * threads that shared one thread identity would walk into each other's locked region and tear the
 * records. The file is read back at the end: every record must be there once, whole. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>

#include "progs_util.h"

#define NTHREADS 8
#define NRECORDS 50

static FILE *logf;
static pthread_mutex_t side = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int done;

/* Holds the side mutex for a while now and then: the writers' lock of it inside their locked
 * region sometimes waits. */
static void *contender(void *arg) {
  (void)arg;
  while (!atomic_load(&done)) {
    CHECK(pthread_mutex_lock(&side) == 0);
    CHECK(usleep(300) == 0);
    CHECK(pthread_mutex_unlock(&side) == 0);
    CHECK(usleep(200) == 0);
  }
  return NULL;
}

static void *writer(void *arg) {
  int t = (int)(intptr_t)arg;
  for (int r = 0; r < NRECORDS; r++) {
    flockfile(logf);
    fprintf(logf, "T%d R%02d", t, r);
    fputs(" begin", logf);
    if ((t + r) % 2 == 0) CHECK(usleep((useconds_t)(50 + (t * 31 + r * 7) % 200)) == 0);
    else {
      CHECK(pthread_mutex_lock(&side) == 0);
      CHECK(pthread_mutex_unlock(&side) == 0);
    }
    fputs(" middle", logf);
    putc_unlocked(' ', logf);
    fputs("tail", logf);
    if (r % 5 == 0) CHECK(usleep(100) == 0);
    fprintf(logf, " T%d R%02d end\n", t, r);
    funlockfile(logf);
    if (r % 3 == 0) sched_yield();
  }
  return NULL;
}

int main(void) {
  logf = tmpfile();
  CHECK(logf != NULL);
  pthread_t c, w[NTHREADS];
  CHECK(pthread_create(&c, NULL, contender, NULL) == 0);
  for (int t = 0; t < NTHREADS; t++) CHECK(pthread_create(&w[t], NULL, writer, (void *)(intptr_t)t) == 0);
  for (int t = 0; t < NTHREADS; t++) CHECK(pthread_join(w[t], NULL) == 0);
  atomic_store(&done, 1);
  CHECK(pthread_join(c, NULL) == 0);

  CHECK(fflush(logf) == 0);
  rewind(logf);
  static int seen[NTHREADS][NRECORDS];
  char line[512];
  int lines = 0, whole = 0, torn = 0, dup = 0;
  while (fgets(line, sizeof line, logf)) {
    lines++;
    int t, r, t2, r2, n = 0;
    int parsed = sscanf(line, "T%d R%d begin middle tail T%d R%d end\n%n", &t, &r, &t2, &r2, &n);
    char want[128];
    int ok = parsed == 4 && t >= 0 && t < NTHREADS && r >= 0 && r < NRECORDS && t2 == t && r2 == r;
    if (ok) {
      snprintf(want, sizeof want, "T%d R%02d begin middle tail T%d R%02d end\n", t, r, t, r);
      ok = strcmp(line, want) == 0;
    }
    if (ok && seen[t][r]++) ok = 0, dup++;
    if (ok) whole++;
    else {
      torn++;
      if (torn <= 5) fprintf(stderr, "torn record: %s", line);
    }
  }
  CHECK(fclose(logf) == 0);
  int missing = 0;
  for (int t = 0; t < NTHREADS; t++)
    for (int r = 0; r < NRECORDS; r++) missing += !seen[t][r];
  printf("records %d: whole %d, torn %d, duplicated %d, missing %d\n", NTHREADS * NRECORDS, whole, torn, dup,
         missing);
  fprintf(stderr, "lines read back: %d\n", lines);
  return whole == NTHREADS * NRECORDS && torn == 0 && missing == 0 ? 0 : 1;
}
