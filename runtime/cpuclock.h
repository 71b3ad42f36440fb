/*
 * cpuclock.h — a coroutine-thread's own CPU-time clock (CLOCK_THREAD_CPUTIME_ID,
 * pthread_getcpuclockid, getrusage(RUSAGE_THREAD)): the kernel counts CPU time per OS thread, and an
 * OS thread runs many coroutine-threads, so the runtime splits it at the switches (cpuclock.c).
 *
 * Nothing is measured until the program first asks for a thread CPU clock: until then the switch
 * path pays one load of a global flag that is never set. Once set, each switch reads the OS thread's
 * CPU clock once (a system call: CPU clocks have no vDSO path) and closes the slice of the coroutine
 * switched away from and opens the one of the coroutine switched to.
 *
 * Included by internal.h (struct cohook_coro holds a struct ch_cpuclock), so it must not include it.
 */
#ifndef CH_CPUCLOCK_H
#define CH_CPUCLOCK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* One coroutine's CPU time. Written only by the OS thread that switches the coroutine in or out (and
 * by the coroutine itself when it turns accounting on); read by any thread under the sequence
 * counter. Invariants: seq is odd only while a writer updates the fields; in != 0 exactly while the
 * coroutine runs (on OS thread tid) and accounting covers its current slice. */
struct ch_cpuclock {
  _Atomic uint32_t seq;   /* seqlock: odd while ns/in/tid change */
  _Atomic int tid;        /* the OS thread running it, valid while in != 0 */
  _Atomic uint64_t ns;    /* CPU time of its finished slices */
  _Atomic uint64_t in;    /* the OS thread's CPU clock when its current slice began; 0: none */
  _Atomic uint32_t slot;  /* 1 + its entry in the clock-id table (cpuclock.c), 0 none, or
                             CH_CPUCLOCK_GONE once the thread has ended (then for good) */
};
#define CH_CPUCLOCK_GONE UINT32_MAX

/* Set (never cleared, except in a fork() child's fresh start) when the program first asks for a thread
 * CPU clock: from then on every switch measures. */
extern _Atomic int ch_cpuclock_on;

void ch_cpuclock_switch_slow(struct ch_cpuclock *from, struct ch_cpuclock *to, int tid);

/* On the switch path (sched.c): from (NULL when the coroutine switched away from has ended) stops
 * running, to starts on OS thread tid. A single relaxed load until accounting is on. */
static inline __attribute__((always_inline)) void ch_cpuclock_switch(struct ch_cpuclock *from,
                                                                    struct ch_cpuclock *to, int tid) {
  if (__builtin_expect(atomic_load_explicit(&ch_cpuclock_on, memory_order_relaxed), 0))
    ch_cpuclock_switch_slow(from, to, tid);
}

/* Clock ids for coroutine-threads. glibc makes a thread's CPU clock id from its tid as the kernel
 * defines them: (~tid << 3) | CPUCLOCK_PERTHREAD (4) | CPUCLOCK_SCHED (2). Ours put an entry of our
 * own table in the same place with the low three bits 7 — "per thread" with clock type 3, which the
 * kernel refuses (EINVAL; type 3 exists only without the per-thread bit, as an fd's dynamic clock) —
 * so an id of ours never names a real thread or fd, and a real thread's id still goes to the kernel. */
static inline bool ch_cpuclock_is_ours(clockid_t clk) { return clk < 0 && (clk & 7) == 7; }

struct cohook_coro;
/* The CPU time (ns) of the calling coroutine-thread; turns accounting on at the first call. */
uint64_t ch_cpuclock_self(struct cohook_coro *self);
/* A clock id naming co's CPU clock (pthread_getcpuclockid); turns accounting on. -ESRCH if co has
 * ended, -EAGAIN if the table is full. */
int ch_cpuclock_id(struct cohook_coro *co, clockid_t *out);
/* The CPU time (ns) behind one of our ids (ch_cpuclock_is_ours); -EINVAL if its thread has ended or
 * it names nothing. self: the calling coroutine-thread or NULL. */
int ch_cpuclock_get(clockid_t clk, struct cohook_coro *self, uint64_t *out_ns);
/* The coroutine-thread co is ending (on itself): its ids stop naming a clock. */
void ch_cpuclock_thread_exit(struct cohook_coro *co);
/* In a fork() child: only the forking coroutine-thread (self, or NULL) is left, and its CPU clock
 * starts again from zero, as a new process's thread's does. */
void ch_cpuclock_after_fork(struct cohook_coro *self);
struct rusage;
/* getrusage(RUSAGE_THREAD) for the calling coroutine-thread: 0 or -errno. */
int ch_cpuclock_rusage_thread(struct cohook_coro *self, struct rusage *ru);

#endif /* CH_CPUCLOCK_H */
