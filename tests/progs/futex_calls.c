/* futex_calls — futex(2) through libc's syscall(), as InnoDB's latches and libstdc++'s guards use it:
 * a value mismatch (EAGAIN), relative and absolute timeouts (ETIMEDOUT), a private ping-pong between
 * two threads while a third keeps ticking, a wake that counts, a shared futex in MAP_SHARED memory
 * woken by another process, and a handler's EINTR (without SA_RESTART) or restart (with it). */
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "progs_util.h"

static long fx(_Atomic uint32_t *w, int op, uint32_t val, const struct timespec *ts, uint32_t val3) {
  return syscall(SYS_futex, w, op, val, ts, NULL, val3);
}

static const char *outcome(long r) { return r == 0 ? "0" : errname(errno); }

/* ---- ping-pong --------------------------------------------------------------------------------- */
static _Atomic uint32_t turn; /* 0: ping's turn, 1: pong's */
enum { ROUNDS = 2000 };

static void *pong(void *arg) {
  (void)arg;
  for (int i = 0; i < ROUNDS; i++) {
    while (atomic_load(&turn) != 1) fx(&turn, FUTEX_WAIT_PRIVATE, 0, NULL, 0);
    atomic_store(&turn, 0);
    fx(&turn, FUTEX_WAKE_PRIVATE, 1, NULL, 0);
  }
  return NULL;
}

static _Atomic int ticking;
static _Atomic int ticks;
static void *ticker(void *arg) {
  (void)arg;
  while (atomic_load(&ticking)) {
    msleep(2);
    ticks++;
  }
  return NULL;
}

/* ---- wake counts ------------------------------------------------------------------------------- */
static _Atomic uint32_t gate;
static _Atomic int parked, released;
static void *gate_waiter(void *arg) {
  (void)arg;
  parked++;
  while (atomic_load(&gate) == 0) fx(&gate, FUTEX_WAIT_PRIVATE, 0, NULL, 0);
  released++;
  return NULL;
}

/* ---- signals ----------------------------------------------------------------------------------- */
static _Atomic uint32_t sigword;
static bool sig_timed;
static void *sig_waiter(void *arg) {
  long *out = arg;
  struct timespec ts = {2, 0};
  long r;
  /* As a latch would: wait again after a spurious return, until the word says go (or an error). */
  do r = fx(&sigword, FUTEX_WAIT_PRIVATE, 0, sig_timed ? &ts : NULL, 0);
  while (r == 0 && atomic_load(&sigword) == 0);
  *out = r == 0 ? 0 : errno;
  return NULL;
}

/* signal(7): a handler ends a FUTEX_WAIT with EINTR unless it has SA_RESTART and the wait has no
 * timeout (then the kernel restarts it); with a timeout, EINTR either way. */
static void signal_case(bool restart, bool timed) {
  sig_timed = timed;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = usr1_count;
  sa.sa_flags = restart ? SA_RESTART : 0;
  sigaction(SIGUSR1, &sa, NULL);
  atomic_store(&sigword, 0);
  usr1_handled = 0;
  long out = -1;
  pthread_t t, k;
  CHECK(pthread_create(&t, NULL, sig_waiter, &out) == 0);
  struct kick kk = {.who = t};
  CHECK(pthread_create(&k, NULL, kick_after_60ms, &kk) == 0);
  pthread_join(k, NULL);
  msleep(100);
  atomic_store(&sigword, 1); /* the restarted wait (SA_RESTART) ends with this wake */
  fx(&sigword, FUTEX_WAKE_PRIVATE, 1, NULL, 0);
  pthread_join(t, NULL);
  printf("signal %s, %s: handler ran %d, wait ended with %s\n", restart ? "with SA_RESTART" : "without SA_RESTART",
         timed ? "timed wait" : "untimed wait", usr1_handled, out == 0 ? "0 (woken)" : errname((int)out));
}

int main(void) {
  _Atomic uint32_t w = 5;
  /* The word differs: EAGAIN at once. */
  printf("mismatch: %s\n", outcome(fx(&w, FUTEX_WAIT_PRIVATE, 6, NULL, 0)));
  /* Relative timeout on CLOCK_MONOTONIC. */
  struct timespec rel = {0, 50 * 1000000L};
  double t0 = now_s();
  long r = fx(&w, FUTEX_WAIT_PRIVATE, 5, &rel, 0);
  double d = now_s() - t0;
  printf("relative timeout: %s after >= 45 ms: %s\n", outcome(r), d >= 0.045 ? "yes" : "no");
  /* Absolute timeout (bitset wait). */
  struct timespec abs;
  clock_gettime(CLOCK_MONOTONIC, &abs);
  abs.tv_nsec += 50 * 1000000L;
  if (abs.tv_nsec >= 1000000000L) abs.tv_sec++, abs.tv_nsec -= 1000000000L;
  t0 = now_s();
  r = fx(&w, FUTEX_WAIT_BITSET_PRIVATE, 5, &abs, FUTEX_BITSET_MATCH_ANY);
  d = now_s() - t0;
  printf("absolute timeout: %s after >= 45 ms: %s\n", outcome(r), d >= 0.045 ? "yes" : "no");
  struct timespec bad = {0, 2000000000L};
  printf("bad timeout: %s\n", outcome(fx(&w, FUTEX_WAIT_PRIVATE, 5, &bad, 0)));

  /* Ping-pong while a ticker on the same workers keeps going. */
  atomic_store(&ticking, 1);
  pthread_t tk, pg;
  CHECK(pthread_create(&tk, NULL, ticker, NULL) == 0);
  CHECK(pthread_create(&pg, NULL, pong, NULL) == 0);
  t0 = now_s();
  for (int i = 0; i < ROUNDS; i++) {
    atomic_store(&turn, 1);
    fx(&turn, FUTEX_WAKE_PRIVATE, 1, NULL, 0);
    while (atomic_load(&turn) != 0) fx(&turn, FUTEX_WAIT_PRIVATE, 1, NULL, 0);
  }
  d = now_s() - t0;
  pthread_join(pg, NULL);
  msleep(30);
  atomic_store(&ticking, 0);
  pthread_join(tk, NULL);
  printf("ping-pong: %d rounds in under 10 s: %s; ticker ticked: %s\n", ROUNDS, d < 10 ? "yes" : "no",
         ticks > 5 ? "yes" : "no");

  /* Three waiters behind a gate; open it and wake them all. */
  pthread_t g[3];
  for (int i = 0; i < 3; i++) CHECK(pthread_create(&g[i], NULL, gate_waiter, NULL) == 0);
  while (parked < 3) msleep(1);
  msleep(50);
  atomic_store(&gate, 1);
  long woke = fx(&gate, FUTEX_WAKE_PRIVATE, 10, NULL, 0);
  for (int i = 0; i < 3; i++) pthread_join(g[i], NULL);
  printf("gate: wake answered %s, released %d\n", woke >= 1 && woke <= 3 ? "1..3" : "other", released);

  /* A shared futex in MAP_SHARED memory, woken by a child process. */
  _Atomic uint32_t *sh = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  CHECK(sh != MAP_FAILED);
  atomic_store(sh, 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    msleep(100);
    atomic_store(sh, 1);
    syscall(SYS_futex, sh, FUTEX_WAKE, 1, NULL, NULL, 0);
    _exit(0);
  }
  t0 = now_s();
  while (atomic_load(sh) == 0) fx(sh, FUTEX_WAIT, 0, NULL, 0);
  d = now_s() - t0;
  int st;
  waitpid(pid, &st, 0);
  printf("shared futex woken by another process within 2 s: %s\n", d < 2 ? "yes" : "no");

  signal_case(false, false);
  signal_case(true, false);
  signal_case(false, true);
  signal_case(true, true);
  return 0;
}
