/*
 * ident.c — a coroutine-thread's own thread identity, wired into the scheduler.
 *
 * tls.c makes a glibc TLS block and thread control block in memory we give it; here that memory is
 * the top of the coroutine's own stack, as glibc puts a thread's TCB and static TLS at the top of its
 * stack mapping: the pages are touched anyway, and the block is pooled with the stack (an exited block
 * is reused by the next coroutine-thread that gets the stack: glibc's malloc cache in it is kept,
 * never leaked). sched.c installs a coroutine's thread pointer on every switch to it.
 *
 * What the runtime itself keeps in TLS (ch_tls_sched, ch_tls_bypass, loop.c's flag) lives in every
 * block too; a block's copy of ch_tls_sched is set here, to the scheduler the coroutine runs on
 * (its offset from the thread pointer is the same in every block: initial-exec TLS).
 *
 * Invariant: a coroutine never resumes under another thread pointer than the one it ran with —
 * compilers cache TLS addresses (errno's location is a const function). A coroutine-thread may move
 * to another scheduler and OS thread (handoff.c, work stealing in sched.c) precisely because its
 * thread pointer, and so every TLS address it cached, goes with it.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "tls.h"

static _Atomic int state; /* 0 not probed, 1 enabled, -1 disabled */
static ptrdiff_t sched_off; /* &ch_tls_sched - thread pointer, in every block alike */
static ptrdiff_t self_off;  /* &ch_tls_self - thread pointer */
static ptrdiff_t m_off;     /* &ch_tls_m - thread pointer */
static size_t reserve;      /* bytes at the top of a stack for the block */

bool ch_ident_enabled(void) {
  int st = atomic_load_explicit(&state, memory_order_acquire);
  if (CH_LIKELY(st)) return st > 0;
  st = -1;
  if (!ch_config.tls_worker) {
    const char *why = NULL;
    if (ch_tls_probe(&why) == 0) {
      sched_off = (char *)&ch_tls_sched - (char *)ch_tls_get_tp();
      self_off = (char *)&ch_tls_self - (char *)ch_tls_get_tp();
      m_off = (char *)&ch_tls_m - (char *)ch_tls_get_tp();
      reserve = (ch_tls_block_size() + ch_tls_block_align() + 63) & ~(size_t)63;
      st = 1;
    } else {
      char msg[256];
      int n = snprintf(msg, sizeof msg,
                       "cohook: per-coroutine thread-local storage is unavailable here (%s); "
                       "coroutine-threads share their worker's, as with COHOOK_TLS=worker\n",
                       why ? why : "probe failed");
      ch_write_err(msg, n > 0 && (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
    }
  }
  int zero = 0;
  if (!atomic_compare_exchange_strong(&state, &zero, st)) st = atomic_load(&state);
  return st > 0;
}

size_t ch_ident_reserve(void) { return reserve; }

char *ch_ident_attach(struct ch_stack *st, struct ch_sched *target, void **tp_out) {
  char *top = st->lo + st->size;
  if (st->size < reserve + 8192) return NULL; /* no room for the block and two pages of stack */
  void *tp = st->tls_tp;
  if (tp && ch_tls_block_reuse(tp) < 0) {
    ch_tls_block_fini(tp);
    tp = NULL;
  }
  if (!tp) tp = ch_tls_block_init(top - reserve, reserve);
  st->tls_tp = tp;
  if (!tp) return NULL;
  *(struct ch_sched **)(void *)((char *)tp + sched_off) = target;
  ch_tls_set_tid(tp, target->tid);
  ch_tls_block_set_stack(tp, st->lo, st->size - reserve);
  *tp_out = tp;
  return top - reserve;
}

void ch_ident_set_self(void *tp, ch_coro *co) { *(ch_coro **)(void *)((char *)tp + self_off) = co; }

void ch_ident_move(ch_coro *co, struct ch_sched *to) {
  CH_ASSERT(co->own_tcb && co->tp);
  *(struct ch_sched **)(void *)((char *)co->tp + sched_off) = to;
  *(struct ch_m **)(void *)((char *)co->tp + m_off) = NULL;
  ch_tls_set_tid(co->tp, to->tid);
}

void ch_ident_drop(struct ch_stack *st) {
  if (!st->tls_tp) return;
  ch_tls_block_fini(st->tls_tp);
  st->tls_tp = NULL;
}

void ch_ident_exit(ch_coro *co) {
  if (co->tp && co->stack.tls_tp == co->tp) ch_tls_block_exit(co->tp);
}
