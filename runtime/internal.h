/*
 * internal.h — what the runtime files share with each other (and with hook/), never with programs.
 *
 * Every non-static name here starts with ch_ and is hidden: the build uses -fvisibility=hidden and
 * only CH_EXPORT (the public cohook_* API and, in hook/, the intercepted libc names) is exported.
 */
#ifndef CH_INTERNAL_H
#define CH_INTERNAL_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "cohook.h"
#include "cpuclock.h"
#include "platform.h"
#include "stats.h"

#define CH_EXPORT __attribute__((visibility("default")))
#define CH_LIKELY(x) __builtin_expect(!!(x), 1)
#define CH_UNLIKELY(x) __builtin_expect(!!(x), 0)
/* Initial-exec TLS: libhook.so is loaded at start-up (LD_PRELOAD or DT_NEEDED), so its TLS sits in the
 * static block and every access is one %fs-relative load instead of a __tls_get_addr call. */
#define CH_TLS __thread __attribute__((tls_model("initial-exec")))

#define CH_NO_DEADLINE UINT64_MAX

/* Invariants are asserted in debug builds (COHOOK_ASSERT, on in Debug and sanitizer builds): one
 * line on stderr naming the file, line and condition, then abort. Free in release builds. */
#ifdef CH_DEBUG_ASSERT
void ch_assert_fail(const char *cond, const char *file, int line) __attribute__((noreturn));
#define CH_ASSERT(c) ((c) ? (void)0 : ch_assert_fail(#c, __FILE__, __LINE__))
#else
#define CH_ASSERT(c) ((void)0)
#endif

/* Internal results beyond the errno range (-4095..-1). They never reach the program: the hook layer
 * acts on them, and ch_ret() asserts that what it converts is a real errno. */
#define CH_E_NOSCHED (-5001) /* no scheduler can serve this wait here (none could be made, or the runtime
                                is re-entered from inside itself): do what the native call would do */
#define CH_E_CHANGED (-5002) /* parking lot: the word no longer held the expected value */
#define CH_E_PASS (-5003)    /* not ours to emulate: take the usual (libc) path */

/* ---- ctx_<arch>.S: the context switch ---------------------------------------------------------- */

/* Save the caller's callee-saved registers and FP control state on its stack, store that stack pointer
 * in *save_sp, resume the context whose saved stack pointer is to_sp, and hand it `arg`: ch_ctx_jump
 * returns `arg` in the resumed context, or a fresh context's entry function receives it. */
void *ch_ctx_jump(void **save_sp, void *to_sp, void *arg);
/* Lay out a fresh context at the top of a stack so that the first ch_ctx_jump to the returned stack
 * pointer calls entry(arg). entry must never return; if it does, ch_ctx_returned() aborts. */
void *ch_ctx_make(void *stack_top, void (*entry)(void *arg));
void ch_ctx_returned(void) __attribute__((noreturn));

/* ---- config.c ----------------------------------------------------------------------------------- */

struct ch_config {
  size_t stack_size;           /* COHOOK_STACK_SIZE, page-rounded usable bytes per coroutine stack
                                  (256 KiB unset: the cohook_* API's default; threads: see stack.c) */
  bool stack_size_set;         /* COHOOK_STACK_SIZE was given: it is the threads' default too */
  const char *stack_size_text; /* as the user wrote it, for messages (a description when unset) */
  int workers;                 /* COHOOK_WORKERS; 0 until resolved: CPUs this process may use */
  bool native_threads;         /* COHOOK_THREADS=native: pthreads stay OS threads */
  bool tls_worker;             /* COHOOK_TLS=worker: coroutine-threads share their worker's TLS */
  int stats;                   /* COHOOK_STATS: CH_STATS_OFF, _STDERR, or _FILE (stats_path) */
  const char *stats_path;      /* COHOOK_STATS=path, made absolute at start */
  int log;                     /* COHOOK_LOG: CH_LOG_OFF, CH_LOG_WARN (stall reports), CH_LOG_DEBUG */
  unsigned trace_ms;           /* COHOOK_TRACE: a scheduler trace line every trace_ms ms; 0 off */
  uint64_t handoff_ns;         /* COHOOK_HANDOFF_US (as ns): a coroutine that keeps its worker longer
                                  without a switch stalls it (monitor.c; the handoff issue's threshold) */
  long max_threads;            /* COHOOK_MAX_THREADS: cap on the OS threads running schedulers (handoff.c) */
  bool handoff_off;            /* COHOOK_HANDOFF=off: worker schedulers never change OS threads */
  bool steal_off;              /* COHOOK_STEAL=off: an idle worker never takes another's coroutines */
};
extern struct ch_config ch_config;
enum { CH_STATS_OFF = 0, CH_STATS_STDERR = 1, CH_STATS_FILE = 2 };
enum { CH_LOG_OFF = 0, CH_LOG_WARN = 1, CH_LOG_DEBUG = 2 };
void ch_config_load(void);
/* Parse a byte count with an optional K/M/G suffix; -EINVAL / -ERANGE. Exposed for unit tests. */
int ch_parse_size(const char *text, size_t *out);
void ch_die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* ---- mem.c: the runtime's own memory (never the program's allocator; see mem.c) ------------------ */

void *ch_alloc(size_t n); /* zeroed; NULL when out of memory */
void *ch_realloc(void *p, size_t n);
void ch_free(void *p);
size_t ch_alloc_size(const void *p);
/* p (not NULL) came from ch_alloc. Reads the 16 bytes before p: only for pointers that came from some
 * allocator (libev's blocks made before we gave it ours, see loop.c). */
bool ch_mem_owns(const void *p);
void ch_mem_after_fork(void);

/* ---- lock.h-style tiny futex lock (the runtime never calls pthread_mutex_*: issue 4 hooks them) --- */

typedef struct { _Atomic int state; } ch_lock_t;
void ch_lock(ch_lock_t *l);
void ch_unlock(ch_lock_t *l);
#ifdef CH_DEBUG_ASSERT
extern CH_TLS unsigned ch_tls_locks_held; /* ch_locks this thread (or coroutine) holds now */
#endif

/* ---- stack.c: coroutine stacks ------------------------------------------------------------------ */

struct ch_stack {
  char *lo;        /* lowest usable byte; the guard (or canary) page lies just below */
  size_t size;     /* usable bytes, page multiple */
  uint8_t guarded; /* guard page is PROT_NONE (else: canary words, checked on every switch away) */
  uint8_t slab;    /* a default size, carved from a slab and pooled with stacks of its size (else: own
                      mapping, unmapped on free) */
  unsigned vg_id;  /* valgrind stack id */
  uint32_t slab_idx;
  char *low_water; /* lowest frame address seen at a switch: how deep this stack has been used */
  void *tls_tp;    /* a coroutine-thread identity (ident.c) at the top of this stack, exited and
                      ready for reuse, or NULL; it travels with the stack through the pools */
};
struct ch_sched;
/* A stack of `size` usable bytes (page-rounded): pooled (a default size: from s's cache, the pool of
 * that size or a new slab) or mapped on its own (a size the program asked for). 0 or -EAGAIN. */
int ch_stack_get(struct ch_sched *s, size_t size, bool pooled, struct ch_stack *out);
/* The stack a coroutine-thread gets when it asks for none: COHOOK_STACK_SIZE if set, else glibc's
 * default thread stack size now (pthread_getattr_default_np), page-rounded. */
size_t ch_stack_thread_default(void);
void ch_stack_put(struct ch_sched *s, struct ch_stack *st);
void ch_stack_flush_cache(struct ch_sched *s);
bool ch_stack_canary_ok(const struct ch_stack *st);
void ch_stack_overflow_abort(const struct ch_stack *st, bool guarded) __attribute__((noreturn));
void ch_stack_thread_init(struct ch_sched *s);
void ch_stack_thread_fini(struct ch_sched *s);
void ch_stack_after_fork(void);
/* Test hooks: cap the number of guarded stacks, and read how many are in use. */
void ch_stack_set_guard_budget(long n);
long ch_stack_guarded_count(void);
/* Tests: whether guard pages may be page-table markers (MADV_GUARD_INSTALL) where the kernel has them. */
void ch_stack_use_guard_markers(bool on);
bool ch_stack_guard_markers_available(void); /* the kernel takes MADV_GUARD_INSTALL (and not valgrind) */

/* ---- sched.c: coroutines and the per-thread scheduler ------------------------------------------- */

/* The park protocol: co->park, one word per coroutine (after Go's netpoll.go pdReady/pdWait table).
 *
 *   state           who moves it                         to                 and then
 *   CH_RUNNING      the coroutine (ch_park_prepare)      CH_PARKED          publishes itself where wakers look
 *   CH_PARKED       a waker, CAS (ch_wake)               CH_WAKE_<reason>   the waker queues it: exactly once
 *   CH_PARKED       a signal kick (ch_coro_kill), or a   CH_WAKE_SIGNAL     the kicker queues it
 *                   cancellation request (ch_thread_cancel)
 *   CH_WAKE_SIGNAL  a waker, CAS (ch_wake)               CH_WAKE_<reason>   nobody queues it: it is queued
 *                                                                           or running already
 *   CH_WAKE_SIGNAL  the coroutine, after its handlers,   CH_PARKED          sleeps again, still registered:
 *                   CAS (ch_park)                                           a wake-up of its wait is not lost
 *   CH_WAKE_SIGNAL  the coroutine, when a cancellation   CH_WAKE_INTR       its wait ends; the hook acts on
 *                   request ends this wait, CAS (ch_park)                   the request (ch_cancel_test)
 *   CH_PARKED       the coroutine itself, entering a     CH_WAKE_INTR       nobody queues it: ch_park returns
 *                   wait a pending request ends, CAS                        at once
 *   CH_WAKE_<r>     the coroutine (ch_park returns)      CH_RUNNING         unregisters from what it waited on
 *
 * Invariants: a coroutine is queued at most once per claim (only the CAS out of CH_PARKED queues);
 * ch_park returns only with a real reason (never CH_WAKE_SIGNAL), so a wait's registrations (parking
 * lot entry, fd waiter, joiner pointer, timer) stay valid for as long as anyone may wake it; the
 * program's handlers run with ch_tls_bypass raised, so they never park in the middle of this. */
enum { CH_RUNNING = 0, CH_PARKED = 1, CH_WAKE_OK = 2, CH_WAKE_TIMEOUT = 3, CH_WAKE_CLOSED = 4, CH_WAKE_INTR = 5, CH_WAKE_SIGNAL = 6 };
enum { CH_JOINABLE = 0, CH_DETACHED = 1, CH_EXITED = 2, CH_JOINED = 3 };
/* Deferred cancellation (thread.c). A request sets PENDING and kicks the target as a signal does
 * (CH_WAKE_SIGNAL); a wait at a cancellation point (intr != CH_INTR_NONE, or cancel_wait) then ends
 * with CH_WAKE_INTR and the hook that made the call acts on it once the runtime has let go of
 * everything (ch_cancel_test): glibc's own pthread_exit unwinds the coroutine's stack. */
enum { CH_CANCEL_PENDING = 1u, CH_CANCEL_DISABLED = 2u, CH_CANCEL_ASYNC = 4u };
/* While parked in a hooked blocking call: which signal handlers interrupt it (EINTR). */
enum { CH_INTR_NONE = 0, CH_INTR_NORESTART = 1, CH_INTR_ALWAYS = 2 };
/* What a parked coroutine waits for: co->wait_kind, stored (plain stores, next to the park) by each
 * path that parks, for debuggers (tools/gdb/cohook-gdb.py reads it by name). Meaningful only while
 * co->park is not CH_RUNNING: nothing clears it when the wait ends. A wait's deadline needs no field:
 * it is the coroutine's timer in its scheduler's heap. */
enum ch_wait {
  CH_WAIT_NONE = 0, /* never parked */
  CH_WAIT_FD,       /* one fd (wait_obj: the fd): read, write, accept, connect, poll of one ... */
  CH_WAIT_FDS,      /* poll/select on several fds (wait_obj: the first) */
  CH_WAIT_SLEEP,    /* only a deadline: sleep, nanosleep, poll with no fds */
  CH_WAIT_JOIN,     /* pthread_join (wait_obj: the coroutine joined) */
  CH_WAIT_MUTEX,    /* the others: wait_obj is the program's object (parking-lot address) */
  CH_WAIT_COND,
  CH_WAIT_RWLOCK,
  CH_WAIT_BARRIER,
  CH_WAIT_SEM,
  CH_WAIT_ONCE,
  CH_WAIT_FILE,     /* a stdio stream's lock (flockfile) */
  CH_WAIT_OTHER,    /* a parking-lot wait of the runtime's own (offload) */
  CH_WAIT_FUTEX,    /* futex(2) through syscall() (futex.c; wait_obj: the futex word) */
};

/* A pending deadline, owned by a parked coroutine (lives on its stack). */
struct ch_timer {
  uint64_t deadline;
  size_t idx; /* position in the scheduler's heap; SIZE_MAX when not armed */
  struct cohook_coro *co;
};

#define CH_CORO_MAGIC 0x636f686f6f6b636full /* "cohookco": tells our pthread_t from glibc's */

struct ch_keyval {
  uint32_t seq;              /* the key's generation when the value was set */
  void *val;
};

/* Field ownership (who may touch it, as libev's ev.h tags its watcher fields):
 *   [sched]  the scheduler thread the coroutine belongs to (co->sched's thread), only;
 *   [self]   the coroutine itself, while running;
 *   [atomic] any thread, with atomics;
 *   [const]  written before the coroutine is published, read-only afterwards. */
struct cohook_coro {
  void *sp;                  /* [sched] saved stack pointer while not running */
  void *tp;                  /* [const] its thread pointer: its own TLS block (a coroutine-thread,
                                ident.c), or its OS thread's (a thread's main coroutine, API
                                coroutines, COHOOK_TLS=worker). Installed on every switch to it. */
  uint64_t magic;            /* [const] CH_CORO_MAGIC while the handle is valid (0 once released) */
  struct ch_sched *sched;    /* [sched] the scheduler it runs on. Changes only while it is queued and
                                `movable` (sched.c, work stealing: the giving scheduler's thread writes
                                it, and the inbox lock publishes it), and in a fork() child (its forking
                                coroutine moves to the child's new scheduler, once) */
  struct cohook_coro *next;  /* [sched] run queue link; inbox link under the target's inbox_lock */
  struct cohook_coro *coros_next, *coros_prev; /* [sched] its entry in co->sched's registry of
                                live coroutines (coros), from its first run to its end */
  _Atomic int park;          /* [atomic] CH_RUNNING, CH_PARKED, or the CH_WAKE_* that claimed the wake-up */
  int saved_errno;           /* [sched] errno is per OS thread in libc; we keep one per coroutine */
  _Atomic int join_state;    /* [atomic] CH_JOINABLE ... */
  _Atomic(struct cohook_coro *) joiner; /* [atomic] */
  cohook_fn fn;              /* [const] */
  void *arg;                 /* [const] */
  void *retval;              /* [self] until exit, then read by the joiner */
  struct ch_stack stack;     /* [sched] lo == NULL for a thread's main coroutine */
  void *asan_fake_stack;     /* [sched] */
  uint64_t id;               /* [const] */
  int intr;                  /* [self] CH_INTR_*: set by io.c around its waits; read by signallers */
  unsigned park_seq;         /* [self] counts parks, so a late signal cannot interrupt a later call */
  enum ch_wait wait_kind;    /* [self] what it parks on, stored before each park (for debuggers) */
  uintptr_t wait_obj;        /* [self] with wait_kind: the fd, or the object's address (see enum ch_wait) */
  struct ch_keyval *keys;    /* [self] pthread_key values of a coroutine thread (thread.c) */
  unsigned nkeys;            /* [self] */
  bool is_thread;            /* [const] made by pthread_create: pthread_self()/pthread_exit() are ours */
  _Atomic uint64_t pending_sigs; /* [atomic] pthread_kill'ed signals not yet handled (bit sig-1) */
  char name[16];             /* [self] pthread_setname_np (racy by nature, as glibc's) */
  _Atomic int refs;          /* [atomic] holders of the stack this block lives in (see ch_spawn_on) */
  _Atomic unsigned cancel;   /* [atomic] CH_CANCEL_* bits: pthread_cancel requests and the thread's state */
  bool own_tcb;              /* [const] runs on its own TLS block and TCB (ident.c): glibc can unwind it */
  bool cancel_wait;          /* [self] parked where cancellation acts though signals do not interrupt
                                (condvar, join); io waits, sleeps and semaphores go by `intr` */
  void *robust[8];           /* [self] robust glibc mutexes it holds (gsync.c), for owner-death */
  unsigned nrobust;          /* [self] */
  unsigned pins;             /* [self] glibc-kept mutexes it holds, whose owner glibc records by tid
                                (handoff.c: its scheduler is then never handed to another OS thread) */
  /* Its signal mask and signal waits (sigmask.c; signal n is bit n-1). */
  _Atomic uint64_t sigmask;      /* [atomic] blocked signals: written by itself, read by signallers */
  _Atomic uint64_t sigwait_set;  /* [atomic] blocked signals whose arrival ends its wait (sigwait, a
                                    signalfd read); 0 outside such a wait */
  _Atomic uint64_t pending_proc; /* [atomic] which pending_sigs were process-directed (their siginfo
                                    is sigmask.c's) */
  unsigned sig_handled;          /* [self] handlers run on it: sigsuspend waits for this to move */
  int sig_slot;                  /* [self] its entry in sigmask.c's table of masks in use */
  bool sig_waiting;              /* [self] in a wait a handler ends even if it ran as the wait
                                    began (sigsuspend, pause, sigwait, ppoll's mask ...) */
  struct ch_cpuclock cpu;    /* its CPU time, once the program asks for thread CPU clocks (cpuclock.h) */
  /* Work stealing (sched.c). `movable`: while it sits in a run queue, nothing it will do when it
   * resumes is tied to the scheduler it is queued on, so another scheduler may run it. Set by the
   * coroutine itself just before it queues or parks, only where that holds (a fresh coroutine-thread,
   * a yield, a parking-lot wait without deadline), cleared when it runs again. `relink`: it moved and
   * enters its new scheduler's registry at its next switch in (after_switch). */
  bool movable;              /* [sched] */
  bool relink;               /* [sched] */
};
typedef struct cohook_coro ch_coro;
/* Bytes a coroutine's control block takes at the top of its stack (sched.c, ch_spawn_on). */
#define CH_CORO_RESERVE ((sizeof(ch_coro) + 63) & ~(size_t)63)
/* A cancellation request that may act now (not disabled). */
static inline bool ch_cancel_wanted(ch_coro *co) {
  return (atomic_load_explicit(&co->cancel, memory_order_acquire) & (CH_CANCEL_PENDING | CH_CANCEL_DISABLED)) ==
         CH_CANCEL_PENDING;
}

#define CH_STACK_CACHE 64

/* Field ownership: [thread] only the OS thread that owns this scheduler (the one whose ch_tls_sched it
 * is); [inbox_lock] under that lock, from any thread; [atomic] any thread, with atomics; [handler]
 * written by a signal handler on the owning thread. */
struct ch_sched {
  ch_coro main;              /* [thread] the thread's own stack */
  ch_coro zombie;            /* [thread] "current" while a finished coroutine picks its successor */
  ch_coro *current;          /* [thread] */
  /* The OS thread running this scheduler (handoff.c), for a worker whose coroutines have their own
   * TLS; NULL otherwise (and while the monitor hands it over). */
  struct ch_m *_Atomic m;    /* [atomic] written by the owning M and the monitor (handoff protocol) */
  _Atomic long pinned;       /* [thread, read by the monitor] sum of its coroutines' pins */
  _Atomic uint64_t due;      /* [thread, read by the monitor] earliest timer deadline (timer.c) */
  /* Set by the monitor when the running coroutine has kept the scheduler for a while with other work
   * waiting; the next hooked I/O call it makes yields first (ch_io_fd), as Go's preemption flag is
   * checked at function entry. Cleared at every switch. */
  _Atomic int preempt;       /* [atomic] */
  /* 1 while this worker has nothing to run and asks the others for work (sched.c, work stealing);
   * a busy scheduler that claims it (CAS to 0) pushes movable coroutines into its inbox. */
  _Atomic int hungry;        /* [atomic] */
  ch_coro *os_coro;          /* [thread] the coroutine that stands for the OS thread itself, whose calls
                                a process-directed signal interrupts: &main, or in a fork() child the
                                coroutine-thread that forked (it keeps its identity: ch_sched_after_fork) */
  ch_coro *runq_head, *runq_tail; /* [thread] */
  /* Coroutines ever put on and taken off the run queue (inbox arrivals counted once drained): its
   * length is the difference (COHOOK_TRACE). Two counters, not one: a push and the pop right after it
   * then do not wait on each other's store. */
  size_t runq_in, runq_out;  /* [thread] */
  size_t runq_movable;       /* [thread] queued coroutines with `movable` set (work stealing, sched.c) */
  size_t give_after;         /* [thread] no giving before runq_out reaches this (sched.c, give_work) */
  /* The registry of live coroutines, for debuggers (tools/gdb/cohook-gdb.py): each scheduler lists
   * the coroutines that belong to it from their first run to their end (one not started yet is in
   * its run queue or inbox); every scheduler is on one list (sched.c, all_scheds). */
  ch_coro *coros;            /* [thread] */
  struct ch_sched *all_next; /* under sched.c's all_lock */
  size_t round_left;         /* [thread] hand-offs until the next look at I/O while the run queue is busy */
  struct ch_loop *loop;      /* [thread] loop.c (libev); ch_loop_notify alone is callable from any thread */
  /* timer min-heap of deadlines */
  struct ch_timer **heap;    /* [thread] */
  size_t heap_len, heap_cap; /* [thread] */
  /* cross-thread wake-ups: other threads push here, then poke the loop */
  ch_lock_t inbox_lock;
  ch_coro *inbox_head, *inbox_tail; /* [inbox_lock] */
  size_t inbox_len;                 /* [inbox_lock] its length (added to runq_in when drained) */
  size_t inbox_movable;             /* [inbox_lock] how many of them are movable (to runq_movable) */
  _Atomic int inbox_nonempty;       /* [atomic] a hint; the list under the lock is the truth */
  /* A coroutine back from a system call that cost it its OS thread runs next (sched.c,
   * ch_sched_requeue): set by the old OS thread, taken by the owner at its next pick. */
  _Atomic(ch_coro *) runnext;       /* [atomic] */
  /* a finished coroutine's stack, released by whoever runs next (a stack cannot free itself) */
  ch_coro *dead;             /* [thread] the coroutine whose stack we just left for good */
  bool has_dead;             /* [thread] */
  void *dead_sp_sink;        /* [thread] */
  struct ch_stack cache[CH_STACK_CACHE]; /* [thread] */
  int ncache;                /* [thread] */
  void *altstack;            /* [thread] */
  size_t altstack_size;      /* [thread] */
  const void *main_stack_lo; /* [thread] thread stack bounds, learned from ASan's fiber API */
  size_t main_stack_size;    /* [thread] */
  volatile unsigned sig_seq; /* [handler] interrupt main's park number sig_seq-1 */
  _Atomic long load;         /* [atomic] live coroutines placed here: workers are picked by it */
  bool is_worker;            /* [thread] written once before the worker is published */
  int tid;                   /* [thread] the kernel id of the OS thread running it (changes on handoff) */
  uint64_t nswitch;          /* [thread] read racily by the monitor (a stall: unchanged, not in poll) */
  struct ch_stats_sched st;  /* counters (stats.h says who writes which) */
};

extern CH_TLS struct ch_sched *ch_tls_sched;
/* A coroutine-thread's own TLS block says who it is (ident.c sets it): NULL on OS threads' own TLS,
 * where the scheduler's `current` says it. Never read `current` of a worker's scheduler from code
 * outside a runtime section (CH_RT_SECTION): after a handoff it is another OS thread's. */
extern CH_TLS ch_coro *ch_tls_self;
static inline ch_coro *ch_self(void) {
  ch_coro *c = ch_tls_self;
  if (c) return c;
  struct ch_sched *s = ch_tls_sched;
  return s ? s->current : NULL;
}
/* Non-zero while this thread is inside the runtime's own machinery (libev, a signal handler): hooked
 * functions called then are the runtime's or the handler's own and go straight to libc. */
extern CH_TLS int ch_tls_bypass;

struct ch_sched *ch_sched_get(void);     /* this thread's scheduler, created on first use */
static inline struct ch_sched *ch_sched_peek(void) { return ch_tls_sched; }
void ch_sched_destroy_current(void);
void ch_sched_thread_exit(void); /* this OS thread is exiting: release its scheduler */
/* Make sure this OS thread's runtime state (scheduler, key values) is released when it exits: once
 * per thread, through one glibc key (no allocation, see platform.h). */
void ch_os_thread_register(void);

int ch_spawn(ch_coro **out, cohook_fn fn, void *arg, size_t stack_size, bool detached);
/* Spawn onto another thread's scheduler (a worker). *out is written before the coroutine can run. */
int ch_spawn_on(struct ch_sched *target, ch_coro **out, cohook_fn fn, void *arg, size_t stack_size,
                bool detached, bool is_thread);
int ch_join(ch_coro *co, void **retval);
/* As ch_join with a deadline: -ETIMEDOUT, or -EBUSY with deadline 0 when co has not finished. */
int ch_join_until(ch_coro *co, void **retval, uint64_t deadline);
/* End the calling coroutine now with retval (pthread_exit). Never returns. */
void ch_coro_exit_now(void *retval) __attribute__((noreturn));
int ch_detach(ch_coro *co);
void ch_yield(void);

/* Parking: announce, publish yourself where a waker can find you, then park. Any number of wakers
 * may race (fd readiness, timer, another thread); the first ch_wake() claims the wake-up and its
 * reason is what ch_park() returns. */
static inline void ch_park_prepare(ch_coro *self) {
  atomic_store_explicit(&self->park, CH_PARKED, memory_order_relaxed);
}
int ch_park(struct ch_sched *s, uint64_t deadline);
/* Whether co, as far as its own state goes, may be run by another scheduler while queued (work
 * stealing: a coroutine-thread with its own TLS and no glibc-kept lock). A caller of ch_park whose
 * wait is not tied to its scheduler sets co->movable = ch_may_move(co) before parking. */
bool ch_may_move(const ch_coro *co);
bool ch_wake(ch_coro *co, int reason);
int ch_sleep_until(uint64_t deadline);

/* Timers (timer.c): a binary min-heap keyed by deadline, O(log n) insert and removal. */
void ch_timer_add(struct ch_sched *s, struct ch_timer *t);
void ch_timer_del(struct ch_sched *s, struct ch_timer *t);
uint64_t ch_timer_next(const struct ch_sched *s);
void ch_timer_fire_expired(struct ch_sched *s, uint64_t now);

/* Called by loop.c when the ev_async fires. */
void ch_sched_drain_inbox(struct ch_sched *s);

static inline uint64_t ch_now_ns(void) {
  struct timespec ts;
  /* vDSO: no syscall. libc's: in the preload clock_gettime is our own hook (hook/time.c). */
  ch_plat()->clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
static inline uint64_t ch_deadline_after(int64_t timeout_ns) {
  if (timeout_ns < 0) return CH_NO_DEADLINE;
  uint64_t now = ch_now_ns();
  return (uint64_t)timeout_ns > CH_NO_DEADLINE - now ? CH_NO_DEADLINE - 1 : now + (uint64_t)timeout_ns;
}

/* ---- handoff.c: schedulers handed between OS threads (Go's P and M) ------------------------------

 * A worker's scheduler is run by one OS thread at a time, an M. When the coroutine running on it has
 * not come back to the runtime for longer than COHOOK_HANDOFF_US (a system call the hooks do not
 * emulate, a long computation) while the scheduler has other work, the monitor hands the scheduler to
 * a spare M. The stuck coroutine keeps its OS thread; when it next enters the runtime it finds the
 * scheduler gone, queues itself on it and its OS thread becomes a spare.
 *
 * Ownership protocol (an asymmetric Dekker: the cheap side is the one on every runtime entry):
 *   runtime side (the coroutine, CH_RT_SECTION):  m->in_rt = 1; compiler fence; read s->m:
 *       == m: the scheduler is ours until in_rt goes back to 0;
 *       NULL: the monitor is deciding: wait until it is m again, or another M (lost);
 *       other: lost (ch_rt_lost).
 *   monitor side (ch_handoff_try):  CAS s->m: m -> NULL; membarrier(); read m->in_rt:
 *       1: give it back (s->m = m): the coroutine is inside, or just entering;
 *       0: the scheduler is the monitor's to hand over: s->m = the spare M.
 * membarrier() makes the monitor's store visible to, and orders it against, whatever the other CPU
 * does next: either the monitor sees in_rt = 1, or the coroutine sees s->m != m. Invariant: every
 * access to a worker scheduler's [thread] fields happens inside a runtime section of the M that owns
 * it (CH_ASSERT(ch_rt_owned(s)) where it matters). Sections nest (a depth in the coroutine's TLS);
 * a coroutine is always inside one when it switches, so whoever resumes comes back inside too. */
struct ch_m {
  ch_coro g0;                /* [self] this OS thread's own stack: resumed only when it loses its
                                scheduler (the coroutine that found out jumps here) */
  int tid;                   /* [const] */
  _Atomic int in_rt;         /* [atomic] 1 while what runs on this M is inside a runtime section */
  struct ch_sched *_Atomic give; /* [atomic] the scheduler the monitor hands it (spare -> running) */
  _Atomic uint32_t wake;     /* [atomic] futex word a spare M sleeps on */
  ch_coro *lost;             /* [self] set by the coroutine that jumps back to g0 */
  struct ch_m *next;         /* under handoff.c's lock: the spare list */
  void *altstack;            /* this thread's alternate signal stack (stack.c) */
  size_t altstack_size;
  const void *g0_stack_lo;   /* ASan: bounds of this thread's own stack */
  size_t g0_stack_size;
};
extern CH_TLS struct ch_m *ch_tls_m;       /* the M this coroutine (or OS thread) runs on; NULL: none */
extern CH_TLS unsigned ch_tls_rt_depth;    /* runtime-section nesting of this coroutine */
void ch_rt_lost(struct ch_m *m) __attribute__((noinline));
/* Enter a runtime section: from here until the matching leave, this coroutine's scheduler is its
 * OS thread's (waiting for, or giving up the OS thread, when the monitor handed it away). */
static inline void ch_rt_enter(void) {
  struct ch_m *m = ch_tls_m;
  if (!m) return;
  if (ch_tls_rt_depth++) return;
  atomic_store_explicit(&m->in_rt, 1, memory_order_relaxed);
  atomic_signal_fence(memory_order_seq_cst); /* the other half of the fence is the monitor's membarrier */
  if (CH_UNLIKELY(atomic_load_explicit(&ch_tls_sched->m, memory_order_acquire) != m)) ch_rt_lost(m);
}
static inline void ch_rt_leave(void) {
  struct ch_m *m = ch_tls_m; /* not the one at entry: the coroutine may have moved meanwhile */
  if (!m) return;
  CH_ASSERT(ch_tls_rt_depth > 0);
  if (--ch_tls_rt_depth == 0) atomic_store_explicit(&m->in_rt, 0, memory_order_release);
}
static inline void ch_rt_section_end(int *unused) { (void)unused, ch_rt_leave(); }
/* A runtime section for the rest of the enclosing block. */
#define CH_RT_SECTION() \
  __attribute__((cleanup(ch_rt_section_end), unused)) int ch_rt_section_ = (ch_rt_enter(), 0)
/* Whether this OS thread may touch s's [thread] fields now. */
static inline bool ch_rt_owned(struct ch_sched *s) {
  struct ch_m *m = ch_tls_m;
  return !m || (ch_tls_rt_depth > 0 && atomic_load_explicit(&s->m, memory_order_relaxed) == m);
}
/* The worker's OS thread: make it an M and run scheduler s on it; returns when, having lost s, it
 * retired as an idle spare (worker.c then lets the thread end). */
void ch_m_run_worker(struct ch_sched *s);
/* Whether worker schedulers may move between OS threads (coroutine-threads have their own TLS). */
bool ch_handoff_enabled(void);
/* The monitor: hand s to a spare M if its coroutine is stuck outside the runtime and it has other
 * work; true if it did. */
bool ch_handoff_try(struct ch_sched *s);
/* A hook about to make a system call that waits for a device (fsync ...): hand the caller's scheduler
 * to a spare OS thread first (Go's entersyscallblock). */
void ch_handoff_release(void);
/* The cheap half of ch_handoff_try's checks (no fence, no spare): whether s could be handed now. */
bool ch_handoff_worth(struct ch_sched *s);
void ch_handoff_after_fork(void);
int ch_handoff_threads(void);
void ch_handoff_early(void); /* at load (config.c): the fence's registration, while single-threaded */
void ch_handoff_start(void); /* the workers run: start the spawner, which makes the reserve spare */
int ch_handoff_spawner(void); /* 1 while this process has the spawner thread */ /* OS threads running or ready to run worker schedulers (workers, spares) */
/* sched.c, for handoff.c */
ch_coro *ch_sched_next_ready(struct ch_sched *s);
void ch_sched_requeue(ch_coro *co);           /* queue a running coroutine on its scheduler's inbox */
void ch_sched_resumed(struct ch_sched *s, ch_coro *self); /* after_switch, for a lost coroutine */
/* The glibc-kept mutexes a coroutine holds (gsync.c): +1 on lock, -1 on unlock. */
void ch_pin(int delta);
/* The program's allocator's own locks a coroutine holds or waits for (hook/sync.c): +1 before taking
 * one, -1 after releasing it (or failing to take it). Pins the scheduler as ch_pin does, inside a
 * runtime section, so that a monitor deciding a handoff sees it (handoff.c: "the spawner" says why). */
void ch_pin_alloc(int delta);

/* ---- fdtab.c: per-fd facts shared by the hooks and the loop --------------------------------------- */

enum { CH_FD_UNKNOWN = 0, CH_FD_SOCKET, CH_FD_PIPE, CH_FD_CHR, CH_FD_ANON, CH_FD_FILE, CH_FD_INTERNAL };

/* Ownership: any thread reads these lock-free on every hooked call; only fdtab.c writes them (the
 * hooks call its setters), so what "the program's view of this fd" means is decided in one file. */
struct ch_fdinfo {
  _Atomic uint8_t kind;          /* CH_FD_* */
  _Atomic uint8_t user_nonblock; /* the program's own O_NONBLOCK, as it would read it with F_GETFL */
  _Atomic uint8_t nowait_bad;    /* RWF_NOWAIT refused: wait for readiness, then make the call */
  _Atomic uint8_t toggle_lock;
  _Atomic uint8_t drained;       /* the last read came back short: the queue is most likely empty */
  _Atomic uint8_t stream;        /* SOCK_STREAM: MSG_WAITALL and partial sends continue */
  _Atomic uint8_t shared;        /* dup'd or inherited: its description (O_NONBLOCK, socket options)
                                    may be changed through another fd; re-read before each wait */
  _Atomic uint16_t toggles;      /* calls inside a transient O_NONBLOCK of ours (accept, connect) */
  _Atomic int fl;                /* file status flags as last seen / set (for F_SETFL restores) */
  _Atomic uint32_t gen;          /* bumped on create/close: see fdtab.c */
  _Atomic int64_t rcvtimeo_ns;   /* SO_RCVTIMEO, 0 = none */
  _Atomic int64_t sndtimeo_ns;   /* SO_SNDTIMEO, 0 = none */
};

struct ch_fdinfo *ch_fd_info(int fd); /* NULL for fds beyond the table: treat as not ours */
uint32_t ch_fd_gen(int fd);
/* The kind (classifying the fd with fstat on first use), or -errno if the fd is not open. */
int ch_fd_classify(int fd, struct ch_fdinfo *fi);
void ch_fd_created(int fd, int kind, bool nonblock, int flflags);
void ch_fd_set_stream(int fd, bool stream);
void ch_fd_accepted(int listen_fd, int fd, int flags);
/* Take the runtime's own fd (libev's epoll and eventfd, our timerfd) out of the program's way: move
 * it high, mark it internal (the program's close() cannot reach it). Returns the fd to use. */
int ch_fd_make_internal(int fd);
bool ch_fd_is_internal(int fd);
/* -1: the next ch_fd_make_internal on this thread stores its fd here (loop.c learns libev's epoll
 * fd so); -2: off. */
extern CH_TLS int ch_tls_fd_capture;
/* Re-read what another fd or process may have changed on a shared description: O_NONBLOCK and the
 * socket timeouts. */
void ch_fd_refresh(int fd, struct ch_fdinfo *fi);
void ch_fd_dup(int oldfd, int newfd);
void ch_fd_forget(int fd);
void ch_fd_nonblock_hold(int fd, struct ch_fdinfo *fi);
void ch_fd_nonblock_release(int fd, struct ch_fdinfo *fi);
/* The program changed the fd's file status flags (F_SETFL) or FIONBIO: record its view. */
void ch_fd_set_flags(int fd, int flags);
void ch_fd_set_nonblock(int fd, bool nonblock);
/* The program set SO_RCVTIMEO / SO_SNDTIMEO (ns, 0 = none). */
void ch_fd_set_timeo(int fd, bool rcv, int64_t ns);
/* F_GETFL as the program must see it: our transient O_NONBLOCK (accept/connect) taken out. */
int ch_fd_user_flags(int fd, int kernel_flags);

static inline void ch_cpu_relax(void) {
#if defined(__x86_64__)
  __asm__ volatile("pause");
#elif defined(__aarch64__)
  __asm__ volatile("yield");
#endif
}

/* ---- parklot.c: futex-like waiting for coroutines, keyed by address ------------------------------ */

/* Park while *addr == expected (checked under the bucket lock). 0 woken, CH_E_CHANGED value
 * differed, -ETIMEDOUT, -EINTR (intr as CH_INTR_*). Where no scheduler can serve the wait (none can
 * be made, the runtime is re-entered from inside itself, ch_tls_bypass), it waits natively with a
 * futex on addr, which ch_pl_wake also wakes: never recursion, never a spin. `kind` is what the waiter
 * shows a debugger (co->wait_kind; wait_obj = addr). */
int ch_pl_wait(const _Atomic uint32_t *addr, uint32_t expected, uint64_t deadline, int intr, enum ch_wait kind);
static inline int ch_pl_wait32(const _Atomic uint32_t *addr, uint32_t expected, uint64_t deadline, int intr) {
  return ch_pl_wait(addr, expected, deadline, intr, CH_WAIT_OTHER); /* the runtime's own waits */
}
int ch_pl_wake(const void *addr, int n); /* wake up to n waiters on addr; returns how many */
bool ch_pl_has_waiters(const void *addr);
void ch_pl_after_fork(void); /* fork() child: the parent's waiters are gone */

/* ---- worker.c: the M:N worker pool --------------------------------------------------------------- */

/* The least-loaded worker's scheduler, starting the pool on first use; NULL if it cannot start. */
struct ch_sched *ch_worker_pick(void);
int ch_worker_count(void);
struct ch_sched *ch_worker_sched(int i); /* worker i's scheduler once the pool runs, else NULL */
/* In a fork() child: the parent's workers do not exist here; the next pthread_create starts a new
 * pool. If the forking thread was a worker, it gets back the signal mask the program's threads had
 * (workers block every asynchronous signal; the child's only thread must not). */
void ch_worker_after_fork(bool on_worker);

/* ---- thread.c: pthreads as coroutines -------------------------------------------------------------- */

#define CH_MAIN_ID_BIT 0x80000000u /* ids of OS threads' own stacks: tid | bit; coroutines count up */
uint32_t ch_self_id(void);         /* owner id for mutexes: the running coroutine or OS thread */
ch_coro *ch_thread_self(void);     /* the running coroutine-thread, or NULL for an OS thread */
/* Cancellation and exit of coroutine-threads (thread.c). Threads without their own TCB (COHOOK_TLS=worker)
 * cannot be unwound: cancel answers -ENOTSUP and pthread_exit ends them without unwinding. */
int ch_thread_cancel(ch_coro *co);
int ch_cancel_set(int *state, int *type, int *oldstate, int *oldtype); /* -ENOTSUP: not ours */
void ch_cancel_test(void);                 /* a pending request acts here: does not return then */
void ch_thread_exit(void *ret) __attribute__((noreturn));
ch_coro *ch_thread_of(unsigned long handle); /* our coroutine behind a pthread_t, or NULL */
int ch_thread_create(ch_coro **out, cohook_fn fn, void *arg, size_t stack_size, bool detached);
int ch_key_create(unsigned *key, void (*dtor)(void *));
int ch_key_delete(unsigned key);
void *ch_key_get(unsigned key);
int ch_key_set(unsigned key, const void *val);
void ch_keys_thread_exit(void); /* run this OS thread's key destructors now */
void ch_thread_main_exiting(void); /* the main thread calls pthread_exit */
void ch_thread_after_fork(bool self_is_thread);
/* The calling thread's name (a coroutine-thread's own, else the OS thread's): what a new thread starts
 * with, natively. */
void ch_thread_inherit_name(char name[16]); /* the child has one thread: the forking one */
/* The end of a coroutine made by pthread_create: key destructors, robust mutexes (sched.c calls it). */
void ch_thread_on_exit(ch_coro *co);

/* ---- sync.c: blocking sync objects for coroutines (state in the program's object) ---------------- */

struct ch_mutex { /* the first 20 bytes of glibc's struct __pthread_mutex_s, same offsets */
  _Atomic uint32_t lock;
  uint32_t count;
  _Atomic uint32_t owner;
  uint32_t nusers;
  int kind;
};
struct ch_cond {
  _Atomic uint32_t seq;
  _Atomic uint32_t nwaiters;
};
struct ch_rwlock {
  _Atomic uint32_t state;
  _Atomic uint32_t writer;
  _Atomic uint32_t writers_waiting; /* glibc's __wrphase_futex slot: zero in a fresh object */
};
struct ch_barrier {
  uint32_t count;
  _Atomic uint32_t arrived;
  _Atomic uint32_t gen;
  uint32_t magic;
};
struct ch_sem {
  _Atomic uint32_t value;
  _Atomic uint32_t nwaiters;
  uint32_t magic;
};
int ch_mutex_lock(struct ch_mutex *m, uint64_t deadline, bool try);
int ch_mutex_unlock(struct ch_mutex *m);
uint32_t ch_cond_enter(struct ch_cond *c);
int ch_cond_block(struct ch_cond *c, uint32_t seq, uint64_t deadline);
void ch_cond_signal(struct ch_cond *c, bool all);
int ch_rwlock_rdlock(struct ch_rwlock *rw, uint64_t deadline, bool try, bool prefer_writer);
int ch_rwlock_wrlock(struct ch_rwlock *rw, uint64_t deadline, bool try);
int ch_rwlock_unlock(struct ch_rwlock *rw);
int ch_barrier_wait(struct ch_barrier *b);
int ch_sem_wait(struct ch_sem *sem, uint64_t deadline, bool try);
int ch_sem_post(struct ch_sem *sem);
int ch_once(_Atomic uint32_t *ctl, void (*fn)(void));

/* ---- ident.c: a coroutine-thread's own thread identity (TLS block + TCB, tls.c) ------------------- */

/* Whether coroutine-threads get their own TLS (COHOOK_TLS=coroutine and the probe says it works).
 * The first call must come from an OS thread on its own TLS (the first pthread_create does). */
bool ch_ident_enabled(void);
/* Give the stack of a coroutine-thread about to be placed on target its identity at the top
 * (*tp_out: its thread pointer); returns the stack top left below the block, or NULL when no block
 * can be made (-> EAGAIN). */
char *ch_ident_attach(struct ch_stack *st, struct ch_sched *target, void **tp_out);
size_t ch_ident_reserve(void); /* bytes a block takes at the top of a stack */
/* The block's ch_tls_self: the coroutine it belongs to (set once the control block is laid out). */
void ch_ident_set_self(void *tp, ch_coro *co);
/* co (queued, movable, not running) will run on scheduler `to`: its block's ch_tls_sched and TCB tid
 * say so, and its ch_tls_m is cleared so that its first switch in picks up to's OS thread. */
void ch_ident_move(ch_coro *co, struct ch_sched *to);
/* A stack about to serve a coroutine that is not a coroutine-thread, or to be unmapped: drop any
 * identity it carries. */
void ch_ident_drop(struct ch_stack *st);
/* The coroutine-thread is ending (its block installed): C++ thread_local destructors and glibc's
 * per-thread clean-up, as glibc's start_thread does before key destructors. */
void ch_ident_exit(ch_coro *co);

/* ---- gsync.c: the program's pthread objects, ours (sync.c) or glibc's, one entry each ------------ */
/* Results are pthread-style error numbers (0, EBUSY ...), except ch_psem_* (0 or -errno). The objects
 * glibc keeps (process-shared, robust, priority) are waited for without ever blocking a worker. */
int ch_pmutex_lock(pthread_mutex_t *m);
int ch_pmutex_trylock(pthread_mutex_t *m);
int ch_pmutex_clocklock(pthread_mutex_t *m, clockid_t clk, const struct timespec *abs);
int ch_pmutex_timedlock(pthread_mutex_t *m, const struct timespec *abs);
int ch_pmutex_unlock(pthread_mutex_t *m);
int ch_pmutex_busy(pthread_mutex_t *m); /* destroy: EBUSY while one of ours is locked */
int ch_pcond_wait(pthread_cond_t *cv, pthread_mutex_t *m);
int ch_pcond_clockwait(pthread_cond_t *cv, pthread_mutex_t *m, clockid_t clk, const struct timespec *abs);
int ch_pcond_timedwait(pthread_cond_t *cv, pthread_mutex_t *m, const struct timespec *abs);
int ch_pcond_signal(pthread_cond_t *cv, bool all);
int ch_pbarrier_wait_glibc(pthread_barrier_t *b);
long ch_psem_wait_glibc(sem_t *s);
void ch_robust_owner_died(ch_coro *co);
void ch_gsync_after_fork(void);
/* pthread_spin_lock: a spinlock held by a coroutine that parks would be spun on forever by another
 * coroutine of the same worker: spin a little, then yield. */
int ch_spin_lock(pthread_spinlock_t *l);
/* flockfile/funlockfile: with its own thread identity, a coroutine-thread that blocks inside a locked
 * region keeps the stream locked (as a thread would); another coroutine of the same worker that wants
 * the stream must then wait as a coroutine, not in glibc's futex wait, which would block the worker
 * the owner needs to run. */
void ch_flockfile(FILE *f);
void ch_funlockfile(FILE *f);
/* The caller is a coroutine on a worker (waits there must never block the OS thread). */
bool ch_on_worker(void);

/* ---- futex.c: futex(2) through libc's syscall() ------------------------------------------------ */
/* >= 0, -errno, or CH_E_PASS: let the kernel do it (not a coroutine on a worker, an operation not
 * emulated). */
long ch_futex(uint32_t *uaddr, int op, uint32_t val, const struct timespec *ts, uint32_t *uaddr2, uint32_t val3);

/* ---- offload.c --------------------------------------------------------------------------------------- */
void ch_offload(void (*fn)(void *), void *arg); /* fn(arg) on a helper thread; the coroutine parks */

/* ---- io.c: blocking calls emulated on coroutines (all return >= 0 or -errno) ----------------------- */

struct iovec;
struct msghdr;
struct sockaddr;
struct pollfd;
struct epoll_event;
typedef unsigned int ch_socklen_t;
/* The fd's info when the call is ours to emulate; NULL: call libc (bad fd, regular file, the
 * program's own O_NONBLOCK, or inside the runtime). */
struct ch_fdinfo *ch_io_fd(int fd);
long ch_io_read(int fd, struct ch_fdinfo *fi, void *buf, size_t n);
/* -EAGAIN: go the usual way; anything else is the read's own result. */
long ch_io_read_unclassified(int fd, const struct iovec *iov, int cnt);
long ch_io_readv(int fd, struct ch_fdinfo *fi, const struct iovec *iov, int cnt);
long ch_io_recvfrom(int fd, struct ch_fdinfo *fi, void *buf, size_t n, int flags, struct sockaddr *addr,
                    ch_socklen_t *alen);
long ch_io_recvmsg(int fd, struct ch_fdinfo *fi, struct msghdr *m, int flags);
long ch_io_write(int fd, struct ch_fdinfo *fi, const void *buf, size_t n);
long ch_io_writev(int fd, struct ch_fdinfo *fi, const struct iovec *iov, int cnt);
long ch_io_writev_flags(int fd, struct ch_fdinfo *fi, const struct iovec *iov, int cnt, int flags);
long ch_io_sendto(int fd, struct ch_fdinfo *fi, const void *buf, size_t n, int flags,
                  const struct sockaddr *addr, ch_socklen_t alen);
long ch_io_sendmsg(int fd, struct ch_fdinfo *fi, const struct msghdr *m, int flags);
long ch_io_accept(int fd, struct ch_fdinfo *fi, struct sockaddr *addr, ch_socklen_t *alen, int flags);
long ch_io_connect(int fd, struct ch_fdinfo *fi, const struct sockaddr *addr, ch_socklen_t alen);
/* deadline: 0 = just look, CH_NO_DEADLINE = no limit */
long ch_io_poll(struct pollfd *fds, unsigned long n, uint64_t deadline);
/* A read on fd found its receive queue empty (EAGAIN) outside the runtime (io.c, ch_io_poll). */
void ch_io_note_empty(int fd);
long ch_io_select(int nfds, void *rd, void *wr, void *ex, uint64_t deadline);
long ch_io_epoll_wait(int epfd, struct epoll_event *ev, int max, uint64_t deadline);
long ch_io_sleep_until(uint64_t deadline); /* 0, or -EINTR */

/* pthread_kill to a coroutine-thread: run the handler on it, interrupting its blocking call where
 * the kernel would interrupt a thread's. */
void ch_coro_kill(ch_coro *co, int sig, bool restart);
/* Called from a signal handler wrapper: a handler (with or without SA_RESTART) just ran. */
void ch_signal_arrived(bool restart);
/* In a fork() child: drop the parent's scheduler; the calling context becomes the main coroutine. */
void ch_sched_after_fork(void);

/* ---- loop.c: the only file that calls ev_* -------------------------------------------------------- */

struct ch_loop *ch_loop_new(struct ch_sched *s);
void ch_loop_free(struct ch_loop *l);
/* Poll I/O once: timeout_ns < 0 waits without limit, 0 does not block. Wakes fd waiters. */
void ch_loop_run(struct ch_sched *s, int64_t timeout_ns);
/* Any thread (the monitor): whether the loop's poll set has events it has not collected. Looks
 * without taking (level-triggered epoll). */
bool ch_loop_pending(struct ch_loop *l);
/* Thread-safe: make the loop's current or next blocking poll return. */
void ch_loop_notify(struct ch_loop *l);
/* Urgent data (POLLPRI, select's exception sets): a third event bit, the runtime's own (the public API
 * has COHOOK_READABLE and COHOOK_WRITABLE, which are POLLIN and POLLOUT; this is POLLPRI's value). */
#define CH_FD_URGENT 0x002
/* Park the current coroutine until fd is ready for events (COHOOK_READABLE/WRITABLE/CH_FD_URGENT) or
 * the deadline. Returns ready bits (> 0), -ETIMEDOUT, -EBADF (ch_fd_closed called meanwhile), or
 * CH_E_NOSCHED: here it cannot wait (an fd that cannot be watched for urgent data). */
int ch_fd_wait(int fd, int events, uint64_t deadline);
/* Wait until any of n fds is ready for its events (same bits), or the deadline. Returns > 0 when one
 * was reported ready (the caller asks the kernel which: poll/select semantics), -ETIMEDOUT, -EINTR,
 * CH_E_NOSCHED as above. */
int ch_fd_wait_any(const int *fds, const int *events, size_t n, uint64_t deadline);
/* fd is being closed by the program: wake its waiters on this thread with -EBADF, drop the watcher,
 * and bump the fd's generation. */
void ch_fd_closed(int fd);
/* This process's pid, as the runtime last saw it (load, fork child): a vfork child differs. */
extern int ch_process_pid;

/* offload.c: a detached OS thread of the runtime's own (glibc's pthread_create from the platform
 * table, ch_tls_bypass raised); 0 or the error number. */
int ch_os_thread_detached(void *(*fn)(void *), void *arg, size_t stack_size);

/* ---- monitor.c: the watcher thread (stall reports, trace, stats samples) ------------------------ */

/* Start the monitor if a knob needs it (COHOOK_LOG, COHOOK_TRACE, COHOOK_STATS) and it is not running
 * in this process yet; called when a scheduler is made. */
void ch_monitor_start(void);
void ch_monitor_after_fork(void);
/* The workers are running and may hand off (handoff.c): the monitor watches them from now on. */
void ch_monitor_start_handoff(void);
int ch_monitor_running(void); /* 1 if this process has a monitor */
/* COHOOK_LOG: install the SIGURG handler that takes a running worker's backtrace, if the program has
 * no SIGURG handler (config.c, at load). */
void ch_monitor_init_probe(void);
int ch_monitor_probe_signal(void); /* SIGURG if that handler is ours (workers leave it unblocked), else 0 */
int ch_os_threads(void);           /* the process's OS threads now (/proc/self/stat) */

/* ---- sigmask.c: signal masks, pending signals and signal waits of coroutine-threads ------------- */

/* Signal n is bit n-1 (n = 1..64), as in the first word of glibc's sigset_t. */
uint64_t ch_sig_from_set(const sigset_t *s);
void ch_sig_to_set(uint64_t m, sigset_t *s);
/* The hook layer, at load, on the main thread: its mask then. Later changes: ch_sig_main_mask. */
void ch_sig_init_main(uint64_t mask);
bool ch_sig_on_main(void); /* the caller runs on the program's main thread (its own TLS) */
void ch_sig_main_mask(uint64_t mask);
/* A coroutine-thread is made (ch_spawn_on: the creator's mask) / ends (ch_thread_on_exit). */
void ch_sig_thread_init(ch_coro *co);
void ch_sig_thread_exit(ch_coro *co);
/* After a thread was made: start or widen the runtime's dispatch of process-directed signals. */
void ch_sig_update(void);
void ch_sig_after_fork(void); /* the child: the forking coroutine-thread's mask becomes the kernel's */
/* Run co's deliverable pending signals' handlers (co running; sched.c's run_pending). */
void ch_sig_deliver(ch_coro *co);
/* pthread_sigmask for a coroutine-thread: 0 or -EINVAL. */
int ch_sig_procmask(ch_coro *co, int how, const sigset_t *set, sigset_t *old);
uint64_t ch_sig_mask_swap(ch_coro *co, uint64_t mask); /* raw: a handler's sa_mask */
void ch_sig_pending(ch_coro *co, sigset_t *out);
long ch_sig_timedwait(ch_coro *co, const sigset_t *set, siginfo_t *info, uint64_t deadline);
long ch_sig_signalfd_read(ch_coro *co, int fd, uint64_t set, bool nonblock, void *buf, size_t n);
long ch_sig_suspend(ch_coro *co, const sigset_t *mask); /* mask NULL: pause() */
/* ppoll/pselect/epoll_pwait's mask around the wait; false: a pending signal ran (-> EINTR). */
bool ch_sig_mask_enter(ch_coro *co, const sigset_t *mask, uint64_t *saved);
void ch_sig_mask_leave(ch_coro *co, uint64_t saved);
void ch_sig_default(int sig); /* sig's default action, taken on this OS thread */
/* run_handler upcall results */
enum { CH_SIG_RESTART = 1, CH_SIG_RAN = 2 };

#endif /* CH_INTERNAL_H */
