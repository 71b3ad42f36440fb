/* thr_stack_sizes — explicit pthread_attr_setstacksize of 8 MiB (glibc's usual default: a request all
 * the same), 16 MiB and 128 MiB: each thread is created, reports (pthread_getattr_np) a stack at
 * least that large, and touches all of it but the top 64 KiB (one byte per page, checksummed). A size
 * no machine can map (256 TiB) fails with EAGAIN, as glibc's pthread_create does.
 * Run by ctest also with COHOOK_STACK_SIZE=64K: the knob changes the default, never a request.
 * stdout: one line per size, booleans only. */

#include <pthread.h>
#include <stdint.h>

#include "thr_util.h"

static void *use(void *arg) {
  size_t want = *(size_t *)arg, have = 0;
  pthread_attr_t a;
  CHECK(pthread_getattr_np(pthread_self(), &a) == 0);
  CHECK(pthread_attr_getstacksize(&a, &have) == 0);
  pthread_attr_destroy(&a);
  if (have < want) {
    fprintf(stderr, "stack of %zu bytes reported for a request of %zu\n", have, want);
    return (void *)0;
  }
  size_t n = want - 64 * 1024;
  volatile unsigned char buf[n];
  for (size_t i = n; i >= 4096; i -= 4096) buf[i - 1] = pattern(i); /* from the top down, as it grows */
  buf[0] = pattern(0);
  uint64_t sum = 0, expect_sum = pattern(0);
  for (size_t i = n; i >= 4096; i -= 4096) sum += buf[i - 1], expect_sum += pattern(i);
  sum += buf[0];
  return (void *)(uintptr_t)(sum == expect_sum ? 1 : 2);
}

int main(void) {
  static const size_t mib[] = {8, 16, 128};
  pthread_attr_t a;
  CHECK(pthread_attr_init(&a) == 0);
  for (size_t k = 0; k < sizeof mib / sizeof *mib; k++) {
    size_t size = mib[k] << 20;
    CHECK(pthread_attr_setstacksize(&a, size) == 0);
    pthread_t t;
    void *r = NULL;
    char what[80];
    snprintf(what, sizeof what, "%zu MiB stack: create", mib[k]);
    int e = pthread_create(&t, &a, use, &size);
    expect(what, e, 0);
    if (e) continue;
    CHECK(pthread_join(t, &r) == 0);
    printf("%zu MiB stack: size reported %s, touched %s\n", mib[k], r ? "yes" : "no",
           r == (void *)1 ? "ok" : "no");
    if (r != (void *)1) failures++;
  }
  CHECK(pthread_attr_setstacksize(&a, (size_t)1 << 48) == 0);
  pthread_t t;
  size_t huge = (size_t)1 << 48;
  int e = pthread_create(&t, &a, use, &huge);
  expect("256 TiB stack: create", e, EAGAIN);
  if (e == 0) pthread_join(t, NULL);
  pthread_attr_destroy(&a);
  return failures;
}
