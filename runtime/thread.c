/*
 * thread.c — what a pthread is when it is a coroutine: its identity, its pthread_key values, its end.
 *
 * Keys: the runtime has its own key space (PTHREAD_KEYS_MAX of them); a value lives with the
 * coroutine-thread that set it, or, for the program's own OS threads, in a per-thread array. Each key
 * has a generation, bumped by delete, so a value set under a deleted key never shows through a new
 * key with the same number.
 */
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "internal.h"
#include "sys.h"

#define CH_KEYS_MAX 1024
#define CH_DESTRUCTOR_ITERATIONS 4 /* PTHREAD_DESTRUCTOR_ITERATIONS */

static struct {
  _Atomic uint32_t seq; /* odd: in use */
  void (*_Atomic dtor)(void *);
} keys[CH_KEYS_MAX];

static _Atomic long live_threads; /* coroutine-threads not yet ended */
static _Atomic int main_gone;      /* the main thread called pthread_exit */

static CH_TLS struct ch_keyval *tls_keys;
static CH_TLS unsigned tls_nkeys;
static CH_TLS uint32_t tls_self_id;
/* This OS thread's key destructors have run (it is exiting): a destructor that sets a value again
 * gets no further rounds than POSIX's PTHREAD_DESTRUCTOR_ITERATIONS. jemalloc's destructor re-sets
 * its key to be called again, counting on that bound; re-arming our clean-up for it would loop. */
static CH_TLS bool tls_keys_done;

static CH_TLS bool tls_registered;  /* this OS thread's clean-up key is set */
static pthread_key_t os_key;        /* glibc's key whose destructor is os_thread_exit */
static _Atomic int os_key_state;    /* 0 none, 1 being made, 2 made, -1 none can be made */

uint32_t ch_self_id(void) {
  ch_coro *self = ch_self();
  if (self) return (uint32_t)self->id;
  if (CH_UNLIKELY(!tls_self_id)) tls_self_id = (uint32_t)ch_gettid() | CH_MAIN_ID_BIT;
  return tls_self_id;
}

ch_coro *ch_thread_self(void) {
  ch_coro *self = ch_self();
  return self && self->is_thread ? self : NULL;
}

/* ---- exit and deferred cancellation --------------------------------------------------------------
 *
 * A coroutine-thread with its own TCB exits the way a glibc thread does: glibc's pthread_exit runs
 * on it, sets its TCB's "exiting" bit and unwinds its stack with the forced unwinder, running
 * pthread_cleanup_push handlers and C++ destructors, until it reaches the buffer coro_entry
 * registered (sched.c, run_thread_fn). Cancellation is deferred only: a request is noted, kicks the
 * target out of a wait at a cancellation point, and acts in the hook of that call once the call has
 * let go of everything it held (ch_cancel_test). Asynchronous cancellation is taken as deferred:
 * acting at an arbitrary instruction would unwind through the runtime's own critical sections. */

void ch_thread_exit(void *ret) {
  ch_coro *co = ch_thread_self();
  CH_ASSERT(co && co->own_tcb);
  co->retval = ret;
  /* No second request may act while the stack unwinds: cleanup handlers may block. */
  atomic_fetch_or_explicit(&co->cancel, CH_CANCEL_DISABLED, memory_order_acq_rel);
  ch_plat()->thread_exit(ret);
  __builtin_unreachable(); /* glibc's pthread_exit does not return */
}

int ch_thread_cancel(ch_coro *co) {
  if (!co->own_tcb) return -ENOTSUP;
  atomic_fetch_or_explicit(&co->cancel, CH_CANCEL_PENDING, memory_order_acq_rel);
  /* As a signal kick: a wait at a cancellation point ends (ch_park), any other goes on. */
  ch_wake(co, CH_WAKE_SIGNAL);
  return 0;
}

void ch_cancel_test(void) {
  ch_coro *co = ch_thread_self();
  if (co && CH_UNLIKELY(ch_cancel_wanted(co)) && co->own_tcb && !ch_tls_bypass) ch_thread_exit(PTHREAD_CANCELED);
}

int ch_cancel_set(int *state, int *type, int *oldstate, int *oldtype) {
  ch_coro *co = ch_thread_self();
  if (!co || !co->own_tcb) return -ENOTSUP;
  unsigned bit = state ? CH_CANCEL_DISABLED : CH_CANCEL_ASYNC;
  int val = state ? *state : *type;
  if (state && val != PTHREAD_CANCEL_ENABLE && val != PTHREAD_CANCEL_DISABLE) return -EINVAL;
  if (type && val != PTHREAD_CANCEL_DEFERRED && val != PTHREAD_CANCEL_ASYNCHRONOUS) return -EINVAL;
  bool set = state ? val == PTHREAD_CANCEL_DISABLE : val == PTHREAD_CANCEL_ASYNCHRONOUS;
  unsigned old = set ? atomic_fetch_or_explicit(&co->cancel, bit, memory_order_acq_rel)
                     : atomic_fetch_and_explicit(&co->cancel, ~bit, memory_order_acq_rel);
  if (oldstate) *oldstate = old & CH_CANCEL_DISABLED ? PTHREAD_CANCEL_DISABLE : PTHREAD_CANCEL_ENABLE;
  if (oldtype) *oldtype = old & CH_CANCEL_ASYNC ? PTHREAD_CANCEL_ASYNCHRONOUS : PTHREAD_CANCEL_DEFERRED;
  return 0;
}

int ch_thread_create(ch_coro **out, cohook_fn fn, void *arg, size_t stack_size, bool detached) {
  struct ch_sched *w = ch_worker_pick();
  if (!w) return -EAGAIN;
  long alive = atomic_fetch_add(&live_threads, 1) + 1;
  int r = ch_spawn_on(w, out, fn, arg, stack_size, detached, true);
  if (r < 0) atomic_fetch_sub(&live_threads, 1);
  else ch_stats_thread_made(alive);
  return r;
}

ch_coro *ch_thread_of(unsigned long handle) {
  ch_coro *co = (ch_coro *)handle;
  /* A glibc pthread_t points at its (large) struct pthread, so reading this far is safe either way. */
  return co && co->magic == CH_CORO_MAGIC ? co : NULL;
}

int ch_key_create(unsigned *key, void (*dtor)(void *)) {
  for (unsigned i = 0; i < CH_KEYS_MAX; i++) {
    uint32_t seq = atomic_load(&keys[i].seq);
    if (!(seq & 1) && atomic_compare_exchange_strong(&keys[i].seq, &seq, seq + 1)) {
      atomic_store(&keys[i].dtor, dtor);
      *key = i;
      return 0;
    }
  }
  return -EAGAIN;
}

int ch_key_delete(unsigned key) {
  if (key >= CH_KEYS_MAX) return -EINVAL;
  uint32_t seq = atomic_load(&keys[key].seq);
  if (!(seq & 1) || !atomic_compare_exchange_strong(&keys[key].seq, &seq, seq + 1)) return -EINVAL;
  return 0;
}

static void run_destructors(struct ch_keyval **kv, unsigned *n);

void ch_keys_thread_exit(void) {
  run_destructors(&tls_keys, &tls_nkeys);
}

/* glibc runs this at the exit of an OS thread that used the runtime (its pthread_exit or return,
 * not exit(): glibc runs no key destructors there, and neither do we — as natively). */
static void os_thread_exit(void *unused) {
  (void)unused;
  tls_keys_done = true;
  run_destructors(&tls_keys, &tls_nkeys);
  ch_free(tls_keys);
  tls_keys = NULL;
  tls_nkeys = 0;
  ch_sched_thread_exit();
}

void ch_os_thread_register(void) {
  if (tls_registered) return;
  int st = atomic_load_explicit(&os_key_state, memory_order_acquire);
  if (st == 0 && atomic_compare_exchange_strong(&os_key_state, &st, 1)) {
    st = ch_plat()->key_create(&os_key, os_thread_exit) == 0 ? 2 : -1;
    atomic_store_explicit(&os_key_state, st, memory_order_release);
  }
  while (st == 1) st = atomic_load_explicit(&os_key_state, memory_order_acquire);
  if (st == 2 && ch_plat()->setspecific(os_key, (void *)1) == 0) tls_registered = true;
}

/* The value array of whoever is running: a coroutine-thread's own, or this OS thread's. */
static void storage(struct ch_keyval ***kv, unsigned **n) {
  ch_coro *co = ch_thread_self();
  if (co) {
    *kv = &co->keys;
    *n = &co->nkeys;
  } else {
    *kv = &tls_keys;
    *n = &tls_nkeys;
  }
}

void *ch_key_get(unsigned key) {
  if (key >= CH_KEYS_MAX) return NULL;
  struct ch_keyval **kv;
  unsigned *n;
  storage(&kv, &n);
  if (key >= *n) return NULL;
  struct ch_keyval *e = &(*kv)[key];
  return e->seq == atomic_load_explicit(&keys[key].seq, memory_order_relaxed) ? e->val : NULL;
}

int ch_key_set(unsigned key, const void *val) {
  if (key >= CH_KEYS_MAX) return -EINVAL;
  uint32_t seq = atomic_load(&keys[key].seq);
  if (!(seq & 1)) return -EINVAL;
  struct ch_keyval **kv;
  unsigned *n;
  storage(&kv, &n);
  if (key >= *n) {
    unsigned nn = key < 16 ? 16 : key + 1 < CH_KEYS_MAX / 2 ? 2 * (key + 1) : CH_KEYS_MAX;
    struct ch_keyval *p = ch_realloc(*kv, nn * sizeof *p);
    if (!p) return -ENOMEM;
    for (unsigned i = *n; i < nn; i++) p[i] = (struct ch_keyval){0, NULL};
    if (kv == &tls_keys && !tls_keys_done) ch_os_thread_register();
    *kv = p;
    *n = nn;
  }
  (*kv)[key] = (struct ch_keyval){seq, (void *)val};
  return 0;
}

/* POSIX: call each non-NULL value's destructor, repeating while destructors set new values. */
static void run_destructors(struct ch_keyval **kv, unsigned *n) {
  for (int round = 0; round < CH_DESTRUCTOR_ITERATIONS; round++) {
    bool any = false;
    for (unsigned k = 0; k < *n; k++) {
      struct ch_keyval e = (*kv)[k]; /* re-read: a destructor may grow the array */
      void (*dtor)(void *) = atomic_load(&keys[k].dtor);
      if (!e.val || e.seq != atomic_load(&keys[k].seq) || !dtor) continue;
      (*kv)[k].val = NULL;
      dtor(e.val);
      any = true;
    }
    if (!any) break;
  }
}

/* Natively the process lives until its last thread exits. Our workers never exit, so once the main
 * thread has called pthread_exit, the end of the last coroutine-thread ends the process, as
 * exit(0) — what glibc does when the last thread goes. */
void ch_thread_main_exiting(void) {
  atomic_store(&main_gone, 1);
  if (atomic_load(&live_threads) == 0 && ch_worker_count() > 0) exit(0);
}

void ch_thread_on_exit(ch_coro *co) {
  ch_cpuclock_thread_exit(co); /* its clock ids name nothing from here on */
  run_destructors(&co->keys, &co->nkeys);
  ch_robust_owner_died(co);
  ch_sig_thread_exit(co);
  if (atomic_fetch_sub(&live_threads, 1) == 1 && atomic_load(&main_gone)) exit(0);
}

void ch_thread_after_fork(bool self_is_thread) {
  atomic_store(&live_threads, self_is_thread ? 1 : 0);
}

void ch_thread_inherit_name(char name[16]) {
  ch_coro *co = ch_thread_self();
  if (co) {
    memcpy(name, co->name, 16);
    return;
  }
  if (ch_sys(SYS_prctl, PR_GET_NAME, name, 0) < 0) name[0] = 0;
  name[15] = 0;
}
