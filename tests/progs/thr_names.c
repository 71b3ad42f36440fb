/* thr_names — thread names are per thread: a new thread starts with its creator's name (clone copies
 * it), prctl(PR_SET_NAME/PR_GET_NAME) and pthread_setname_np/pthread_getname_np agree, names survive a
 * blocking call while other threads rename themselves, and over-long names behave as the kernel's and
 * glibc's (prctl truncates to 15 characters, pthread_setname_np answers ERANGE).
 * stdout: what each thread saw, printed by main in thread order. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "thr_util.h"

enum { N = 8 };
static char seen[N][4][32];
static int setname_long[N];

static void *grandchild(void *p) {
  char *out = p;
  prctl(PR_GET_NAME, out);
  return NULL;
}

static void *body(void *p) {
  long i = (long)p;
  char buf[16], name[32];
  pthread_getname_np(pthread_self(), buf, sizeof buf);
  snprintf(seen[i][0], sizeof seen[i][0], "%s", buf); /* inherited from main */
  snprintf(name, sizeof name, "svc-%ld-with-a-long-name", i);
  prctl(PR_SET_NAME, name); /* truncated to 15 characters */
  usleep(20000);            /* the others rename themselves meanwhile */
  prctl(PR_GET_NAME, buf);
  snprintf(seen[i][1], sizeof seen[i][1], "%s", buf);
  snprintf(name, sizeof name, "np-%ld", i);
  pthread_setname_np(pthread_self(), name);
  usleep(10000);
  prctl(PR_GET_NAME, buf);
  snprintf(seen[i][2], sizeof seen[i][2], "%s", buf);
  setname_long[i] = pthread_setname_np(pthread_self(), "sixteen-chars-xx");
  pthread_t g;
  char gname[16] = "";
  pthread_create(&g, NULL, grandchild, gname);
  pthread_join(g, NULL);
  snprintf(seen[i][3], sizeof seen[i][3], "%s", gname); /* inherited from this thread */
  return NULL;
}

int main(void) {
  prctl(PR_SET_NAME, "names-main");
  pthread_t t[N];
  for (long i = 0; i < N; i++) pthread_create(&t[i], NULL, body, (void *)i);
  for (int i = 0; i < N; i++) pthread_join(t[i], NULL);
  for (int i = 0; i < N; i++)
    printf("thread %d: started as %s, prctl %s, after setname_np %s, long setname_np %s, its child %s\n", i,
           seen[i][0], seen[i][1], seen[i][2], en(setname_long[i]), seen[i][3]);
  for (int i = 0; i < N; i++) expect("pthread_setname_np with 16 characters", setname_long[i], ERANGE);
  char buf[16];
  prctl(PR_GET_NAME, buf);
  printf("main still: %s\n", buf);
  return failures;
}
