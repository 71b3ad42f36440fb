/*
 * offload.c — run a call that can only block (a glibc object with no try-variant) on a helper OS
 * thread while the calling coroutine parks, so its worker keeps running the others.
 *
 * One short-lived detached thread per call: this path serves rare calls (process-shared barriers),
 * and a pool would keep threads the program never asked for. If no thread can be made, the call is
 * made in place, blocking the worker — what the program would have done natively.
 */
#include <pthread.h>

#include "internal.h"

struct job {
  void (*fn)(void *);
  void *arg;
  _Atomic uint32_t done;
};

static void *runner(void *p) {
  struct job *j = p;
  j->fn(j->arg);
  atomic_store_explicit(&j->done, 1, memory_order_release);
  ch_pl_wake(&j->done, 1);
  return NULL;
}

void ch_offload(void (*fn)(void *), void *arg) {
  struct job j = {fn, arg, 0};
  pthread_t t;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 64 * 1024);
  ch_tls_bypass++; /* glibc allocates the thread: see platform.h */
  int rc = ch_plat()->thread_create(&t, &attr, runner, &j);
  ch_tls_bypass--;
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    fn(arg);
    return;
  }
  /* Parks as a coroutine; where no scheduler serves, ch_pl_wait32 waits natively on the futex that
   * ch_pl_wake also wakes — so this loop never spins. */
  while (!atomic_load_explicit(&j.done, memory_order_acquire))
    ch_pl_wait32(&j.done, 0, CH_NO_DEADLINE, CH_INTR_NONE);
}
