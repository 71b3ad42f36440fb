/* thr_stack_default — threads created without a stack size get what glibc gives a thread (its
 * default attribute: RLIMIT_STACK at start, 8 MiB on a default machine), and they can use it:
 *   - a thread puts a 512 KiB buffer on its stack, touches every page and checksums it;
 *   - a thread recurses through 2 MiB worth of frames (1 KiB each) and sums on the way back;
 *   - pthread_getattr_np reports at least the default size for such a thread;
 *   - after pthread_setattr_default_np to 1 MiB, a new thread's stack is 1 MiB (not the old default),
 *     and a 512 KiB buffer still fits; with the default set back, deep recursion works again.
 * Sized from the default itself (a machine whose default is under 4 MiB says so on stderr and uses
 * half of it), so that the native run never overflows.
 * stdout: one line per case, booleans only. */

#include <pthread.h>
#include <stdint.h>

#include "thr_util.h"

static size_t default_size(void) {
  pthread_attr_t a;
  size_t n = 0;
  CHECK(pthread_getattr_default_np(&a) == 0);
  CHECK(pthread_attr_getstacksize(&a, &n) == 0);
  pthread_attr_destroy(&a);
  return n;
}

static size_t own_stack_size(void) {
  pthread_attr_t a;
  size_t n = 0;
  CHECK(pthread_getattr_np(pthread_self(), &a) == 0);
  CHECK(pthread_attr_getstacksize(&a, &n) == 0);
  pthread_attr_destroy(&a);
  return n;
}

static size_t buf_bytes = 512 * 1024, deep_bytes = 2 * 1024 * 1024;

/* The buffer's size is known only at run time (a VLA), as a program's big local would be. */
static void *big_buffer(void *arg) {
  (void)arg;
  volatile unsigned char buf[buf_bytes];
  for (size_t i = 0; i < buf_bytes; i += 4096) buf[i] = pattern(i);
  for (size_t i = 0; i < buf_bytes; i += 512) buf[i] = pattern(i); /* every page and more */
  uint64_t sum = 0, want = 0;
  for (size_t i = 0; i < buf_bytes; i += 512) sum += buf[i], want += pattern(i);
  return (void *)(uintptr_t)(sum == want);
}

__attribute__((noinline)) static uint64_t recurse(unsigned depth) {
  volatile unsigned char frame[1000];
  frame[0] = (unsigned char)depth;
  frame[sizeof frame - 1] = (unsigned char)(depth >> 3);
  if (depth == 0) return frame[0] + frame[sizeof frame - 1];
  uint64_t below = recurse(depth - 1);
  return below + frame[0] + frame[sizeof frame - 1]; /* used after the call: no tail call */
}

static void *deep(void *arg) {
  (void)arg;
  unsigned depth = (unsigned)(deep_bytes / 1024);
  uint64_t want = 0;
  for (unsigned d = 0; d <= depth; d++) want += (unsigned char)d + (unsigned char)(d >> 3);
  return (void *)(uintptr_t)(recurse(depth) == want);
}

static void *report_size(void *arg) { return (void *)(uintptr_t)(own_stack_size() >= *(size_t *)arg); }

static void run(const char *what, void *(*fn)(void *), void *arg) {
  pthread_t t;
  void *r = NULL;
  int e = pthread_create(&t, NULL, fn, arg);
  if (e == 0) e = pthread_join(t, &r);
  printf("%s: %s\n", what, e ? en(e) : r == (void *)1 ? "yes" : "no");
  if (e || r != (void *)1) failures++;
}

static void *stack_between(void *arg) {
  size_t lo = ((size_t *)arg)[0], hi = ((size_t *)arg)[1], n = own_stack_size();
  fprintf(stderr, "thread stack %zu bytes (want %zu..%zu)\n", n, lo, hi);
  return (void *)(uintptr_t)(n >= lo && n < hi);
}

int main(void) {
  size_t dflt = default_size();
  if (dflt < 4 * 1024 * 1024) {
    fprintf(stderr, "default thread stack %zu bytes: using half of it\n", dflt);
    buf_bytes = dflt / 4, deep_bytes = dflt / 2;
  }
  run("512 KiB buffer on the default stack", big_buffer, NULL);
  run("2 MiB of frames on the default stack", deep, NULL);
  pthread_t t;
  expect("create with the default attribute", pthread_create(&t, NULL, deep, NULL), 0);
  pthread_join(t, NULL);
  run("pthread_getattr_np size at least the default", report_size, &dflt);

  /* A program may change the default; later threads follow it. */
  pthread_attr_t a;
  CHECK(pthread_attr_init(&a) == 0);
  CHECK(pthread_attr_setstacksize(&a, 1024 * 1024) == 0);
  CHECK(pthread_setattr_default_np(&a) == 0);
  pthread_attr_destroy(&a);
  size_t range[2] = {1024 * 1024, 2 * 1024 * 1024};
  run("after setattr_default_np(1 MiB): new thread's stack is 1 MiB", stack_between, range);
  size_t keep = buf_bytes;
  buf_bytes = 512 * 1024;
  run("512 KiB buffer on a 1 MiB default", big_buffer, NULL);
  buf_bytes = keep;
  CHECK(pthread_attr_init(&a) == 0);
  CHECK(pthread_attr_setstacksize(&a, dflt) == 0);
  CHECK(pthread_setattr_default_np(&a) == 0);
  pthread_attr_destroy(&a);
  run("default set back: 2 MiB of frames again", deep, NULL);
  return failures;
}
