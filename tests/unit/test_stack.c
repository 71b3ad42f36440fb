/* test_stack.c — stacks: COHOOK_STACK_SIZE parsing and validation, overflow reports (guard page and
 * canary), pooling (one pool per default size), requests mapped on their own, the layout of slabs of
 * big stacks, the threads' default size, returning deep pages, and failing cleanly at the memory
 * limit. */
#include <sys/mman.h>
#include <sys/resource.h>

#include "internal.h"
#include "testutil.h"

static char self_exe[4096];

static void test_parse_size(void **state) {
  (void)state;
  size_t v;
  assert_int_equal(ch_parse_size("262144", &v), 0), assert_int_equal(v, 262144);
  assert_int_equal(ch_parse_size("64K", &v), 0), assert_int_equal(v, 65536);
  assert_int_equal(ch_parse_size("2m", &v), 0), assert_int_equal(v, 2u << 20);
  assert_int_equal(ch_parse_size("1MiB", &v), 0), assert_int_equal(v, 1u << 20);
  assert_int_equal(ch_parse_size("1G", &v), 0), assert_int_equal(v, 1u << 30);
  assert_int_equal(ch_parse_size("", &v), -EINVAL);
  assert_int_equal(ch_parse_size("-1", &v), -EINVAL);
  assert_int_equal(ch_parse_size("12Q", &v), -EINVAL);
  assert_int_equal(ch_parse_size("1.5M", &v), -EINVAL);
  assert_int_equal(ch_parse_size("99999999999999999999", &v), -ERANGE);
  assert_int_equal(ch_parse_size("99999999999999G", &v), -ERANGE);
}

/* Run this test binary again with COHOOK_STACK_SIZE set; its constructor validates before main. */
static int run_with_stack_env(const char *value, char *err, size_t errlen) {
  int p[2];
  assert_int_equal(pipe(p), 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(p[1], 2);
    dup2(p[1], 1);
    setenv("COHOOK_STACK_SIZE", value, 1);
    execl(self_exe, self_exe, "--print-stack-size", (char *)NULL);
    _exit(127);
  }
  close(p[1]);
  size_t n = 0;
  ssize_t r;
  while (n < errlen - 1 && (r = read(p[0], err + n, errlen - 1 - n)) > 0) n += (size_t)r;
  err[n] = 0;
  close(p[0]);
  int st;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void test_bad_env_values(void **state) {
  (void)state;
  char out[512];
  assert_int_equal(run_with_stack_env("banana", out, sizeof out), 1);
  assert_string_equal(out, "cohook: COHOOK_STACK_SIZE=banana: not a byte count; use e.g. 262144, 256K or "
                           "8M (between 16K and 1G)\n");
  assert_int_equal(run_with_stack_env("4K", out, sizeof out), 1);
  assert_string_equal(out, "cohook: COHOOK_STACK_SIZE=4K: out of range; use a size between 16K and 1G\n");
  assert_int_equal(run_with_stack_env("5G", out, sizeof out), 1);
  assert_non_null(strstr(out, "out of range"));
  assert_int_equal(run_with_stack_env("100000", out, sizeof out), 0);
  assert_string_equal(out, "stack size 102400\n"); /* rounded up to whole pages */
  assert_int_equal(run_with_stack_env("1M", out, sizeof out), 0);
  assert_string_equal(out, "stack size 1048576\n");
}

static volatile long depth_limit = 1L << 40; /* never reached: the stack overflows first */
static long recurse_forever(long depth) {
  volatile char pad[512];
  pad[0] = (char)depth;
  if (depth > depth_limit) return 0;
  return recurse_forever(depth + 1) + pad[0];
}

static void *overflow_body(void *arg) {
  (void)arg;
  return (void *)recurse_forever(0);
}

static void overflow_child(void) {
  cohook_coro_t *co;
  if (cohook_spawn(&co, overflow_body, NULL) == 0) cohook_join(co, NULL);
}

static void test_guard_page_overflow(void **state) {
  (void)state;
  struct tu_child c;
  tu_run_child(overflow_child, &c);
  assert_true(WIFSIGNALED(c.status));
  assert_int_equal(WTERMSIG(c.status), SIGABRT);
  assert_non_null(strstr(c.err, "cohook: coroutine stack overflow (stack size 262144 bytes); raise "
                                "COHOOK_STACK_SIZE"));
  assert_ptr_equal(strchr(c.err, '\n'), c.err + strlen(c.err) - 1); /* exactly one line */
}

/* Without guard markers (kernels before 6.13) the guard is a PROT_NONE page: same report. */
static void overflow_child_mprotect(void) {
  ch_stack_use_guard_markers(false);
  overflow_child();
}

static void test_guard_page_overflow_mprotect(void **state) {
  (void)state;
  struct tu_child c;
  tu_run_child(overflow_child_mprotect, &c);
  assert_true(WIFSIGNALED(c.status));
  assert_int_equal(WTERMSIG(c.status), SIGABRT);
  assert_non_null(strstr(c.err, "cohook: coroutine stack overflow (stack size 262144 bytes); raise "
                                "COHOOK_STACK_SIZE"));
}

/* With guard markers the mapping budget does not apply: with a budget of 0, a stack is still guarded,
 * its guard costs no mapping, and an overflow faults at once (the guard report, not the canary's). */
static void *guarded_probe(void *arg) {
  (void)arg;
  return (void *)(uintptr_t)ch_sched_peek()->current->stack.guarded;
}

static long count_maps(void) {
  FILE *f = fopen("/proc/self/maps", "r");
  long n = 0;
  for (int ch; f && (ch = fgetc(f)) != EOF;) n += ch == '\n';
  if (f) fclose(f);
  return n;
}

static void markers_child(void) {
  ch_stack_set_guard_budget(0);
  cohook_coro_t *co[200];
  void *g = NULL;
  long before = count_maps();
  for (int i = 0; i < 200; i++)
    if (cohook_spawn(&co[i], guarded_probe, NULL) != 0) _exit(3);
  for (int i = 0; i < 200; i++) {
    cohook_join(co[i], &g);
    if (!g) _exit(4); /* a stack past the budget without a guard: markers not used */
  }
  /* 200 fresh stacks carve 4 slabs: a few mappings, not 400 */
  if (count_maps() - before > 20) _exit(5);
  overflow_child();
}

static void test_guard_markers_past_budget(void **state) {
  (void)state;
  if (!ch_stack_guard_markers_available()) skip(); /* kernel before 6.13, or valgrind */
  struct tu_child c;
  tu_run_child(markers_child, &c);
  assert_true(WIFSIGNALED(c.status));
  assert_int_equal(WTERMSIG(c.status), SIGABRT);
  assert_non_null(strstr(c.err, "cohook: coroutine stack overflow (stack size 262144 bytes); raise "
                                "COHOOK_STACK_SIZE"));
}

/* Past the guard budget there is no PROT_NONE page: an overflow that runs into the canary is caught
 * when the coroutine next switches away. Simulated by writing just below the stack. */
static void *smash_canary(void *arg) {
  (void)arg;
  struct ch_stack *st = &ch_sched_peek()->current->stack;
  if (st->guarded) return (void *)1; /* the budget did not apply: fail the test visibly */
  memset(st->lo - 16, 0, 16);
  cohook_yield();
  return NULL;
}

static void canary_child(void) {
  ch_stack_use_guard_markers(false);
  ch_stack_set_guard_budget(0);
  cohook_coro_t *co;
  if (cohook_spawn(&co, smash_canary, NULL) == 0) cohook_join(co, NULL);
}

static void test_canary_overflow(void **state) {
  (void)state;
  struct tu_child c;
  tu_run_child(canary_child, &c);
  assert_true(WIFSIGNALED(c.status));
  assert_int_equal(WTERMSIG(c.status), SIGABRT);
  assert_non_null(strstr(c.err, "cohook: coroutine stack overflow detected by canary (stack size 262144 "
                                "bytes); raise COHOOK_STACK_SIZE"));
}

static void *where_am_i(void *arg) {
  (void)arg;
  return ch_sched_peek()->current->stack.lo;
}

static void test_pool_reuse(void **state) {
  (void)state;
  cohook_coro_t *co;
  void *a, *b;
  assert_int_equal(cohook_spawn(&co, where_am_i, NULL), 0);
  assert_int_equal(cohook_join(co, &a), 0);
  assert_int_equal(cohook_spawn(&co, where_am_i, NULL), 0);
  assert_int_equal(cohook_join(co, &b), 0);
  assert_ptr_equal(a, b); /* the freed stack came straight back from this thread's cache */
}

static void *go_deep(void *arg) {
  char **lo = arg;
  *lo = ch_sched_peek()->current->stack.lo;
  volatile char big[160 * 1024];
  memset((char *)big, 0x5a, sizeof big);
  cohook_yield(); /* depth is sampled at switches: a deep excursion between two is not seen */
  return (void *)(intptr_t)big[100];
}

static long resident_pages(char *lo, size_t len) {
  size_t n = len / 4096;
  unsigned char *v = malloc(n);
  assert_int_equal(mincore(lo, len, v), 0);
  long r = 0;
  for (size_t i = 0; i < n; i++) r += v[i] & 1;
  free(v);
  return r;
}

static void test_deep_stack_pages_returned(void **state) {
  (void)state;
  char *lo = NULL;
  cohook_coro_t *co;
  assert_int_equal(cohook_spawn(&co, go_deep, &lo), 0);
  assert_int_equal(cohook_join(co, NULL), 0);
  /* 160 KiB were touched; once pooled only the hot top 32 KiB may stay resident. */
  long res = resident_pages(lo, ch_config.stack_size - 32 * 1024);
  assert_int_equal(res, 0);
}


/* Each in a child: pool classes are process-wide, and a fifth size must find the four taken. */
#define PT_SPAN (2ul << 20)

static int is_mapped(const char *p) {
  unsigned char v;
  return mincore((void *)((uintptr_t)p & ~(uintptr_t)4095), 4096, &v) == 0;
}

static void pool_classes_child(void) {
  /* Two default sizes besides the API's: each size is pooled apart and comes back as itself. */
  struct ch_stack a, b, a2, b2;
  size_t sa = 512u << 10, sb = 768u << 10;
  if (ch_stack_get(NULL, sa, true, &a) || ch_stack_get(NULL, sb, true, &b)) _exit(3);
  if (!a.slab || !b.slab || a.size != sa || b.size != sb) _exit(4);
  ch_stack_put(NULL, &a);
  ch_stack_put(NULL, &b);
  if (ch_stack_get(NULL, sb, true, &b2) || ch_stack_get(NULL, sa, true, &a2)) _exit(5);
  if (b2.lo != b.lo || b2.size != sb || a2.lo != a.lo || a2.size != sa) _exit(6);
  /* Stacks of 2 MiB or more: stack i+1's guard right above stack i's top, and each top (with 64 KiB
   * below it) in the same 2 MiB as that guard: one page-table page for both. */
  struct ch_stack c[3];
  size_t sc = 4u << 20;
  for (int i = 0; i < 3; i++)
    if (ch_stack_get(NULL, sc, true, &c[i]) || !c[i].slab || c[i].size != sc) _exit(7);
  if ((uintptr_t)(c[0].lo - 4096) % PT_SPAN != 64 * 1024) _exit(12); /* the first of a fresh slab */
  for (int i = 0; i < 3; i++) {
    uintptr_t top = (uintptr_t)(c[i].lo + c[i].size);
    if (i < 2 && c[i + 1].lo != c[i].lo + sc + 4096) _exit(8);
    if (top % PT_SPAN < 64 * 1024 || top % PT_SPAN > PT_SPAN - 4096) _exit(9);
    memset(c[i].lo + sc - 8192, 1, 8192); /* the stacks are usable */
  }
  /* The four pools are taken (256 KiB, 512 KiB, 768 KiB, 4 MiB): a fifth default size is mapped on
   * its own, and unmapped when released. */
  struct ch_stack d;
  if (ch_stack_get(NULL, 1u << 20, true, &d) || d.slab || d.size != 1u << 20) _exit(10);
  ch_stack_put(NULL, &d);
  if (is_mapped(d.lo + 4096)) _exit(11);
  for (int i = 0; i < 3; i++) ch_stack_put(NULL, &c[i]);
  ch_stack_put(NULL, &a2);
  ch_stack_put(NULL, &b2);
}

static void test_pool_per_size(void **state) {
  (void)state;
  struct tu_child c;
  tu_run_child(pool_classes_child, &c);
  print_message("  %s", c.err);
  assert_true(WIFEXITED(c.status));
  assert_int_equal(WEXITSTATUS(c.status), 0);
}

/* A requested size, even the default one, is its own mapping of exactly that size, given back at
 * release; sizes no machine maps are EAGAIN, never a wrapped-around small stack. */
static void test_request_own_mapping(void **state) {
  (void)state;
  struct ch_stack st;
  assert_int_equal(ch_stack_get(NULL, ch_config.stack_size, false, &st), 0);
  assert_false(st.slab);
  assert_int_equal(st.size, ch_config.stack_size);
  memset(st.lo, 0x5a, st.size);
  char *lo = st.lo;
  ch_stack_put(NULL, &st);
  assert_false(is_mapped(lo));
  assert_int_equal(ch_stack_get(NULL, 1ul << 48, false, &st), -EAGAIN);
  assert_int_equal(ch_stack_get(NULL, SIZE_MAX - 100, false, &st), -EAGAIN);
  assert_int_equal(ch_stack_get(NULL, SIZE_MAX - 100, true, &st), -EAGAIN);
}

/* Threads that ask for nothing get glibc's default as it is now, or COHOOK_STACK_SIZE when set. */
static void thread_default_child(void) {
  pthread_attr_t a;
  size_t g = 0;
  if (pthread_getattr_default_np(&a) || pthread_attr_getstacksize(&a, &g)) _exit(3);
  pthread_attr_destroy(&a);
  if (ch_stack_thread_default() != g) _exit(4);
  pthread_attr_init(&a);
  pthread_attr_setstacksize(&a, (3u << 20) + 100);
  if (pthread_setattr_default_np(&a)) _exit(5);
  pthread_attr_destroy(&a);
  if (ch_stack_thread_default() != (3u << 20) + 4096) _exit(6); /* page-rounded */
  ch_config.stack_size = 64u << 10;
  ch_config.stack_size_set = true;
  if (ch_stack_thread_default() != 64u << 10) _exit(7);
}

static void test_thread_default(void **state) {
  (void)state;
  struct tu_child c;
  tu_run_child(thread_default_child, &c);
  assert_true(WIFEXITED(c.status));
  assert_int_equal(WEXITSTATUS(c.status), 0);
}

#ifndef CH_ASAN /* ASan reserves terabytes of shadow memory, so RLIMIT_AS cannot be used under it */
static void *nothing(void *arg) { return arg; }

static void spawn_until_fail_child(void) {
  /* Own-size stacks are mapped one by one; with the address space capped, spawning must fail with
   * -EAGAIN (as pthread_create does), never crash. */
  struct rlimit rl = {.rlim_cur = 1ul << 30, .rlim_max = 1ul << 30};
  setrlimit(RLIMIT_AS, &rl);
  cohook_spawn_opts_t o = {.stack_size = 16u << 20};
  cohook_coro_t *co;
  int rc = 0, n = 0;
  while (n < 1000 && (rc = cohook_spawn_ex(&co, nothing, NULL, &o)) == 0) n++;
  fprintf(stderr, "spawned %d then rc=%d\n", n, rc);
  _exit(rc == -EAGAIN && n > 0 && n < 1000 ? 0 : 1);
}

static void test_spawn_fails_cleanly(void **state) {
  (void)state;
  struct tu_child c;
  tu_run_child(spawn_until_fail_child, &c);
  print_message("  %s", c.err);
  assert_true(WIFEXITED(c.status));
  assert_int_equal(WEXITSTATUS(c.status), 0);
}
#endif

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--print-stack-size") == 0) {
    printf("stack size %zu\n", ch_config.stack_size);
    return 0;
  }
  ssize_t n = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
  if (n > 0) self_exe[n] = 0;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_size),          cmocka_unit_test(test_bad_env_values),
      cmocka_unit_test(test_guard_page_overflow), cmocka_unit_test(test_guard_page_overflow_mprotect),
      cmocka_unit_test(test_guard_markers_past_budget), cmocka_unit_test(test_canary_overflow),
      cmocka_unit_test(test_pool_reuse),          cmocka_unit_test(test_deep_stack_pages_returned),
      cmocka_unit_test(test_pool_per_size),       cmocka_unit_test(test_request_own_mapping),
      cmocka_unit_test(test_thread_default),
#ifndef CH_ASAN
      cmocka_unit_test(test_spawn_fails_cleanly),
#endif
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
