/* test_fdwait.c — waiting for fd readiness: timeouts, wake-ups by other coroutines, full pipes,
 * several waiters on one fd, close while waiting, and fd-number reuse. */
#include <fcntl.h>

#include "internal.h"
#include "testutil.h"

static void make_pipe(int p[2]) { assert_int_equal(pipe2(p, O_NONBLOCK), 0); }

static void test_timeout(void **state) {
  (void)state;
  int p[2];
  make_pipe(p);
  uint64_t t0 = tu_now_ns();
  assert_int_equal(cohook_wait_fd(p[0], COHOOK_READABLE, 20000000), -ETIMEDOUT);
  uint64_t took = tu_now_ns() - t0;
  assert_true(took >= 20000000u);
  assert_true(took < 30000000u * (uint64_t)tu_slow());
  assert_int_equal(cohook_wait_fd(p[1], COHOOK_WRITABLE, 0), COHOOK_WRITABLE); /* ready: at once */
  assert_int_equal(cohook_wait_fd(p[0], COHOOK_READABLE, 0), -ETIMEDOUT);     /* not ready, no wait */
  cohook_close(p[0]), cohook_close(p[1]);
}

static void *write_later(void *arg) {
  int fd = (int)(intptr_t)arg;
  cohook_sleep_ns(10000000);
  return (void *)write(fd, "x", 1);
}

static void test_woken_by_writer(void **state) {
  (void)state;
  int p[2];
  make_pipe(p);
  cohook_coro_t *w;
  assert_int_equal(cohook_spawn(&w, write_later, (void *)(intptr_t)p[1]), 0);
  uint64_t t0 = tu_now_ns();
  assert_int_equal(cohook_wait_fd(p[0], COHOOK_READABLE, COHOOK_FOREVER), COHOOK_READABLE);
  assert_true(tu_now_ns() - t0 >= 10000000u);
  char c;
  assert_int_equal(read(p[0], &c, 1), 1);
  assert_int_equal(c, 'x');
  void *r;
  assert_int_equal(cohook_join(w, &r), 0);
  assert_int_equal((intptr_t)r, 1);
  cohook_close(p[0]), cohook_close(p[1]);
}

static void *drain_later(void *arg) {
  int fd = (int)(intptr_t)arg;
  cohook_sleep_ns(5000000);
  char buf[65536];
  long total = 0;
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) total += n;
  return (void *)total;
}

static void test_full_pipe_writer(void **state) {
  (void)state;
  int p[2];
  make_pipe(p);
  char buf[4096];
  memset(buf, 'a', sizeof buf);
  long written = 0;
  ssize_t n;
  while ((n = write(p[1], buf, sizeof buf)) > 0) written += n;
  assert_int_equal(errno, EAGAIN);
  cohook_coro_t *r;
  assert_int_equal(cohook_spawn(&r, drain_later, (void *)(intptr_t)p[0]), 0);
  assert_int_equal(cohook_wait_fd(p[1], COHOOK_WRITABLE, COHOOK_FOREVER), COHOOK_WRITABLE);
  void *drained;
  assert_int_equal(cohook_join(r, &drained), 0);
  assert_int_equal((long)(intptr_t)drained, written);
  cohook_close(p[0]), cohook_close(p[1]);
}

static int woken;
static void *wait_readable(void *arg) {
  int rc = cohook_wait_fd((int)(intptr_t)arg, COHOOK_READABLE, COHOOK_FOREVER);
  woken++;
  return (void *)(intptr_t)rc;
}

static void test_many_waiters_one_fd(void **state) {
  (void)state;
  int p[2];
  make_pipe(p);
  enum { N = 5 };
  cohook_coro_t *co[N];
  woken = 0;
  for (int i = 0; i < N; i++) assert_int_equal(cohook_spawn(&co[i], wait_readable, (void *)(intptr_t)p[0]), 0);
  cohook_yield(); /* all five now wait */
  assert_int_equal(woken, 0);
  assert_int_equal(write(p[1], "y", 1), 1);
  for (int i = 0; i < N; i++) {
    void *rc;
    assert_int_equal(cohook_join(co[i], &rc), 0);
    assert_int_equal((intptr_t)rc, COHOOK_READABLE); /* level-triggered: every waiter sees it */
  }
  cohook_close(p[0]), cohook_close(p[1]);
}

static void test_close_wakes_waiter(void **state) {
  (void)state;
  int p[2];
  make_pipe(p);
  cohook_coro_t *co;
  assert_int_equal(cohook_spawn(&co, wait_readable, (void *)(intptr_t)p[0]), 0);
  cohook_yield();
  assert_int_equal(cohook_close(p[0]), 0);
  void *rc;
  assert_int_equal(cohook_join(co, &rc), 0);
  assert_int_equal((intptr_t)rc, -EBADF);
  assert_int_equal(cohook_close(p[0]), -EBADF); /* already closed: the error close(2) gives */
  cohook_close(p[1]);
}

static void test_fd_number_reuse(void **state) {
  (void)state;
  /* Wait once on a pipe so its fd has a started watcher, close it, and get the same number for a new
   * pipe at once: the watcher must be re-added to epoll, or the second wait would hang. */
  int p[2], q[2];
  make_pipe(p);
  assert_int_equal(write(p[1], "1", 1), 1);
  assert_int_equal(cohook_wait_fd(p[0], COHOOK_READABLE, COHOOK_FOREVER), COHOOK_READABLE);
  int old = p[0];
  cohook_close(p[0]), cohook_close(p[1]);
  make_pipe(q);
  assert_int_equal(q[0], old);
  cohook_coro_t *w;
  assert_int_equal(cohook_spawn(&w, write_later, (void *)(intptr_t)q[1]), 0);
  assert_int_equal(cohook_wait_fd(q[0], COHOOK_READABLE, 2000000000), COHOOK_READABLE);
  assert_int_equal(cohook_join(w, NULL), 0);
  cohook_close(q[0]), cohook_close(q[1]);
}

static void test_bad_arguments(void **state) {
  (void)state;
  assert_int_equal(cohook_wait_fd(0, 0, 0), -EINVAL);
  assert_int_equal(cohook_wait_fd(0, 0x100, 0), -EINVAL);
  assert_int_equal(cohook_wait_fd(-1, COHOOK_READABLE, 0), -EBADF);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_timeout),           cmocka_unit_test(test_woken_by_writer),
      cmocka_unit_test(test_full_pipe_writer),  cmocka_unit_test(test_many_waiters_one_fd),
      cmocka_unit_test(test_close_wakes_waiter), cmocka_unit_test(test_fd_number_reuse),
      cmocka_unit_test(test_bad_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
