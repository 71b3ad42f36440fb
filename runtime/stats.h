/*
 * stats.h — the runtime's counters: what COHOOK_STATS prints at exit (stats.c) and what the monitor's
 * stall reports and COHOOK_TRACE lines read (monitor.c).
 *
 * Cost rule: a counter on a hot path (a switch, a hooked call, a wait) is a plain increment of a field
 * of the scheduler that runs it, written only by that scheduler's own OS thread: no atomic, no fence,
 * no clock read, and the cache line is the scheduler's own. Other threads (the monitor, the exit
 * report) read those fields without locks: a snapshot that may be a moment old, which is all a trace
 * or a summary needs (aligned 64-bit loads and stores do not tear on x86-64 and aarch64). Rare events
 * (a coroutine-thread made, a stall, a handoff) go to the process-wide counters with relaxed atomics.
 *
 * This header is included by internal.h (struct ch_sched holds a struct ch_stats_sched) and so must
 * not include it; the helpers that need ch_tls_sched are macros, expanded where internal.h is whole.
 */
#ifndef CH_STATS_H
#define CH_STATS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Families of intercepted blocking calls, as the hooks count them (the files in hook/). accept counts as a read
 * and connect as a write: that is what they wait for, so a family's calls and waits line up. */
enum ch_fam {
  CH_FAM_READ = 0, /* read, readv, recv, recvfrom, recvmsg, accept, accept4 */
  CH_FAM_WRITE,    /* write, writev, send, sendto, sendmsg, connect */
  CH_FAM_POLL,     /* poll, ppoll, select, pselect, epoll_wait, epoll_pwait */
  CH_FAM_SLEEP,    /* nanosleep, clock_nanosleep (and sleep, usleep through them) */
  CH_FAM_SYNC,     /* mutex, condvar, rwlock, barrier, semaphore, spinlock waits */
  CH_FAM_JOIN,     /* pthread_join and its timed and try forms */
  CH_FAM_N
};

/* Per scheduler. [thread]: written only by the scheduler's own OS thread; [inbox_lock]: under the
 * scheduler's inbox_lock. Read racily by the monitor and at exit. */
struct ch_stats_sched {
  /* Odd while the scheduler's thread is inside the event loop's poll (loop.c, ch_loop_run): +1 on
   * the way in, +1 on the way out. The monitor tells "idle in its loop" (odd) from "running
   * something" (even), and "moved on" (changed) from "stuck" (unchanged), without a clock read.
   * (The run queue keeps its own counts next to it: ch_sched.runq_in and runq_out.) */
  uint64_t npoll;           /* [thread] */
  uint64_t calls[CH_FAM_N]; /* [thread] intercepted calls (the hooks) */
  uint64_t waits[CH_FAM_N]; /* [thread] of those, the ones that parked at least once (wait sites) */
  uint64_t timers_peak;     /* [thread] most deadlines armed at once (timer.c) */
  uint64_t fd_watchers;     /* [thread] fd slots its loop has made (loop.c): one per fd number waited on */
  uint64_t stack_peak;      /* [thread] deepest stack use seen (bytes from the top) of a stack given back */
};

/* Process-wide, rare events: relaxed atomics, any thread. */
struct ch_stats_global {
  _Atomic uint64_t calls[CH_FAM_N]; /* intercepted calls on threads without a scheduler (only while
                                       COHOOK_STATS is on: one relaxed add each) */
  _Atomic uint64_t threads_made;    /* coroutine-threads made (thread.c) */
  _Atomic uint64_t threads_peak;    /* most coroutine-threads alive at once */
  _Atomic uint64_t os_threads_made; /* OS threads the runtime started (workers, monitor, offload) */
  _Atomic uint64_t os_threads_peak; /* most tasks in the process, sampled by the monitor */
  _Atomic uint64_t handoffs;        /* schedulers handed to a spare OS thread (handoff.c) */
  _Atomic uint64_t spares_made;     /* OS threads started to take over a scheduler (handoff.c) */
  _Atomic uint64_t steals;          /* coroutines stolen by an idle scheduler (the handoff issue) */
  _Atomic uint64_t stalls;          /* stall episodes longer than COHOOK_HANDOFF_US (monitor.c) */
  _Atomic uint64_t stall_max_ns;    /* the longest run without a switch the monitor saw */
  /* Counters of schedulers that are gone (their OS thread exited): folded in at ch_stats_sched_del. */
  struct ch_stats_sched gone;       /* under the registry lock (stats.c) */
  uint64_t gone_switches;           /* under the registry lock */
};
extern struct ch_stats_global ch_stats;
extern bool ch_stats_on; /* COHOOK_STATS is set (config.c): the slow paths count too */

/* Count an intercepted call of family f (a hook, once it knows the call is the runtime's). No function
 * call: the hooks stay leaf functions that tail-call the runtime. A thread without a scheduler (one
 * that never had to wait yet) counts with a shared atomic, and only while COHOOK_STATS is on: an
 * atomic is not free when many such threads (COHOOK_THREADS=native) hit it. */
#define CH_STAT_CALL(f)                                                                   \
  do {                                                                                    \
    struct ch_sched *ch_s_ = ch_tls_sched;                                                \
    if (CH_LIKELY(ch_s_)) ch_s_->st.calls[(f)]++;                                         \
    else if (ch_stats_on) atomic_fetch_add_explicit(&ch_stats.calls[(f)], 1, memory_order_relaxed); \
  } while (0)
/* Count a wait (a park) of family f on scheduler s (the wait sites; s is the caller's own). */
#define CH_STAT_WAIT(s, f) ((s)->st.waits[(f)]++)

/* The registry of schedulers: every scheduler from its creation (sched.c, ch_sched_get) until its
 * OS thread exits (ch_sched_thread_exit), when its counters are folded into ch_stats.gone. The
 * monitor walks it; the exit report sums it. Never called on a hot path. */
struct ch_sched;
void ch_stats_sched_add(struct ch_sched *s);
void ch_stats_sched_del(struct ch_sched *s);
/* Copy up to max registered schedulers into out (under the registry lock); returns how many. */
size_t ch_stats_scheds(struct ch_sched **out, size_t max);
void ch_stats_thread_made(long alive); /* a coroutine-thread was made; alive counts it */
/* A stack goes back to the pool (stack.c): remember the deepest use seen, on scheduler s (may be NULL). */
#define CH_STAT_STACK(s, top, low)                                                        \
  do {                                                                                    \
    if ((s) && (low) < (top) && (uint64_t)((top) - (low)) > (s)->st.stack_peak)           \
      (s)->st.stack_peak = (uint64_t)((top) - (low));                                     \
  } while (0)
/* In a fork() child, before its scheduler is made again: the parent's schedulers and counts are not
 * this process's (the child reports its own, labelled as a child). */
void ch_stats_after_fork(void);
/* Nanoseconds since the process (or fork child) started, for the trace and the report. */
uint64_t ch_stats_uptime_ns(void);

#endif /* CH_STATS_H */
