/*
 * ctx_selftest.c — standalone check of one runtime/ctx_<arch>.S, built without the rest of the runtime
 * (no libev, no cmocka) so that it can be cross-compiled statically and run under qemu-user:
 *
 *   gcc -O2 -Wall -Wextra -Werror tests/arch/ctx_selftest.c runtime/ctx_x86_64.S -lm
 *   aarch64-linux-gnu-gcc -static -O2 ... tests/arch/ctx_selftest.c runtime/ctx_aarch64.S -lm
 *
 * What it checks, one test each:
 *   pingpong      values travel through `arg` in both directions, main <-> two coroutines and between
 *                 the coroutines themselves, 100000 times
 *   callee_saved  long-lived integers and doubles survive ch_ctx_jump at -O2 while the other side
 *                 runs with different values in the same registers
 *   stack_libc    stdio's floating-point formatting and varargs work on a coroutine stack (they are
 *                 the first to fault on a misaligned stack) and agree with the main stack
 *   rounding      the FP rounding mode is per context (I5 in the .S files)
 *   entry_return  an entry function that returns ends in ch_ctx_returned(), not in garbage
 *
 * The last line is "N passed, M failed"; the exit status is non-zero when anything failed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fenv.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

/* The contract from runtime/internal.h, repeated so that this file needs nothing but the .S file. */
void *ch_ctx_jump(void **save_sp, void *to_sp, void *arg);
void *ch_ctx_make(void *stack_top, void (*entry)(void *arg));
void ch_ctx_returned(void) __attribute__((noreturn));

#define STACK_SIZE (256 * 1024)
#define PINGPONG_ROUNDS 100000
#define REG_ROUNDS 20000
#define TEST_TIMEOUT_S 60

/* ---- tiny harness --------------------------------------------------------------------------------- */

static int test_failures; /* failures inside the test now running */

#define CHECK(cond)                                                                               \
  do {                                                                                            \
    if (!(cond)) check_failed(__FILE__, __LINE__, #cond);                                         \
  } while (0)

static void check_failed(const char *file, int line, const char *what) {
  /* Report only the first few: a broken switch tends to fail the same check thousands of times. */
  if (test_failures++ < 5) fprintf(stderr, "  %s:%d: check failed: %s\n", file, line, what);
}

/* The trampoline calls this when an entry function returns; the runtime's own version is in sched.c. */
void ch_ctx_returned(void) {
  static const char msg[] = "ctx_selftest: entry function returned\n";
  ssize_t w = write(2, msg, sizeof msg - 1); /* write(2), not stdio: we may be anywhere */
  (void)w;
  abort();
}

/* ---- stacks --------------------------------------------------------------------------------------- */

struct stack {
  char *base;
  size_t size;
};

/* mmap a stack with a PROT_NONE guard page at the bottom, so an overflow faults instead of silently
 * corrupting whatever lies below. Returns the top (highest address), which is what ch_ctx_make takes. */
static void *stack_new(struct stack *st) {
  long page = sysconf(_SC_PAGESIZE);
  st->size = STACK_SIZE;
  st->base = mmap(NULL, st->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (st->base == MAP_FAILED) {
    perror("mmap");
    exit(2);
  }
  if (mprotect(st->base, (size_t)page, PROT_NONE) != 0) {
    perror("mprotect");
    exit(2);
  }
  return st->base + st->size;
}

static void stack_free(struct stack *st) { munmap(st->base, st->size); }

/* The stack pointer as a function sees it right at entry, i.e. after the call instruction. A compiled
 * function keeps its caller's alignment relative to this, so checking it from inside a coroutine checks
 * the alignment ch_ctx_make and ch_ctx_jump set up. */
uintptr_t sp_at_entry(void);
#if defined(__x86_64__)
__asm__(".text\n.globl sp_at_entry\n.type sp_at_entry,@function\n"
        "sp_at_entry:\n\tmovq %rsp, %rax\n\tret\n.size sp_at_entry,.-sp_at_entry\n");
#define SP_AT_ENTRY_MOD16 8 /* SysV: rsp + 8 is a multiple of 16 at entry */
#elif defined(__aarch64__)
__asm__(".text\n.globl sp_at_entry\n.type sp_at_entry,%function\n"
        "sp_at_entry:\n\tmov x0, sp\n\tret\n.size sp_at_entry,.-sp_at_entry\n");
#define SP_AT_ENTRY_MOD16 0 /* AAPCS64: sp is always 16-aligned */
#else
#error "ctx_selftest: x86_64 and aarch64 only"
#endif

/* ---- (a) ping-pong -------------------------------------------------------------------------------- */

/* Contexts shared by the ping-pong coroutines; file scope because entry functions get one pointer. */
static void *pp_main_sp, *pp_sp[2];

/* Alternating phase: main sends i to coroutine i % 2, which answers 3 * i + 1 + k. Ring phase: main
 * sends i to coroutine 0, which passes 2 * i to coroutine 1, which answers 2 * i + 1 to main. Each
 * coroutine checks every value it receives against the sequence it expects. */
static void pp_entry(void *arg) {
  uintptr_t k = (uintptr_t)arg >> 32; /* which coroutine: main's first value carries it up high */
  uintptr_t v = (uintptr_t)arg & 0xffffffffu;
  for (uintptr_t i = k; i < PINGPONG_ROUNDS; i += 2) {
    CHECK(v == i);
    v = (uintptr_t)ch_ctx_jump(&pp_sp[k], pp_main_sp, (void *)(3 * i + 1 + k));
  }
  /* Ring phase: v is the first value of it. */
  for (uintptr_t i = 0; i < PINGPONG_ROUNDS; i++) {
    CHECK(v == (k == 0 ? i : 2 * i));
    if (k == 0) v = (uintptr_t)ch_ctx_jump(&pp_sp[0], pp_sp[1], (void *)(2 * i));
    else v = (uintptr_t)ch_ctx_jump(&pp_sp[1], pp_main_sp, (void *)(2 * i + 1));
  }
  CHECK(!"a finished ping-pong coroutine was resumed");
  for (;;) ch_ctx_jump(&pp_sp[k], pp_main_sp, NULL);
}

static void test_pingpong(void) {
  struct stack st[2];
  for (uintptr_t k = 0; k < 2; k++) pp_sp[k] = ch_ctx_make(stack_new(&st[k]), pp_entry);
  /* Start both: the first jump hands each its number in the high half of the first value. */
  for (uintptr_t i = 0; i < PINGPONG_ROUNDS; i++) {
    uintptr_t k = i % 2;
    void *out = (void *)(i < 2 ? (k << 32) | i : i);
    uintptr_t r = (uintptr_t)ch_ctx_jump(&pp_main_sp, pp_sp[k], out);
    CHECK(r == 3 * i + 1 + k);
  }
  for (uintptr_t i = 0; i < PINGPONG_ROUNDS; i++) {
    uintptr_t r = (uintptr_t)ch_ctx_jump(&pp_main_sp, pp_sp[0], (void *)i);
    CHECK(r == 2 * i + 1);
  }
  for (int k = 0; k < 2; k++) stack_free(&st[k]);
}

/* ---- (b) callee-saved registers ------------------------------------------------------------------- */

/* One side of the register test. The same function runs on the main stack and on a coroutine, each
 * with its own seed, so at every switch the registers hold values of the other side. */
struct reg_side {
  void *sp;
  uint64_t seed;
  volatile uint64_t mirror_i[8]; /* what the live values must be; volatile so that the compiler */
  volatile double mirror_d[8];   /* cannot derive the live values from it, nor the reverse      */
};

static struct reg_side reg_a, reg_b;

static void *reg_token(const struct reg_side *s, int i) {
  return (void *)(uintptr_t)(s->seed * 1000003u + (uint64_t)i);
}

/* Keeps eight integers and eight doubles live across every ch_ctx_jump. At -O2 they sit in
 * callee-saved registers (rbx, r12-r15 / x19-x28, d8-d15) or, where those run out, in the frame; the
 * check covers both. Each round folds in the token received from the peer, so the compiler can
 * neither compute the final values in closed form nor rematerialise them after the call.
 * `lag` is 1 for the side that jumps first (it receives nothing in round 0, then the peer's token of
 * the round before) and 0 for the side started by that jump (round r receives the peer's token r). */
__attribute__((noinline)) static void reg_worker(struct reg_side *me, struct reg_side *peer, void *in,
                                                 int lag) {
  uint64_t i0 = me->seed + 1, i1 = me->seed * 3, i2 = me->seed ^ 0x5555, i3 = me->seed << 7;
  uint64_t i4 = ~me->seed, i5 = me->seed * me->seed, i6 = me->seed + 99, i7 = me->seed >> 1;
  /* Multiples of 1/8 below 2^40: every sum below is exact, so the mirror's separate computation
   * must match bit for bit whatever the compiler contracts or reorders. */
  double s = (double)(me->seed & 0xff);
  double d0 = s + 0.125, d1 = s * 2 + 0.25, d2 = s * 3 + 0.375, d3 = s * 4 + 0.5;
  double d4 = s * 5 + 0.625, d5 = s * 6 + 0.75, d6 = s * 7 + 0.875, d7 = s * 8 + 1.0;
  me->mirror_i[0] = i0, me->mirror_i[1] = i1, me->mirror_i[2] = i2, me->mirror_i[3] = i3;
  me->mirror_i[4] = i4, me->mirror_i[5] = i5, me->mirror_i[6] = i6, me->mirror_i[7] = i7;
  me->mirror_d[0] = d0, me->mirror_d[1] = d1, me->mirror_d[2] = d2, me->mirror_d[3] = d3;
  me->mirror_d[4] = d4, me->mirror_d[5] = d5, me->mirror_d[6] = d6, me->mirror_d[7] = d7;

  for (int r = 0; r < REG_ROUNDS; r++) {
    uint64_t t = (uint64_t)(uintptr_t)in;
    CHECK(in == (r < lag ? NULL : reg_token(peer, r - lag)));
    CHECK(i0 == me->mirror_i[0] && i1 == me->mirror_i[1] && i2 == me->mirror_i[2]);
    CHECK(i3 == me->mirror_i[3] && i4 == me->mirror_i[4] && i5 == me->mirror_i[5]);
    CHECK(i6 == me->mirror_i[6] && i7 == me->mirror_i[7]);
    CHECK(d0 == me->mirror_d[0] && d1 == me->mirror_d[1] && d2 == me->mirror_d[2]);
    CHECK(d3 == me->mirror_d[3] && d4 == me->mirror_d[4] && d5 == me->mirror_d[5]);
    CHECK(d6 == me->mirror_d[6] && d7 == me->mirror_d[7]);
    i0 = i0 * 5 + t, i1 ^= t, i2 += t << 1, i3 = i3 * 7 - t;
    i4 -= t, i5 = (i5 >> 3) + t, i6 = i6 * 11 + t, i7 ^= t << 5;
    double dt = (double)(t & 0x7f) * 0.125;
    d0 += dt, d1 -= dt, d2 += dt * 2, d3 -= dt * 2, d4 += dt * 4, d5 -= dt * 4, d6 += dt * 8, d7 -= dt;
    for (int j = 0; j < 8; j++) {
      uint64_t m = me->mirror_i[j];
      switch (j) {
      case 0: m = m * 5 + t; break;
      case 1: m ^= t; break;
      case 2: m += t << 1; break;
      case 3: m = m * 7 - t; break;
      case 4: m -= t; break;
      case 5: m = (m >> 3) + t; break;
      case 6: m = m * 11 + t; break;
      default: m ^= t << 5; break;
      }
      me->mirror_i[j] = m;
    }
    static const double dscale[8] = {1, -1, 2, -2, 4, -4, 8, -1};
    for (int j = 0; j < 8; j++) me->mirror_d[j] = me->mirror_d[j] + dt * dscale[j];
    in = ch_ctx_jump(&me->sp, peer->sp, reg_token(me, r));
  }
  CHECK(i0 == me->mirror_i[0] && i1 == me->mirror_i[1] && i2 == me->mirror_i[2]);
  CHECK(i3 == me->mirror_i[3] && i4 == me->mirror_i[4] && i5 == me->mirror_i[5]);
  CHECK(i6 == me->mirror_i[6] && i7 == me->mirror_i[7]);
  CHECK(d0 == me->mirror_d[0] && d1 == me->mirror_d[1] && d2 == me->mirror_d[2]);
  CHECK(d3 == me->mirror_d[3] && d4 == me->mirror_d[4] && d5 == me->mirror_d[5]);
  CHECK(d6 == me->mirror_d[6] && d7 == me->mirror_d[7]);
}

/* The coroutine side. Its last jump in reg_worker hands control back to main for good. */
static void reg_entry(void *arg) {
  reg_worker(&reg_b, &reg_a, arg, 0);
  CHECK(!"the register-test coroutine was resumed after its last round");
  for (;;) ch_ctx_jump(&reg_b.sp, reg_a.sp, NULL);
}

static void test_callee_saved(void) {
  struct stack st;
  reg_a.seed = 0x1234567;
  reg_b.seed = 0x7654321;
  reg_b.sp = ch_ctx_make(stack_new(&st), reg_entry);
  reg_worker(&reg_a, &reg_b, NULL, 1); /* main jumps first */
  stack_free(&st);
}

/* ---- (c) libc on a coroutine stack ---------------------------------------------------------------- */

struct libc_results {
  char fmt[256];
  char va[256];
  double scanned_d;
  int scanned_i;
  char scanned_s[32];
  int scanned_n;
  uintptr_t sp;
};

/* A varargs function of our own: va_list handling touches the register save area on the stack. */
static int format_va(char *buf, size_t len, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, len, fmt, ap);
  va_end(ap);
  return n;
}

/* noinline: the main-stack and coroutine-stack runs must execute the very same code. */
__attribute__((noinline)) static void libc_work(struct libc_results *r) {
  volatile double x = 3.14159265358979, y = -1.5e-7, z = 6.02214076e23;
  volatile long double lx = 2.718281828459045235L;
  snprintf(r->fmt, sizeof r->fmt, "%f|%e|%g|%.10Lf|%a|%.3g", x, y, z, lx, x, y);
  format_va(r->va, sizeof r->va, "%d %s %.2f %lld %Le %c %g", -42, "str", x, 1234567890123LL, lx, 'q',
            z * y);
  r->scanned_n = sscanf("  2.5e3 -17 token", "%lf %d %31s", &r->scanned_d, &r->scanned_i, r->scanned_s);
  r->sp = sp_at_entry();
}

static void *libc_main_sp, *libc_co_sp;

static void libc_entry(void *arg) {
  libc_work(arg);
  ch_ctx_jump(&libc_co_sp, libc_main_sp, NULL);
  CHECK(!"the libc-test coroutine was resumed");
  for (;;) ch_ctx_jump(&libc_co_sp, libc_main_sp, NULL);
}

static void test_stack_libc(void) {
  struct libc_results on_main, on_co;
  memset(&on_main, 0, sizeof on_main);
  memset(&on_co, 0xff, sizeof on_co); /* nothing matches by accident */
  libc_work(&on_main);

  struct stack st;
  void *top = stack_new(&st);
  libc_co_sp = ch_ctx_make(top, libc_entry);
  ch_ctx_jump(&libc_main_sp, libc_co_sp, &on_co);

  CHECK(strcmp(on_main.fmt, on_co.fmt) == 0);
  CHECK(strcmp(on_main.va, on_co.va) == 0);
  CHECK(on_co.scanned_n == 3 && on_co.scanned_d == 2500.0 && on_co.scanned_i == -17);
  CHECK(strcmp(on_co.scanned_s, "token") == 0);
  CHECK(on_main.sp % 16 == SP_AT_ENTRY_MOD16);
  CHECK(on_co.sp % 16 == SP_AT_ENTRY_MOD16);
  /* It really ran on the coroutine stack, not somewhere else. */
  CHECK(on_co.sp > (uintptr_t)st.base && on_co.sp < (uintptr_t)top);
  if (strcmp(on_main.fmt, on_co.fmt) != 0 || strcmp(on_main.va, on_co.va) != 0)
    fprintf(stderr, "  main: %s / %s\n  coro: %s / %s\n", on_main.fmt, on_main.va, on_co.fmt, on_co.va);
  stack_free(&st);
}

/* ---- (d) rounding-mode isolation ------------------------------------------------------------------ */

/* Operands are volatile so that every division happens at run time, under the rounding mode then in
 * force (without -frounding-math GCC would fold constant divisions with round-to-nearest). */
static volatile double one = 1.0, three = 3.0, five = 5.0;
static volatile long double lone = 1.0L, lthree = 3.0L, lseven = 7.0L;

/* A fingerprint of the rounding mode: quotients whose exact value lies between two representable
 * numbers, chosen so that nearest differs from upward in one of them and from downward in another
 * (1/3 rounds down to nearest as a double, 1/5 rounds up; as a long double 1/3 rounds up, 1/7 down). */
struct quots {
  double d3, d5;
  long double l3, l7;
};

static struct quots quots_now(void) {
  struct quots q = {one / three, one / five, lone / lthree, lone / lseven};
  return q;
}

static int quots_eq(struct quots a, struct quots b) {
  return a.d3 == b.d3 && a.d5 == b.d5 && a.l3 == b.l3 && a.l7 == b.l7;
}

static struct quots q_near, q_up, q_down;
static void *fp_main_sp, *fp_a_sp, *fp_b_sp;

static void fp_a_entry(void *arg) {
  (void)arg;
  CHECK(fegetround() == FE_TONEAREST); /* inherited from main at ch_ctx_make */
  CHECK(fesetround(FE_UPWARD) == 0);
  CHECK(quots_eq(quots_now(), q_up));
  ch_ctx_jump(&fp_a_sp, fp_main_sp, NULL);
  /* Main and B ran meanwhile, B under FE_DOWNWARD; our mode must be back. */
  CHECK(fegetround() == FE_UPWARD);
  CHECK(quots_eq(quots_now(), q_up));
  for (;;) ch_ctx_jump(&fp_a_sp, fp_main_sp, NULL);
}

static void fp_b_entry(void *arg) {
  (void)arg;
  CHECK(fegetround() == FE_TONEAREST); /* A's FE_UPWARD must not have leaked into main, nor here */
  CHECK(quots_eq(quots_now(), q_near));
  CHECK(fesetround(FE_DOWNWARD) == 0);
  CHECK(quots_eq(quots_now(), q_down));
  for (;;) ch_ctx_jump(&fp_b_sp, fp_main_sp, NULL);
}

/* The expected fingerprints, computed on the main stack with fesetround around each. */
static void fp_compute_expectations(void) {
  q_near = quots_now();
  fesetround(FE_UPWARD);
  q_up = quots_now();
  fesetround(FE_DOWNWARD);
  q_down = quots_now();
  fesetround(FE_TONEAREST);
}

static void test_rounding(void) {
  CHECK(fegetround() == FE_TONEAREST);
  fp_compute_expectations();
  /* Without these the test below would prove nothing. */
  CHECK(!quots_eq(q_near, q_up) && !quots_eq(q_near, q_down) && !quots_eq(q_up, q_down));
  CHECK(q_up.d3 != q_near.d3 && q_down.d5 != q_near.d5); /* the double path (SSE / FP regs) alone */

  struct stack sa, sb;
  fp_a_sp = ch_ctx_make(stack_new(&sa), fp_a_entry);
  ch_ctx_jump(&fp_main_sp, fp_a_sp, NULL); /* A: sets FE_UPWARD */
  CHECK(fegetround() == FE_TONEAREST);
  CHECK(quots_eq(quots_now(), q_near));
  fp_b_sp = ch_ctx_make(stack_new(&sb), fp_b_entry); /* created while main is FE_TONEAREST */
  ch_ctx_jump(&fp_main_sp, fp_b_sp, NULL);           /* B: sees nearest, sets FE_DOWNWARD */
  CHECK(fegetround() == FE_TONEAREST);
  CHECK(quots_eq(quots_now(), q_near));
  ch_ctx_jump(&fp_main_sp, fp_a_sp, NULL); /* A: still FE_UPWARD */
  CHECK(fegetround() == FE_TONEAREST);
  CHECK(quots_eq(quots_now(), q_near));
  fesetround(FE_TONEAREST); /* whatever happened above, leave the process as we found it */
  stack_free(&sa);
  stack_free(&sb);
}

/* ---- (e) an entry function that returns ----------------------------------------------------------- */

static void *ret_main_sp;

static void returning_entry(void *arg) { (void)arg; }

/* Runs in the child: switch to a context whose entry returns. Never gets back here. */
static void child_run_returning_entry(int err_fd) {
  struct rlimit no_core = {0, 0};
  setrlimit(RLIMIT_CORE, &no_core); /* an expected abort, not a crash worth a core file */
  dup2(err_fd, 2);
  struct stack st;
  void *sp = ch_ctx_make(stack_new(&st), returning_entry);
  ch_ctx_jump(&ret_main_sp, sp, NULL);
  _exit(99); /* reached only if the trampoline resumed us, which it must not */
}

static void test_entry_return(void) {
  int pfd[2];
  if (pipe(pfd) != 0) {
    perror("pipe");
    exit(2);
  }
  fflush(NULL); /* do not let the child flush our buffered output a second time */
  pid_t pid = fork();
  if (pid < 0) {
    perror("fork");
    exit(2);
  }
  if (pid == 0) {
    close(pfd[0]);
    child_run_returning_entry(pfd[1]);
  }
  close(pfd[1]);
  char buf[1024];
  size_t len = 0;
  ssize_t n;
  while (len < sizeof buf - 1 && (n = read(pfd[0], buf + len, sizeof buf - 1 - len)) > 0) len += (size_t)n;
  buf[len] = '\0';
  close(pfd[0]);
  int status;
  CHECK(waitpid(pid, &status, 0) == pid);
  CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
  CHECK(strstr(buf, "entry function returned") != NULL);
  if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT)
    fprintf(stderr, "  child status 0x%x, stderr: %s\n", (unsigned)status, buf);
}

/* ---- main ----------------------------------------------------------------------------------------- */

static const struct {
  const char *name;
  void (*fn)(void);
} tests[] = {
    {"pingpong", test_pingpong},       {"callee_saved", test_callee_saved},
    {"stack_libc", test_stack_libc},   {"rounding", test_rounding},
    {"entry_return", test_entry_return},
};

/* Each test runs in a child process: a broken switch usually crashes rather than failing a CHECK, and
 * the crash should cost one test, not the summary line. The alarm catches a switch that loops. */
static bool run_test(const char *name, void (*fn)(void)) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    perror("fork");
    exit(2);
  }
  if (pid == 0) {
    alarm(TEST_TIMEOUT_S);
    test_failures = 0;
    fn();
    fflush(NULL);
    _exit(test_failures ? 1 : 0);
  }
  int status;
  if (waitpid(pid, &status, 0) != pid) {
    perror("waitpid");
    exit(2);
  }
  if (WIFSIGNALED(status))
    fprintf(stderr, "  %s: killed by signal %d (%s)\n", name, WTERMSIG(status), strsignal(WTERMSIG(status)));
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int main(void) {
  int passed = 0, failed = 0;
  for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
    bool ok = run_test(tests[i].name, tests[i].fn);
    printf("%s %s\n", ok ? "ok  " : "FAIL", tests[i].name);
    if (ok) passed++;
    else failed++;
  }
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
