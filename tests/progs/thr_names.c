/* thr_names — thread names are per thread: a new thread starts with its creator's name (clone copies
 * it), prctl(PR_SET_NAME/PR_GET_NAME) and pthread_setname_np/pthread_getname_np agree, names survive a
 * blocking call while other threads rename themselves, and over-long names behave as the kernel's and
 * glibc's (prctl truncates to 15 characters, pthread_setname_np answers ERANGE); and across threads:
 * main reads with pthread_getname_np the name a thread gave itself with prctl, then renames it with
 * pthread_setname_np, and the thread sees that name with prctl(PR_GET_NAME) and pthread_getname_np.
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

/* Named from outside. */
static pthread_barrier_t self_named, renamed;
static char outside[N][2][16];

static void *named_from_outside(void *p) {
  long i = (long)p;
  char name[16];
  snprintf(name, sizeof name, "self-%ld", i);
  prctl(PR_SET_NAME, name);
  pthread_barrier_wait(&self_named); /* main reads our name, then renames us */
  pthread_barrier_wait(&renamed);
  prctl(PR_GET_NAME, outside[i][0]);
  pthread_getname_np(pthread_self(), outside[i][1], sizeof outside[i][1]);
  return NULL;
}

static void across_threads(void) {
  pthread_t t[N];
  pthread_barrier_init(&self_named, NULL, N + 1);
  pthread_barrier_init(&renamed, NULL, N + 1);
  for (long i = 0; i < N; i++) pthread_create(&t[i], NULL, named_from_outside, (void *)i);
  pthread_barrier_wait(&self_named);
  for (int i = 0; i < N; i++) {
    char buf[16] = "", name[16];
    int r = pthread_getname_np(t[i], buf, sizeof buf);
    printf("thread %d named itself with prctl, main reads: %s %s\n", i, en(r), buf);
    snprintf(name, sizeof name, "by-main-%d", i);
    expect("pthread_setname_np of another thread", pthread_setname_np(t[i], name), 0);
  }
  pthread_barrier_wait(&renamed);
  for (int i = 0; i < N; i++) pthread_join(t[i], NULL);
  for (int i = 0; i < N; i++)
    printf("thread %d renamed by main sees: prctl %s, getname_np %s\n", i, outside[i][0], outside[i][1]);
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
  across_threads();
  return failures;
}
