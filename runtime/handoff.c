/*
 * handoff.c — worker schedulers handed between OS threads: Go's P (a scheduler) and M (an OS thread),
 * with the monitor (monitor.c) in the role of Go's sysmon. The protocol is written where its state is
 * declared (internal.h, "handoff.c"); this file is its moving parts.
 *
 * An M runs one scheduler at a time on its own stack, its g0, which only schedules: it picks the first
 * coroutine to run and jumps to it; from then on coroutines switch straight to each other (sched.c)
 * and g0 stays suspended. g0 resumes only when a coroutine of this M finds, entering the runtime,
 * that the monitor has handed the scheduler to another M (ch_rt_lost). That coroutine jumps to g0,
 * which queues it on the scheduler's inbox — the new M runs it from there, under the TCB tid of its
 * own OS thread — and this M becomes a spare: it sleeps until the monitor hands it a scheduler, or
 * exits after CH_SPARE_IDLE_NS of idleness (all but CH_SPARE_KEEP of them).
 *
 * Why a coroutine may run on another OS thread at all: each coroutine-thread carries its own TLS
 * block and TCB (ident.c), so errno's address, C++ exception state and the rest travel with it. Where
 * they do not (COHOOK_TLS=worker), a scheduler stays on its OS thread for good, and a coroutine that
 * blocks its OS thread stalls the others there: ch_handoff_enabled() says which.
 *
 * What may not follow a coroutine to another kernel task is what the kernel or glibc ties to the
 * task's id: glibc-kept mutexes (process-shared, robust, priority) record their owner's tid and check
 * it on unlock. A scheduler whose coroutines hold any (s->pinned, counted by gsync.c) is never handed
 * over: its stall lasts, as it does natively for whoever waits on that lock.
 */
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>

#include "internal.h"
#include "sanitize.h"
#include "sys.h"
#include "tls.h"

#define CH_SPARE_IDLE_NS 1000000000ull /* a spare M with nothing to do this long exits ... */
#define CH_SPARE_KEEP 2                /* ... unless it is one of the last few */
#define CH_SPARE_RESERVE 1             /* idle spares the spawner keeps ready (<= CH_SPARE_KEEP) */
_Static_assert(CH_SPARE_RESERVE >= 1 && CH_SPARE_RESERVE <= CH_SPARE_KEEP, "retiring must not undo the reserve");
#define CH_M_STACK (256u * 1024u)      /* g0 only schedules and polls: the workers' own size */
#define CH_M_ALTSTACK (64u * 1024u)

CH_TLS struct ch_m *ch_tls_m;
CH_TLS unsigned ch_tls_rt_depth;

static ch_lock_t spare_lock;
static struct ch_m *spares; /* [spare_lock] idle Ms, newest first */
static int nspares;         /* [spare_lock] */
static _Atomic int ncoming; /* spares the spawner made that have not listed themselves yet */
static _Atomic int nms;     /* Ms alive: workers and spares (COHOOK_MAX_THREADS counts them) */
static _Atomic int barrier_state; /* 0 unknown, 1 private expedited membarrier registered, -1 none */

/* ---- the fence ---------------------------------------------------------------------------------- */

/* The heavy half of the asymmetric fence: every running thread of the process executes a full memory
 * barrier before this returns (an IPI to the CPUs running them; none for threads not running, whose
 * next context switch is one). Registered once per process; without it (kernels before 4.14, or
 * seccomp), no handoff. */
static bool fence_init(void) {
  int st = atomic_load_explicit(&barrier_state, memory_order_acquire);
  if (st) return st > 0;
  long r = ch_sys(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0);
  st = r == 0 ? 1 : -1;
  atomic_store_explicit(&barrier_state, st, memory_order_release);
  return st > 0;
}

/* Registration waits for an RCU grace period (milliseconds) unless the process has one thread: do it
 * at load, while that is still so, not when the first workers start. */
void ch_handoff_early(void) {
  if (!ch_config.handoff_off && !ch_config.native_threads && !ch_config.tls_worker) fence_init();
}

static void fence_heavy(void) { ch_sys(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0); }

int ch_handoff_threads(void) { return atomic_load_explicit(&nms, memory_order_relaxed); }

bool ch_handoff_enabled(void) { return !ch_config.handoff_off && ch_ident_enabled() && fence_init(); }

/* ---- an M ---------------------------------------------------------------------------------------------- */

static void futex_wait(_Atomic uint32_t *w, uint32_t val, uint64_t ns) {
  struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u), .tv_nsec = (long)(ns % 1000000000u)};
  ch_sys4(SYS_futex, w, FUTEX_WAIT_PRIVATE, val, &ts);
}

static void futex_wake(_Atomic uint32_t *w) { ch_sys4(SYS_futex, w, FUTEX_WAKE_PRIVATE, 1, NULL); }

static struct ch_m *m_new(void) {
  struct ch_m *m = ch_alloc(sizeof *m);
  if (!m) return NULL;
  atomic_init(&m->g0.park, CH_RUNNING);
  atomic_init(&m->g0.join_state, CH_DETACHED);
  return m;
}

/* Run s on this M until a coroutine of this M finds s handed away; returns after queueing that
 * coroutine back on s. */
static void m_schedule(struct ch_m *m, struct ch_sched *s) {
  ch_coro *g0 = &m->g0;
  ch_tls_sched = s;
  atomic_store_explicit(&m->in_rt, 1, memory_order_relaxed); /* (the monitor set it already if it gave s) */
  struct ch_m *owner = atomic_load_explicit(&s->m, memory_order_acquire);
  CH_ASSERT(owner == m || !owner); /* NULL: a worker's own scheduler, handoff disabled */
  ch_tls_m = owner == m ? m : NULL;
  ch_tls_rt_depth = 1;
  s->tid = m->tid;
  g0->sched = s;
  g0->tp = ch_tls_get_tp();
  g0->id = (uint32_t)m->tid | CH_MAIN_ID_BIT;
  s->current = g0;
  ch_coro *next = ch_sched_next_ready(s);
  CH_ASSERT(next != g0);
  s->current = next;
  s->nswitch++;
#ifdef CH_ASAN
  __sanitizer_start_switch_fiber(&g0->asan_fake_stack, next->stack.lo, next->stack.size);
#endif
  g0->saved_errno = errno;
  ch_cpuclock_switch(&g0->cpu, &next->cpu, m->tid);
  if (g0->tp != next->tp) ch_tls_set_tp(next->tp);
  ch_coro *lost = ch_ctx_jump(&g0->sp, next->sp, g0);
  /* Back on our own stack and thread pointer (ch_rt_lost installed it): s is another M's now. */
#ifdef CH_ASAN
  __sanitizer_finish_switch_fiber(g0->asan_fake_stack, &m->g0_stack_lo, &m->g0_stack_size);
#endif
  errno = g0->saved_errno;
  ch_tls_sched = NULL;
  ch_tls_m = NULL;
  ch_tls_rt_depth = 0;
  atomic_store_explicit(&m->in_rt, 0, memory_order_relaxed);
  ch_sched_requeue(lost);
}

/* A spare: wait to be handed a scheduler. NULL when it should exit instead (idle too long). */
static void spare_push(struct ch_m *m);
static struct ch_sched *m_wait(struct ch_m *m, bool fresh) {
  spare_push(m);
  if (fresh) atomic_fetch_sub_explicit(&ncoming, 1, memory_order_release); /* counted as listed now */
  uint64_t idle_until = ch_now_ns() + CH_SPARE_IDLE_NS;
  for (;;) {
    struct ch_sched *s = atomic_exchange_explicit(&m->give, NULL, memory_order_acq_rel);
    if (s) return s; /* the monitor took us off the list before it gave */
    uint64_t now = ch_now_ns();
    if (now >= idle_until) {
      ch_lock(&spare_lock);
      bool retire = false;
      if (nspares > CH_SPARE_KEEP && !atomic_load_explicit(&m->give, memory_order_acquire)) {
        for (struct ch_m **p = &spares; *p; p = &(*p)->next)
          if (*p == m) {
            *p = m->next, nspares--, retire = true;
            break;
          }
      }
      ch_unlock(&spare_lock);
      if (retire) return NULL;
      idle_until = now + CH_SPARE_IDLE_NS;
    }
    futex_wait(&m->wake, 0, idle_until - now);
    atomic_store_explicit(&m->wake, 0, memory_order_relaxed);
  }
}

static void m_loop(struct ch_m *m, struct ch_sched *s) {
  bool fresh = !s; /* a new spare from the spawner (ncoming counts it until it is listed) */
  for (;;) {
    if (!s) s = m_wait(m, fresh);
    if (!s) return;
    fresh = false;
    m_schedule(m, s);
    s = NULL;
  }
}

static void m_thread_setup(struct ch_m *m) {
  m->tid = ch_gettid();
  /* As a worker: every asynchronous signal blocked (worker.c says why); the monitor's probe signal,
   * if it has one, left open. */
  sigset_t set;
  sigfillset(&set);
  sigdelset(&set, SIGSEGV), sigdelset(&set, SIGBUS), sigdelset(&set, SIGILL);
  sigdelset(&set, SIGFPE), sigdelset(&set, SIGTRAP), sigdelset(&set, SIGSYS);
  if (ch_monitor_probe_signal()) sigdelset(&set, ch_monitor_probe_signal());
  ch_sys4(SYS_rt_sigprocmask, SIG_BLOCK, &set, NULL, _NSIG / 8);
  char name[16] = "cohook-worker";
  ch_sys(SYS_prctl, PR_SET_NAME, name, 0);
}

static void *spare_main(void *arg) {
  struct ch_m *m = arg;
  m_thread_setup(m);
  /* A stack overflow in a coroutine run here is reported on this alternate stack (stack.c). */
  void *alt = ch_mmap(NULL, CH_M_ALTSTACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (alt != MAP_FAILED) {
    stack_t ss = {.ss_sp = alt, .ss_size = CH_M_ALTSTACK, .ss_flags = 0};
    if (ch_sys(SYS_sigaltstack, &ss, NULL, 0) == 0) m->altstack = alt, m->altstack_size = CH_M_ALTSTACK;
    else ch_munmap(alt, CH_M_ALTSTACK);
  }
  m_loop(m, NULL);
  if (m->altstack) {
    stack_t ss = {.ss_sp = NULL, .ss_size = 0, .ss_flags = SS_DISABLE};
    ch_sys(SYS_sigaltstack, &ss, NULL, 0);
    ch_munmap(m->altstack, m->altstack_size);
  }
  atomic_fetch_sub_explicit(&nms, 1, memory_order_relaxed);
  ch_free(m);
  return NULL;
}

void ch_m_run_worker(struct ch_sched *s) {
  struct ch_m *m = m_new();
  if (!m) ch_die("cohook: out of memory starting a worker");
  m->tid = ch_gettid();
  atomic_fetch_add_explicit(&nms, 1, memory_order_relaxed);
  if (ch_handoff_enabled()) atomic_store_explicit(&s->m, m, memory_order_release);
  m_loop(m, s);
  /* It lost its scheduler and then idled as a spare long enough to retire: the thread ends. */
  atomic_fetch_sub_explicit(&nms, 1, memory_order_relaxed);
  ch_free(m);
}

/* ---- losing the scheduler ------------------------------------------------------------------------ */

/* Give up this OS thread: jump to its g0, which queues us on s; we come back on s's new M. */
static __attribute__((noinline)) void lose(struct ch_m *m, struct ch_sched *s, ch_coro *self) {
  self->saved_errno = errno;
  ch_cpuclock_switch(&self->cpu, &m->g0.cpu, m->tid); /* its slice on this OS thread ends here */
#ifdef CH_ASAN
  __sanitizer_start_switch_fiber(&self->asan_fake_stack, m->g0_stack_lo, m->g0_stack_size);
#endif
  /* From here to the jump, no TLS: the thread pointer is g0's. */
  ch_tls_set_tp(m->g0.tp);
  ch_ctx_jump(&self->sp, m->g0.sp, self);
  ch_sched_resumed(s, self);
}

void ch_rt_lost(struct ch_m *m) {
  /* A fork() child, before ch_sched_after_fork has run (glibc's atfork child handlers run first: an
   * allocator's unlock wakes futex waiters through syscall(), which enters a section): it is the
   * process's only thread, and its copy of the scheduler may show a handoff the parent was making.
   * Nothing can be lost here: no more sections until the child's runtime is made. */
  if (CH_UNLIKELY(ch_getpid() != ch_process_pid)) {
    ch_tls_m = NULL;
    ch_tls_rt_depth = 0;
    return;
  }
  struct ch_sched *s = ch_tls_sched;
  struct ch_m *o;
  /* NULL: the monitor is between its two steps; it decides within microseconds. */
  while (!(o = atomic_load_explicit(&s->m, memory_order_acquire))) ch_cpu_relax();
  if (o == m) return;
  ch_coro *self = ch_tls_self;
  CH_ASSERT(self && self->sched == s && self->own_tcb);
#ifdef CH_DEBUG_ASSERT
  /* A runtime lock held into a section that loses the OS thread would be held by a coroutine that
   * may not run again before someone spinning on that lock lets its scheduler go: enter first. */
  CH_ASSERT(ch_tls_locks_held == 0);
#endif
  lose(m, s, self);
  CH_ASSERT(atomic_load_explicit(&s->m, memory_order_relaxed) == ch_tls_m && ch_tls_rt_depth == 1);
}

/* ---- the monitor's side ----------------------------------------------------------------------------- */

/* Work the stuck coroutine keeps from running: runnable coroutines, arrivals, a due timer, or events
 * its loop has not collected (its epoll set, looked at without taking anything: level-triggered). */
static bool has_work(struct ch_sched *s, uint64_t now) {
  if (__atomic_load_n(&s->runq_in, __ATOMIC_RELAXED) != __atomic_load_n(&s->runq_out, __ATOMIC_RELAXED))
    return true;
  if (atomic_load_explicit(&s->inbox_nonempty, memory_order_relaxed)) return true;
  if (atomic_load_explicit(&s->due, memory_order_relaxed) <= now) return true;
  return ch_loop_pending(s->loop);
}

/* A spare M, from the pool or a new OS thread (which lists itself as a spare first): only the
 * monitor takes Ms off the list, so the one it took is reserved for it. NULL at the cap. */
static struct ch_m *spare_pop(void) {
  ch_lock(&spare_lock);
  struct ch_m *m = spares;
  if (m) spares = m->next, nspares--;
  ch_unlock(&spare_lock);
  return m;
}

static void spare_push(struct ch_m *m) {
  ch_lock(&spare_lock);
  m->next = spares;
  spares = m;
  nspares++;
  ch_unlock(&spare_lock);
}

/* Spare Ms are made by one thread of the runtime's own, the spawner, never by the monitor or a
 * coroutine: glibc's pthread_create allocates (the new thread's DTV) through the program's malloc,
 * and a malloc that takes a lock (jemalloc, a wrapper with its own mutex) may be held by someone the
 * monitor or that coroutine would then wait for. The monitor takes what is in the pool and never
 * waits; with none, it asks and tries again at its next sample.
 *
 * The reserve. Invariant: whenever the spawner is idle, nspares + ncoming >= CH_SPARE_RESERVE (up
 * to COHOOK_MAX_THREADS). Made when the workers start (ch_handoff_start); after every pop that
 * leaves fewer — a handoff, a release — a replacement is asked for at once (spare_get), so the pool
 * is refilled while the next stuck coroutine is still to come, not when it is there and a second
 * handoff finds none. Ms that lose their scheduler come back to the pool too; retiring ones never
 * take it below CH_SPARE_KEEP (>= the reserve).
 *
 * Why the spawner cannot deadlock on the allocator's lock, with a reserve of one. The cycle to
 * rule out: the spawner waits (inside pthread_create) for an allocator lock L; L's holder X waits
 * for its scheduler s to get an OS thread; s's OS thread is stuck and s needs a spare; there is
 * none, and only the spawner could make one. A bigger reserve only moves the bound: the program may
 * have more threads stuck at once than any reserve (each of them, natively, has its OS thread).
 * Making spares without malloc (a raw clone() on a stack of our own) does not remove it either: an
 * M needs a glibc thread control block (its g0 runs libev and glibc's system-call wrappers, which
 * use errno and the cancellation state through the thread pointer), and a TCB needs a DTV, which
 * ld.so's _dl_allocate_tls callocs — through the program's malloc, the same L. So the cycle is cut
 * at X instead: a coroutine that takes, holds or waits for a lock of the program's allocator pins
 * its scheduler to its OS thread (hook/sync.c, ch_pin_alloc; the monitor re-reads the pin after its
 * fence, ch_handoff_try) and waits for such a lock on the OS thread, never parked. Then L's holder
 * is always running on an OS thread of its own — it can be neither queued behind a handoff nor
 * parked — and needs nothing from us to reach its unlock: the spawner's wait for L ends as it would
 * natively. (Its scheduler's other coroutines wait meanwhile: allocator sections are short.) Locks
 * of the program's other than its allocator's are not taken inside pthread_create. */
static _Atomic uint32_t spawn_want; /* futex word: 1 when the reserve is to be looked at */

/* Below the reserve? (the spawner counts the spares it made that have not listed themselves yet) */
static bool reserve_short(void) {
  ch_lock(&spare_lock);
  int have = nspares;
  ch_unlock(&spare_lock);
  return have + atomic_load_explicit(&ncoming, memory_order_acquire) < CH_SPARE_RESERVE;
}

static void *spawner_main(void *arg) {
  (void)arg;
  sigset_t all;
  sigfillset(&all);
  ch_sys4(SYS_rt_sigprocmask, SIG_BLOCK, &all, NULL, _NSIG / 8);
  char name[16] = "cohook-spawner";
  ch_sys(SYS_prctl, PR_SET_NAME, name, 0);
  for (;;) {
    /* Taken before looking: an ask that comes while we make spares gets another look. */
    if (!atomic_exchange_explicit(&spawn_want, 0, memory_order_acq_rel)) {
      ch_sys4(SYS_futex, &spawn_want, FUTEX_WAIT_PRIVATE, 0, NULL);
      continue;
    }
    while (reserve_short() && atomic_load_explicit(&nms, memory_order_relaxed) < ch_config.max_threads) {
      struct ch_m *m = m_new();
      if (!m) break;
      atomic_fetch_add_explicit(&nms, 1, memory_order_relaxed);
      atomic_fetch_add_explicit(&ncoming, 1, memory_order_relaxed);
      if (ch_os_thread_detached(spare_main, m, CH_M_STACK) != 0) {
        atomic_fetch_sub_explicit(&ncoming, 1, memory_order_relaxed);
        atomic_fetch_sub_explicit(&nms, 1, memory_order_relaxed);
        ch_free(m);
        break; /* out of threads for now: the next ask tries again */
      }
      atomic_fetch_add_explicit(&ch_stats.spares_made, 1, memory_order_relaxed);
    }
  }
  return NULL;
}

static void spawn_ask(void) {
  /* A system call only for the first ask the spawner has not taken yet. */
  if (!atomic_exchange_explicit(&spawn_want, 1, memory_order_acq_rel))
    ch_sys4(SYS_futex, &spawn_want, FUTEX_WAKE_PRIVATE, 1, NULL);
}

static _Atomic int spawner_state; /* 0 none, 1 running */

int ch_handoff_spawner(void) { return atomic_load_explicit(&spawner_state, memory_order_relaxed); }

void ch_handoff_start(void) {
  int zero = 0;
  if (!atomic_compare_exchange_strong(&spawner_state, &zero, 1)) return;
  atomic_store_explicit(&spawn_want, 1, memory_order_release); /* the reserve */
  if (ch_os_thread_detached(spawner_main, NULL, CH_M_STACK) != 0) {
    atomic_store(&spawn_want, 0);
    atomic_store(&spawner_state, 0);
  }
}

/* An idle spare, or NULL. Never blocks. The spawner is asked at once to make up the reserve (the
 * invariant above): also when this pop succeeded, not only when the next one finds none. A pop
 * that is given back (spare_push, a handoff that did not happen) leaves one spare too many, for a
 * second. */
static struct ch_m *spare_get(void) {
  struct ch_m *m = spare_pop();
  if (reserve_short()) spawn_ask();
  return m;
}

static void give(struct ch_m *m, struct ch_sched *s) {
  atomic_store_explicit(&m->give, s, memory_order_release);
  atomic_store_explicit(&m->wake, 1, memory_order_release);
  futex_wake(&m->wake);
}

/* Go's entersyscallblock: the calling coroutine is about to make a system call that waits for a
 * device (fsync and its kin): its scheduler goes to a spare M now, rather than after the monitor has
 * seen it stuck for a millisecond or more. The coroutine keeps this OS thread for the call and rejoins
 * its scheduler at its next runtime section (ch_rt_lost), as after any handoff. An idle spare is
 * woken; with none, the call waits on the worker as it did before (and the spawner makes one). */
void ch_handoff_release(void) {
  struct ch_m *m = ch_tls_m;
  if (!m) return; /* not on a worker that can hand off */
  CH_RT_SECTION();
  struct ch_sched *s = ch_tls_sched;
  if (atomic_load_explicit(&s->pinned, memory_order_relaxed)) return;
  if (atomic_load_explicit(&s->load, memory_order_relaxed) <= 1) return; /* nobody else to run */
  struct ch_m *spare = spare_get(); /* an idle one, if any (never made here: see spare_get) */
  if (!spare) return;
  /* We own s (inside a section); the monitor may hold it at NULL for a moment, deciding: then it is
   * not ours to give, and the call waits as any other would. */
  atomic_store_explicit(&spare->in_rt, 1, memory_order_relaxed);
  struct ch_m *expect = m;
  if (!atomic_compare_exchange_strong_explicit(&s->m, &expect, spare, memory_order_acq_rel, memory_order_acquire)) {
    atomic_store_explicit(&spare->in_rt, 0, memory_order_relaxed);
    spare_push(spare);
    return;
  }
  give(spare, s);
  atomic_fetch_add_explicit(&ch_stats.handoffs, 1, memory_order_relaxed);
  /* From here on s is the spare's: nothing of it is touched again (the section's end is this M's). */
}

bool ch_handoff_worth(struct ch_sched *s) {
  struct ch_m *old = atomic_load_explicit(&s->m, memory_order_acquire);
  if (!old || atomic_load_explicit(&s->pinned, memory_order_relaxed)) return false;
  if (atomic_load_explicit(&old->in_rt, memory_order_relaxed)) return false; /* inside: not stuck there */
  return has_work(s, ch_now_ns());
}

bool ch_handoff_try(struct ch_sched *s) {
  if (!ch_handoff_worth(s)) return false;
  struct ch_m *old = atomic_load_explicit(&s->m, memory_order_acquire);
  if (!old) return false;
  struct ch_m *m = spare_get(); /* before taking s: once taken, s must get an M */
  if (!m) return false;         /* at the cap: the stall goes on */
  struct ch_m *expect = old;
  if (!atomic_compare_exchange_strong_explicit(&s->m, &expect, NULL, memory_order_acq_rel, memory_order_acquire)) {
    spare_push(m);
    return false;
  }
  fence_heavy();
  /* After the fence, the pin too (ch_pin_alloc pins inside a section: either that section is seen
   * through in_rt, or its pin is, or it has not begun and will find s taken). */
  if (atomic_load_explicit(&old->in_rt, memory_order_acquire) || atomic_load_explicit(&s->pinned, memory_order_relaxed)) {
    atomic_store_explicit(&s->m, old, memory_order_release); /* it came back in time: still old's */
    spare_push(m);
    return false;
  }
  /* s is ours to give; nothing of it is touched here. The new M counts as inside a section from
   * now on (its g0 schedules): until what it runs leaves one, nobody may take s from it — not even
   * before its thread has woken up to take s. Then it must see itself as the owner. */
  atomic_store_explicit(&m->in_rt, 1, memory_order_relaxed);
  atomic_store_explicit(&s->m, m, memory_order_release);
  give(m, s);
  atomic_fetch_add_explicit(&ch_stats.handoffs, 1, memory_order_relaxed);
  return true;
}

void ch_handoff_after_fork(void) {
  /* The parent's Ms are not in the child: the forking one (if it was an M) is a plain thread here
   * (ch_sched_after_fork makes it a new scheduler's main). */
  spares = NULL;
  nspares = 0;
  atomic_store(&ncoming, 0);
  atomic_store(&nms, 0);
  atomic_store(&spawn_want, 0);
  atomic_store(&spawner_state, 0); /* the parent's spawner is not in the child */
  atomic_store(&spare_lock.state, 0);
  ch_tls_m = NULL;
  ch_tls_rt_depth = 0;
}
