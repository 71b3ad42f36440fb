/* thr_main_exit — the main thread ends with pthread_exit while other threads still run: its key
 * destructors run, the others carry on (and may create more threads), and the process ends with
 * status 0 when the last thread returns, running atexit handlers and flushing stdio on the way. */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "progs.h"

static pthread_key_t key;
static _Atomic int main_dtor_ran;

static void main_dtor(void *p) {
  printf("main's key destructor ran with %s\n", (const char *)p);
  atomic_store(&main_dtor_ran, 1);
}

static void at_exit(void) { printf("atexit handler ran\n"); }

static void *second(void *arg) {
  (void)arg;
  CHECK(usleep(50000) == 0);
  printf("second thread done\n");
  return (void *)5;
}

static void *first(void *arg) {
  (void)arg;
  for (int i = 0; i < 10000 && !atomic_load(&main_dtor_ran); i++) CHECK(usleep(1000) == 0);
  CHECK(atomic_load(&main_dtor_ran));
  printf("first thread: main has gone\n");
  pthread_t t;
  CHECK(pthread_create(&t, NULL, second, NULL) == 0);
  void *ret;
  CHECK(pthread_join(t, &ret) == 0);
  printf("first thread joined second: %ld\n", (long)(intptr_t)ret);
  /* Not flushed yet: line buffering is off, the exit of the last thread must flush it. */
  printf("first thread returns, the last one\n");
  return NULL;
}

int main(void) {
  setvbuf(stdout, NULL, _IOFBF, 1 << 16);
  CHECK(atexit(at_exit) == 0);
  CHECK(pthread_key_create(&key, main_dtor) == 0);
  CHECK(pthread_setspecific(key, "main's value") == 0);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, first, NULL) == 0);
  CHECK(pthread_detach(t) == 0);
  printf("main calls pthread_exit\n");
  pthread_exit(NULL);
}
