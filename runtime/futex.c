/*
 * futex.c — futex(2) through libc's syscall(): what MariaDB's InnoDB latches, libstdc++'s static-
 * initialisation guards and C++20 atomic waits use instead of pthread objects. A coroutine on a
 * worker that waits there would block its OS thread until the monitor hands its scheduler over
 * (handoff.c); the waits are common and short, so they are emulated instead: the coroutine parks in
 * the parking lot (parklot.c) on the futex word itself, and every wake-up through syscall() wakes
 * parked coroutines as well as the kernel's waiters.
 *
 * The semantics kept: FUTEX_WAIT sleeps only while the word holds the expected value (checked under
 * the parking lot's bucket lock, against which wakers serialise: no lost wake-up); it may return 0
 * without a wake (futex(2) allows spurious wake-ups, and every user loops on its own condition); it
 * answers EAGAIN when the word differs, ETIMEDOUT at its deadline, EINTR when a handler ran (for an
 * untimed wait, one without SA_RESTART: as the kernel restarts). A wake counts the coroutines it woke first, then asks the kernel for the rest.
 *
 * What is not emulated goes to the kernel: the priority-inheritance and requeue-PI operations,
 * bitset waits on a partial bitset, and any wait off a worker (the program's own threads wait in the
 * kernel, where a wake through syscall() reaches them as well). Operations that wake in ways the
 * parking lot cannot mirror exactly (requeue, wake-op) wake every coroutine parked on the words they
 * touch: a spurious wake-up, which futex users handle. A shared (non-private) futex may be woken by
 * another process, whose wake the parking lot never sees: such waits look at the word again every
 * CH_FUTEX_SHARED_SLICE_NS and return (a wake-up) once it changed. A raw `syscall` instruction that
 * does not go through libc (liburing, some runtimes) is not seen at all: the handoff covers those.
 */
#include <limits.h>
#include <linux/futex.h>

#include "internal.h"
#include "sys.h"

#define CH_FUTEX_SHARED_SLICE_NS 10000000ull

static bool ts_ok(const struct timespec *ts) { return ts->tv_sec >= 0 && ts->tv_nsec >= 0 && ts->tv_nsec < 1000000000; }

/* The deadline of a wait: relative (FUTEX_WAIT, CLOCK_MONOTONIC) or absolute (FUTEX_WAIT_BITSET, on
 * CLOCK_MONOTONIC or with FUTEX_CLOCK_REALTIME on CLOCK_REALTIME). -EINVAL for a bad timespec. */
static int wait_deadline(const struct timespec *ts, bool absolute, bool realtime, uint64_t *out) {
  if (!ts) {
    *out = CH_NO_DEADLINE;
    return 0;
  }
  if (!ts_ok(ts)) return -EINVAL;
  int64_t ns = (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
  if (absolute) {
    struct timespec now;
    ch_plat()->clock_gettime(realtime ? CLOCK_REALTIME : CLOCK_MONOTONIC, &now);
    ns -= (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
    if (ns < 0) ns = 0;
  }
  *out = ch_deadline_after(ns);
  return 0;
}

/* signal(7): a handler ends an untimed wait with EINTR only without SA_RESTART (the kernel restarts
 * it), a timed one always (it is restarted through restart_syscall only when no handler ran). */
static long futex_wait(uint32_t *uaddr, uint32_t val, uint64_t deadline, bool shared) {
  const _Atomic uint32_t *w = (const _Atomic uint32_t *)uaddr;
  int intr = deadline == CH_NO_DEADLINE ? CH_INTR_NORESTART : CH_INTR_ALWAYS;
  for (;;) {
    uint64_t until = deadline;
    if (shared && (deadline == CH_NO_DEADLINE || deadline - ch_now_ns() > CH_FUTEX_SHARED_SLICE_NS))
      until = ch_deadline_after(CH_FUTEX_SHARED_SLICE_NS);
    int r = ch_pl_wait(w, val, until, intr, CH_WAIT_FUTEX);
    if (r == 0) return 0;
    if (r == CH_E_CHANGED) return -EAGAIN;
    if (r == -EINTR) return -EINTR;
    if (r != -ETIMEDOUT) return r;
    if (until == deadline) return -ETIMEDOUT;
    if (atomic_load_explicit(w, memory_order_acquire) != val) return 0; /* another process's wake */
  }
}

/* Coroutines parked on uaddr first, then the kernel's waiters for what is left of n. */
static long futex_wake(uint32_t *uaddr, int op, int n) {
  if (n <= 0) return 0;
  int woken = ch_pl_has_waiters(uaddr) ? ch_pl_wake(uaddr, n) : 0;
  if (woken >= n) return woken;
  long k = ch_sys4(SYS_futex, uaddr, op, n - woken, NULL);
  return k < 0 ? (woken ? woken : k) : woken + k;
}

long ch_futex(uint32_t *uaddr, int op, uint32_t val, const struct timespec *ts, uint32_t *uaddr2, uint32_t val3) {
  int cmd = op & FUTEX_CMD_MASK;
  bool shared = !(op & FUTEX_PRIVATE_FLAG), realtime = op & FUTEX_CLOCK_REALTIME;
  switch (cmd) {
    case FUTEX_WAIT:
    case FUTEX_WAIT_BITSET: {
      if (cmd == FUTEX_WAIT_BITSET && val3 != FUTEX_BITSET_MATCH_ANY) return CH_E_PASS;
      if (realtime && cmd == FUTEX_WAIT) return CH_E_PASS; /* the kernel answers ENOSYS */
      if (!ch_on_worker()) return CH_E_PASS;
      if ((uintptr_t)uaddr & 3) return -EINVAL;
      uint64_t deadline;
      int r = wait_deadline(ts, cmd == FUTEX_WAIT_BITSET, realtime, &deadline);
      if (r < 0) return r;
      return futex_wait(uaddr, val, deadline, shared);
    }
    case FUTEX_WAKE:
      return futex_wake(uaddr, op, (int)val);
    case FUTEX_WAKE_BITSET:
      /* Parked coroutines wait on any bit: waking them is at worst spurious. */
      if (ch_pl_has_waiters(uaddr)) ch_pl_wake(uaddr, INT_MAX);
      return CH_E_PASS;
    case FUTEX_REQUEUE:
    case FUTEX_CMP_REQUEUE:
    case FUTEX_WAKE_OP: {
      long r = ch_sys6(SYS_futex, (long)uaddr, op, (long)val, (long)ts, (long)uaddr2, (long)val3);
      if (ch_pl_has_waiters(uaddr)) ch_pl_wake(uaddr, INT_MAX);
      if (ch_pl_has_waiters(uaddr2)) ch_pl_wake(uaddr2, INT_MAX);
      return r;
    }
    default:
      return CH_E_PASS;
  }
}
