/* test_ctx.c — the context switch as coroutines see it: ping-pong, callee-saved state, floating point
 * and varargs on coroutine stacks, per-coroutine rounding modes, and the trap for a returning entry. */
#include <fenv.h>
#include <math.h>
#include <sys/mman.h>

#include "internal.h"
#include "testutil.h"

/* ---- ping-pong through the scheduler -------------------------------------------------------------- */

static int trace[64];
static int ntrace;

static void *pingpong(void *arg) {
  int id = (int)(intptr_t)arg;
  for (int i = 0; i < 4; i++) {
    trace[ntrace++] = id * 10 + i;
    cohook_yield();
  }
  return (void *)(intptr_t)(id * 100);
}

static void test_pingpong_order(void **state) {
  (void)state;
  ntrace = 0;
  cohook_coro_t *a, *b;
  assert_int_equal(cohook_spawn(&a, pingpong, (void *)1), 0);
  assert_int_equal(cohook_spawn(&b, pingpong, (void *)2), 0);
  void *ra, *rb;
  assert_int_equal(cohook_join(a, &ra), 0);
  assert_int_equal(cohook_join(b, &rb), 0);
  assert_int_equal((intptr_t)ra, 100);
  assert_int_equal((intptr_t)rb, 200);
  /* Strict alternation: a and b take turns, each resuming exactly where it yielded. */
  int want[] = {10, 20, 11, 21, 12, 22, 13, 23};
  assert_int_equal(ntrace, 8);
  for (int i = 0; i < 8; i++) assert_int_equal(trace[i], want[i]);
}

/* ---- callee-saved registers survive switches ------------------------------------------------------ */

static volatile int sink;

/* Many values live across opaque calls: at -O2 the compiler keeps them in callee-saved registers
 * (rbx, r12-r15 / x19-x28, d8-d15), which only the switch can preserve. */
static void *keep_live(void *arg) {
  long seed = (long)(intptr_t)arg;
  long a = seed * 3, b = seed * 5, c = seed * 7, d = seed * 11, e = seed * 13, f = seed * 17;
  double x = (double)seed / 3.0, y = (double)seed * 1.5, z = (double)seed + 0.25;
  for (int i = 0; i < 1000; i++) {
    cohook_yield();
    a += 1, b += 2, c += 3, d += 4, e += 5, f += 6;
    x += 1.0, y += 2.0, z += 0.5;
  }
  int ok = a == seed * 3 + 1000 && b == seed * 5 + 2000 && c == seed * 7 + 3000 &&
           d == seed * 11 + 4000 && e == seed * 13 + 5000 && f == seed * 17 + 6000 &&
           x == (double)seed / 3.0 + 1000.0 && y == (double)seed * 1.5 + 2000.0 &&
           z == (double)seed + 0.25 + 500.0;
  return (void *)(intptr_t)ok;
}

static void test_callee_saved(void **state) {
  (void)state;
  cohook_coro_t *co[4];
  for (int i = 0; i < 4; i++) assert_int_equal(cohook_spawn(&co[i], keep_live, (void *)(intptr_t)(i + 7)), 0);
  for (int i = 0; i < 4; i++) {
    void *ok;
    assert_int_equal(cohook_join(co[i], &ok), 0);
    assert_int_equal((intptr_t)ok, 1);
  }
}

/* ---- floating point and varargs on a coroutine stack ----------------------------------------------- */

static void format_all(char *buf, size_t n) {
  double d = 3.14159265358979;
  long double ld = 2.718281828459045L;
  snprintf(buf, n, "%f %e %g %.10Lf %d %s %ld %.3f %c", d, d * 1e10, d / 1e7, ld, -42, "str",
           123456789L, sqrt(2.0), 'z');
}

static void *fp_on_coroutine(void *arg) {
  char *buf = arg;
  format_all(buf, 256);
  double a = 0, b = 0;
  int i = 0;
  char word[16];
  if (sscanf("1.5 -2.25e3 77 hello", "%lf %lf %d %15s", &a, &b, &i, word) != 4) return (void *)0;
  cohook_yield(); /* and once more after a switch */
  return (void *)(intptr_t)(a == 1.5 && b == -2250.0 && i == 77 && strcmp(word, "hello") == 0);
}

static void test_fp_varargs(void **state) {
  (void)state;
  char want[256], got[256];
  format_all(want, sizeof want);
  cohook_coro_t *co;
  assert_int_equal(cohook_spawn(&co, fp_on_coroutine, got), 0);
  void *ok;
  assert_int_equal(cohook_join(co, &ok), 0);
  assert_int_equal((intptr_t)ok, 1);
  assert_string_equal(got, want);
}

/* ---- rounding modes are per coroutine -------------------------------------------------------------- */

static volatile double num = 1.0, den = 3.0;

static double third_in(int mode) {
  int old = fegetround();
  fesetround(mode);
  volatile double r = num / den; /* the volatile store pins the division between the two calls */
  fesetround(old);
  return r;
}

struct round_case {
  int mode;
  double want;
  int ok;
};

static void *round_worker(void *arg) {
  struct round_case *rc = arg;
  /* Every coroutine starts with the creator's mode (round to nearest), as a new thread does. */
  int ok = fegetround() == FE_TONEAREST;
  fesetround(rc->mode);
  for (int i = 0; i < 50; i++) {
    cohook_yield();
    volatile double q = num / den;
    ok &= fegetround() == rc->mode; /* x87 control word */
    ok &= q == rc->want;            /* SSE MXCSR (FPCR on aarch64) */
  }
  rc->ok = ok;
  return NULL;
}

static void test_rounding_isolation(void **state) {
  (void)state;
  assert_int_equal(fegetround(), FE_TONEAREST);
  struct round_case up = {FE_UPWARD, third_in(FE_UPWARD), 0};
  struct round_case down = {FE_DOWNWARD, third_in(FE_DOWNWARD), 0};
  /* valgrind computes SSE arithmetic in round-to-nearest whatever MXCSR says (a documented
   * limitation), so there only the control words themselves can be checked. */
  if (CH_ON_VALGRIND()) up.want = down.want = third_in(FE_TONEAREST);
  else assert_true(up.want != down.want);
  cohook_coro_t *a, *b;
  assert_int_equal(cohook_spawn(&a, round_worker, &up), 0);
  assert_int_equal(cohook_spawn(&b, round_worker, &down), 0);
  assert_int_equal(cohook_join(a, NULL), 0);
  assert_int_equal(cohook_join(b, NULL), 0);
  assert_int_equal(up.ok, 1);
  assert_int_equal(down.ok, 1);
  assert_int_equal(fegetround(), FE_TONEAREST);
  assert_true(num / den == third_in(FE_TONEAREST));
}

/* ---- an entry function that returns is trapped ------------------------------------------------------ */

static void *main_sp;
static void returning_entry(void *arg) { (void)arg; }

static void run_returning_context(void) {
  size_t sz = 64 * 1024;
  char *stk = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  void *sp = ch_ctx_make(stk + sz, returning_entry);
  ch_ctx_jump(&main_sp, sp, NULL);
}

static void test_returning_entry_traps(void **state) {
  (void)state;
  struct tu_child c;
  tu_run_child(run_returning_context, &c);
  assert_true(WIFSIGNALED(c.status));
  assert_int_equal(WTERMSIG(c.status), SIGABRT);
  assert_non_null(strstr(c.err, "cohook: internal error: a coroutine entry function returned"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pingpong_order),
      cmocka_unit_test(test_callee_saved),
      cmocka_unit_test(test_fp_varargs),
      cmocka_unit_test(test_rounding_isolation),
      cmocka_unit_test(test_returning_entry_traps),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
