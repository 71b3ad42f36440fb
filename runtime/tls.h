/*
 * tls.h — a coroutine's own glibc thread identity: a static TLS block and a thread control block (TCB,
 * glibc's struct pthread) laid out exactly as glibc lays out a thread's, in memory the caller gives.
 * Installing its thread pointer (wrfsbase on x86-64, msr tpidr_el0 on aarch64) makes __thread
 * variables, errno, malloc's per-thread cache, stdio lock ownership, locale, setjmp/longjmp pointer
 * mangling, C++ thread_local destructors... behave as in a separate thread. glibc's loader does the
 * TLS part itself (_dl_allocate_tls: DTV + initial images); we fill the TCB fields glibc's
 * pthread_create would (see tls.c for each field and where glibc sets it).
 *
 * Layout (x86-64, "TCB at TP"; aarch64 mirrors it with struct pthread below TP and the TLS above):
 *
 *     mem                                                                    mem + len
 *      | ... unused ... | ext (resolver state) | static TLS (modules) | struct pthread |
 *                                                                     ^ tp (aligned to ch_tls_block_align())
 *
 * Life of a block (invariants; tls.c checks the ones it can):
 *   1. ch_tls_probe() returned 0 before any other call. Call it from an OS thread running on its own
 *      glibc TLS (not inside a block): it verifies glibc's offsets against the running thread.
 *   2. tp = ch_tls_block_init(mem, len): from any context; the block then looks like a thread that has
 *      just started (pthread_create's start_thread has run up to the user's function).
 *   3. ch_tls_set_tp(tp) ... run the coroutine-thread ... ch_tls_set_tp(previous): a block is installed
 *      on at most one OS thread at a time, and nothing computed from the thread pointer (an errno
 *      address, &some_tls_var) may be carried across a switch — compilers cache those (errno's
 *      location is a const function), so the switch must sit in a function of its own.
 *   4. ch_tls_set_tid(tp, tid) whenever the block starts running on another OS thread (migration):
 *      glibc uses the TCB's tid for mutex ownership, raise() and robust lists.
 *   5. ch_tls_block_exit(tp) while tp is installed, when the coroutine-thread ends: C++ thread_local
 *      destructors and the per-thread clean-up glibc does at thread exit, except malloc's.
 *   6. After a dlopen, ch_tls_block_sync(tp) before tp runs again (on the OS thread about to install
 *      it): glibc copies a newly loaded module's *static* TLS image only into the threads it knows.
 *   7. Then either ch_tls_block_reuse(tp) (the next coroutine-thread in this memory: a pool), or
 *      ch_tls_block_fini(tp) (never while installed). glibc has no public way to shut down a thread's
 *      malloc cache (tcache) outside its own thread exit, so a block keeps libc's own TLS — its tcache
 *      and arena — across reuse, as a cached glibc stack keeps its memory; fini drops that cache
 *      (a few hundred bytes plus the chunks it holds), so pool blocks rather than fini them.
 */
#ifndef CH_TLS_H
#define CH_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "sys.h"

#if defined(__x86_64__)
#include <asm/prctl.h>
#endif

/* 0 when a block can work here; -ENOTSUP otherwise. *why (if why != NULL) gets a short reason, or on
 * success how the thread pointer is switched. Probes once; later calls return the cached answer. */
int ch_tls_probe(const char **why);
/* The same checks with a given AT_HWCAP2 and valgrind answer, uncached and without side effects: for
 * the unit tests. */
int ch_tls_probe_check(unsigned long hwcap2, bool on_valgrind, const char **why);

/* Bytes to reserve, and the alignment of mem for that many bytes to be enough (0 before a successful
 * probe). Any mem works if len >= size + align - 1. */
size_t ch_tls_block_size(void);
size_t ch_tls_block_align(void);

/* Lay out a fresh block at the top of [mem, mem + len) and return the thread pointer to install, or
 * NULL (block does not fit, out of memory for the DTV, or not probed). The whole block is zeroed. */
void *ch_tls_block_init(void *mem, size_t len);
/* End of a coroutine-thread; tp must be the installed thread pointer. Runs C++ thread_local
 * destructors (__cxa_thread_atexit_impl), then what glibc's __libc_thread_freeres does except malloc's
 * shutdown: drops a pending dlerror() and closes the thread's resolver sockets. -EINVAL if tp is not
 * installed. */
int ch_tls_block_exit(void *tp);
/* Make an exited block fresh again for the next coroutine-thread, as glibc does for a cached stack:
 * every module's TLS back to its initial image (dlopened modules' dynamic TLS freed), except libc's
 * own module, whose malloc cache and arena are kept; what a new thread must see fresh in it (errno,
 * h_errno, locale, ctype tables, resolver state) is reset. Not while tp is installed. -EBUSY if
 * ch_tls_block_exit has not run since the block was last (re)initialised. */
int ch_tls_block_reuse(void *tp);
/* Free the DTV, the dynamic TLS of dlopened modules and glibc's strerror/strsignal buffers; the memory
 * is the caller's again. Never while installed. Leaks the block's malloc tcache (see 7 above). */
void ch_tls_block_fini(void *tp);

/* Copy the initial TLS image of modules loaded since the block was (re)initialised or last synced and
 * given static TLS by the loader (initial-exec TLS; TLSDESC when the surplus has room, the default on
 * aarch64), as glibc's _dl_init_static_tls does for its own threads at dlopen. Cheap when nothing was
 * loaded (one dl_iterate_phdr callback). Not while the block runs on another OS thread. Returns how
 * many modules were copied, or -ENOTSUP where the loader's slotinfo list is not described. */
int ch_tls_block_sync(void *tp);

/* The tid glibc sees for this block: the OS thread now running it (ch_tls_block_init sets the
 * caller's). */
void ch_tls_set_tid(void *tp, int tid);
/* Tell glibc the coroutine's stack (what pthread_getattr_np and __libc_alloca_cutoff read): without it
 * glibc allows 64 KiB allocas on what may be a 16 KiB stack. -ENOTSUP where the probe could not verify
 * the field's offset on this glibc. */
int ch_tls_block_set_stack(void *tp, void *lo, size_t size);
/* One line on what the probe found (switch method, sizes, offsets), for logs and the unit tests. */
int ch_tls_describe(char *buf, size_t n);

/* ---- switching the thread pointer ---------------------------------------------------------------- */

/* Set by ch_tls_probe under valgrind, whose x86-64 emulation has no wrfsbase: switch with
 * arch_prctl(ARCH_SET_FS) instead (a syscall, ~100x slower; valgrind runs are tests, not benchmarks). */
extern int ch_tls_tp_syscall __attribute__((visibility("hidden")));

/* The "memory" clobbers keep the compiler from moving loads and stores of TLS variables across the
 * switch; they cannot stop it from reusing a TLS *address* it computed before (see invariant 3). */
static inline void ch_tls_set_tp(void *tp) {
#if defined(__x86_64__)
  if (__builtin_expect(ch_tls_tp_syscall, 0)) {
    ch_sys(SYS_arch_prctl, ARCH_SET_FS, tp, 0);
    return;
  }
  __asm__ volatile("wrfsbase %0" : : "r"(tp) : "memory");
#elif defined(__aarch64__)
  __asm__ volatile("msr tpidr_el0, %0" : : "r"(tp) : "memory");
#else
#error "cohook: thread pointer switch for x86_64 and aarch64 only"
#endif
}

static inline void *ch_tls_get_tp(void) {
  void *tp;
#if defined(__x86_64__)
  /* glibc's TCB starts with a pointer to itself (tcbhead_t.tcb): one load, no FSGSBASE needed, and
   * valgrind understands it. Every TCB in this process is glibc's or ours, which keeps that word. */
  __asm__ volatile("mov %%fs:0, %0" : "=r"(tp) : : "memory");
#elif defined(__aarch64__)
  __asm__ volatile("mrs %0, tpidr_el0" : "=r"(tp) : : "memory");
#endif
  return tp;
}

#endif /* CH_TLS_H */
