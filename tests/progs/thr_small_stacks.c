/* thr_small_stacks — threads with the smallest stacks a program may ask for (PTHREAD_STACK_MIN and a
 * few sizes above it) are created and run a function that uses 4 KiB of its stack, as natively: the
 * thread's TLS and control block do not eat the stack the program asked for.
 * stdout: one line per size. */
#include <limits.h>
#include <pthread.h>

#include "thr_util.h"

static void *use_stack(void *p) {
  volatile char buf[4096];
  for (size_t i = 0; i < sizeof buf; i++) buf[i] = (char)i;
  return (void *)(long)(buf[100] + (long)p);
}

int main(void) {
  pthread_attr_t a;
  pthread_attr_init(&a);
  for (size_t sz = PTHREAD_STACK_MIN; sz <= 64 * 1024; sz += 8192) {
    pthread_attr_setstacksize(&a, sz);
    pthread_t t;
    void *r = NULL;
    char what[64];
    snprintf(what, sizeof what, "stack of %zu bytes: create", sz);
    int e = pthread_create(&t, &a, use_stack, NULL);
    expect(what, e, 0);
    if (e == 0) {
      pthread_join(t, &r);
      printf("stack of %zu bytes: ran, %s\n", sz, r == (void *)100 ? "ok" : "wrong result");
    }
  }
  pthread_attr_destroy(&a);
  return failures;
}
