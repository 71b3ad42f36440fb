/*
 * worker.c — the M:N worker pool: COHOOK_WORKERS OS threads, each one scheduler (one libev loop, one
 * run queue), on which the program's pthreads run as coroutines.
 *
 * Placement: a new coroutine goes to the worker with the fewest live coroutines, when it is created,
 * and stays there for its whole life (glibc caches TLS addresses: a coroutine that moved would read
 * another thread's errno). Workers block every asynchronous signal, so the kernel delivers those to
 * the program's own threads — the main thread, typically — exactly where the program expects them.
 *
 * The pool is started on first use, with glibc's pthread_create from the platform table (in
 * libhook.so the plain name is our own hook).
 */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>

#include "internal.h"
#include "emul.h"
#include "sys.h"

struct worker {
  struct ch_sched *_Atomic sched;
  pthread_t tid;
};

static struct worker *workers;
static _Atomic int nworkers; /* published once all are running */
static ch_lock_t start_lock;
static sigset_t program_mask; /* the mask of the thread that started the pool: the program's threads' */

static void *worker_main(void *arg) {
  struct worker *w = arg;
  char name[16] = "cohook-worker";
  ch_sys(SYS_prctl, PR_SET_NAME, name, 0);
  sigset_t set;
  sigfillset(&set); /* glibc leaves its own internal signals (SIGCANCEL, SIGSETXID) out of it */
  /* Keep the synchronous ones: a fault in a coroutine must still reach its handler here. */
  sigdelset(&set, SIGSEGV), sigdelset(&set, SIGBUS), sigdelset(&set, SIGILL);
  sigdelset(&set, SIGFPE), sigdelset(&set, SIGTRAP), sigdelset(&set, SIGSYS);
  if (ch_monitor_probe_signal()) sigdelset(&set, ch_monitor_probe_signal()); /* the monitor's backtraces */
  ch_sys4(SYS_rt_sigprocmask, SIG_BLOCK, &set, NULL, _NSIG / 8);
  struct ch_sched *s = ch_sched_get();
  if (!s) ch_die("cohook: a worker thread could not create its event loop (out of fds or memory?)");
  s->is_worker = true;
  atomic_store_explicit(&w->sched, s, memory_order_release);
  /* The worker's own stack only schedules: everything else is the coroutines placed here. The
   * scheduler may later move to another OS thread and this one become a spare (handoff.c). */
  ch_m_run_worker(s);
  return NULL;
}

static int start(void) {
  ch_lock(&start_lock);
  int n = atomic_load(&nworkers);
  if (n) {
    ch_unlock(&start_lock);
    return n;
  }
  int want = ch_config.workers;
  if (want <= 0) {
    cpu_set_t cpus;
    CPU_ZERO(&cpus);
    want = ch_sys(SYS_sched_getaffinity, 0, sizeof cpus, &cpus) > 0 ? CPU_COUNT(&cpus) : 1;
    if (want < 1) want = 1;
  }
  ch_sys4(SYS_rt_sigprocmask, SIG_BLOCK, NULL, &program_mask, _NSIG / 8);
  workers = ch_alloc((size_t)want * sizeof *workers);
  if (!workers) ch_die("cohook: out of memory starting %d workers", want);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  for (int i = 0; i < want; i++) {
    ch_tls_bypass++; /* glibc allocates the thread: see platform.h */
    int rc = ch_plat()->thread_create(&workers[i].tid, &attr, worker_main, &workers[i]);
    ch_tls_bypass--;
    if (rc != 0)
      ch_die("cohook: cannot start worker thread %d of %d (COHOOK_WORKERS); lower COHOOK_WORKERS", i + 1, want);
  }
  pthread_attr_destroy(&attr);
  /* The OS thread's yield, never the hooked sched_yield: that could run another coroutine here,
   * which could come back into start() and deadlock on start_lock. */
  for (int i = 0; i < want; i++)
    while (!atomic_load_explicit(&workers[i].sched, memory_order_acquire)) ch_sys0(SYS_sched_yield);
  atomic_store(&nworkers, want);
  ch_unlock(&start_lock);
  if (ch_handoff_enabled()) {
    ch_handoff_start();
    ch_monitor_start_handoff();
  }
  return want;
}

int ch_worker_count(void) { return atomic_load(&nworkers); }

const sigset_t *ch_worker_program_mask(void) { return &program_mask; }

struct ch_sched *ch_worker_sched(int i) {
  int n = atomic_load_explicit(&nworkers, memory_order_acquire);
  return i >= 0 && i < n ? atomic_load_explicit(&workers[i].sched, memory_order_acquire) : NULL;
}

struct ch_sched *ch_worker_pick(void) {
  int n = atomic_load_explicit(&nworkers, memory_order_acquire);
  if (CH_UNLIKELY(!n)) n = start();
  struct ch_sched *best = workers[0].sched;
  long best_load = atomic_load_explicit(&best->load, memory_order_relaxed);
  for (int i = 1; i < n; i++) {
    struct ch_sched *s = workers[i].sched;
    long l = atomic_load_explicit(&s->load, memory_order_relaxed);
    if (l < best_load) best = s, best_load = l;
  }
  return best;
}

void ch_worker_after_fork(bool on_worker) {
  /* The parent's workers (their schedulers and run queues) stay behind as unreachable memory: the
   * threads that ran them are gone. */
  workers = NULL;
  atomic_store(&nworkers, 0);
  atomic_store(&start_lock.state, 0);
  if (on_worker) ch_sys4(SYS_rt_sigprocmask, SIG_SETMASK, &program_mask, NULL, _NSIG / 8);
}
