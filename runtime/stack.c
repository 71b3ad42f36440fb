/*
 * stack.c — coroutine stacks: mapping, guard pages, pooling, overflow reports.
 *
 * The trade-off this file is built around: a guard page costs two kernel mappings (VMAs), because the
 * PROT_NONE page splits what would otherwise be one mapping, and the kernel caps a process at
 * vm.max_map_count mappings (65530 by default). That cap is why native threads stop near 32 000 on a
 * default machine. Coroutines must go far past it, so:
 *
 *   - default-size stacks are carved from slabs (one mmap for CH_SLAB_STACKS stacks), so an unguarded
 *     stack costs no mapping of its own;
 *   - the first max_map_count/4 stacks get a real PROT_NONE guard page (an overflow faults at once and
 *     is reported by the SIGSEGV handler below); the remaining quarter-budget is left to the program;
 *   - where the kernel has guard markers (MADV_GUARD_INSTALL, Linux >= 6.13), a guard page is a mark in
 *     the page tables instead of a PROT_NONE mapping: it costs no VMA, so every stack gets one and the
 *     budget below is never spent (nor is the canary's page, which an idle coroutine would otherwise
 *     touch: 4 KiB per coroutine past the budget);
 *   - stacks beyond that budget get a canary instead: the top words of their (writable) guard page are
 *     filled with a pattern that is checked every time the coroutine switches away and when the stack
 *     is released. An overflow is then caught late (at the next switch) rather than at the faulting
 *     instruction, and it may already have scribbled on the 4 KiB red zone — but never silently.
 *
 * Stacks are never unmapped once carved; they are pooled. Two things keep the pool from pinning
 * memory, both paid rarely because madvise is dear here (~30 us: it flushes the TLB of every CPU the
 * process ran on): a stack whose coroutine was seen deeper than CH_HOT_BYTES (its low-water mark is
 * taken at every switch, for free) has the deep part returned when released; and once the shared pool
 * holds more than CH_POOL_TRIM stacks, a slab whose stacks are all back in the pool is returned whole
 * with one madvise for its 64 stacks. Stacks in a thread's small cache are never trimmed: another
 * thread could not know they are idle.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include "internal.h"
#include "sanitize.h"
#include "sys.h"

#define CH_SLAB_STACKS 64
#define CH_HOT_BYTES (32u * 1024u) /* a typical coroutine's working depth: kept resident when pooled */
#define CH_POOL_TRIM 1024
#define CH_CANARY_WORDS 8
#define CH_CANARY 0x636f686f6f6b2121ull /* "cohook!!" */
#define CH_OVERFLOW_WINDOW (64u * 1024u) /* faults this far below a stack still count as its overflow */
#define CH_ALTSTACK_SIZE (64u * 1024u)

static size_t page_size;
static _Atomic long guard_budget = -1; /* stacks that may still get a PROT_NONE guard; -1: not set */
static _Atomic long guarded_count;

/* Everything below is guarded by pool_lock. */
struct slab {
  char *base;
  size_t len;
  unsigned in_pool; /* how many of its stacks sit in the shared pool */
};
static ch_lock_t pool_lock;
static struct ch_stack *pool;
static size_t pool_len, pool_cap;
static struct slab *slabs;
static size_t nslabs, slabs_cap;
static size_t slab_next = CH_SLAB_STACKS, slab_stack_size;

static size_t pg(void) {
  if (CH_UNLIKELY(!page_size)) page_size = (size_t)sysconf(_SC_PAGESIZE);
  return page_size;
}

/* Read vm.max_map_count with raw syscalls: read() may be intercepted by the hook layer. */
static long read_max_map_count(void) {
  int fd = (int)ch_sys4(SYS_openat, AT_FDCWD, "/proc/sys/vm/max_map_count", O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) return 65530;
  char buf[32];
  long n = ch_sys(SYS_read, fd, buf, sizeof buf - 1);
  ch_sys(SYS_close, fd, 0, 0);
  if (n <= 0) return 65530;
  buf[n] = 0;
  long v = strtol(buf, NULL, 10);
  return v > 0 ? v : 65530;
}

static void init_budget(void) {
  long expect = -1;
  if (atomic_load_explicit(&guard_budget, memory_order_relaxed) != -1) return;
  long budget = read_max_map_count() / 4;
  /* valgrind tracks a few thousand mappings at most (VG_N_SEGMENTS) and exits when it runs out. */
  if (CH_ON_VALGRIND() && budget > 1000) budget = 1000;
  atomic_compare_exchange_strong(&guard_budget, &expect, budget);
}

void ch_stack_set_guard_budget(long n) {
  init_budget();
  atomic_store(&guard_budget, n - atomic_load(&guarded_count));
}

long ch_stack_guarded_count(void) { return atomic_load(&guarded_count); }

static uint64_t *canary_at(const struct ch_stack *st) {
  return (uint64_t *)(void *)(st->lo - CH_CANARY_WORDS * sizeof(uint64_t));
}

bool ch_stack_canary_ok(const struct ch_stack *st) {
  if (st->guarded || !st->lo) return true;
  const uint64_t *c = canary_at(st);
  for (int i = 0; i < CH_CANARY_WORDS; i++)
    if (c[i] != CH_CANARY) return false;
  return true;
}

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102 /* Linux 6.13 uapi; older headers lack it */
#endif
/* 1: guard markers work here; -1: they do not (older kernel: EINVAL), or are switched off (valgrind,
 * which would not know the page faults; tests of the fallbacks); 0: not tried yet. */
static _Atomic int guard_markers;

void ch_stack_use_guard_markers(bool on) { atomic_store(&guard_markers, on ? 0 : -1); }

bool ch_stack_guard_markers_available(void) {
  if (CH_ON_VALGRIND()) return false;
  char *m = ch_mmap(NULL, 2 * pg(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return false;
  bool ok = ch_madvise(m, pg(), MADV_GUARD_INSTALL) == 0;
  ch_munmap(m, 2 * pg());
  return ok;
}

static bool guard_marker(char *page) {
  int st = atomic_load_explicit(&guard_markers, memory_order_relaxed);
  if (st < 0) return false;
  if (!st && CH_ON_VALGRIND()) {
    atomic_store(&guard_markers, -1);
    return false;
  }
  if (ch_madvise(page, pg(), MADV_GUARD_INSTALL) == 0) {
    if (!st) atomic_store(&guard_markers, 1);
    return true;
  }
  if (!st) atomic_store(&guard_markers, -1); /* EINVAL: not this kernel. Later failures: fall back once */
  return false;
}

/* Give a freshly carved stack its guard page, or its canary when the mapping budget is spent. A
 * guard marker survives MADV_DONTNEED (trim, slab return) and fork; it goes with the mapping. */
static void protect(struct ch_stack *st) {
  if (guard_marker(st->lo - pg())) {
    st->guarded = 1;
    atomic_fetch_add(&guarded_count, 1);
    return;
  }
  init_budget();
  if (atomic_fetch_sub(&guard_budget, 1) > 0) {
    if (ch_mprotect(st->lo - pg(), pg(), PROT_NONE) == 0) {
      st->guarded = 1;
      atomic_fetch_add(&guarded_count, 1);
      return;
    }
    /* ENOMEM: the mapping limit was reached by other means; degrade to a canary. */
  }
  atomic_fetch_add(&guard_budget, 1);
  st->guarded = 0;
  uint64_t *c = canary_at(st);
  for (int i = 0; i < CH_CANARY_WORDS; i++) c[i] = CH_CANARY;
}

static int carve_from_slab(size_t size, struct ch_stack *out) {
  /* Caller holds pool_lock. A new default size (only in tests) simply starts a new slab. */
  if (slab_next == CH_SLAB_STACKS || slab_stack_size != size) {
    if (nslabs == slabs_cap) {
      size_t ncap = slabs_cap ? slabs_cap * 2 : 64;
      struct slab *ns = ch_realloc(slabs, ncap * sizeof *ns);
      if (!ns) return -EAGAIN;
      slabs = ns;
      slabs_cap = ncap;
    }
    size_t len = CH_SLAB_STACKS * (pg() + size);
    void *m = ch_mmap(NULL, len, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (m == MAP_FAILED) return -EAGAIN; /* as pthread_create reports resource exhaustion */
    slabs[nslabs++] = (struct slab){.base = m, .len = len, .in_pool = 0};
    slab_next = 0;
    slab_stack_size = size;
  }
  char *region = slabs[nslabs - 1].base + slab_next++ * (pg() + size);
  out->lo = region + pg();
  out->size = size;
  out->slab = 1;
  out->slab_idx = (uint32_t)(nslabs - 1);
  out->vg_id = CH_VG_STACK_REGISTER(out->lo, out->lo + size);
  return 0;
}

/* A whole-slab trim also zeroes the canaries that live in unguarded stacks' guard pages. */
static void ready(struct ch_stack *st) {
  st->low_water = st->lo + st->size;
  if (!st->guarded) {
    uint64_t *c = canary_at(st);
    for (int i = 0; i < CH_CANARY_WORDS; i++) c[i] = CH_CANARY;
  }
}

int ch_stack_get(struct ch_sched *s, size_t size, struct ch_stack *out) {
  size = (size + pg() - 1) & ~(pg() - 1);
  if (size == ch_config.stack_size) {
    if (s && s->ncache) {
      *out = s->cache[--s->ncache];
      ready(out);
      return 0;
    }
    ch_lock(&pool_lock);
    if (pool_len) {
      *out = pool[--pool_len];
      slabs[out->slab_idx].in_pool--;
      ch_unlock(&pool_lock);
      ready(out);
      return 0;
    }
    *out = (struct ch_stack){0}; /* a fresh stack: every field is set here or zero */
    int rc = carve_from_slab(size, out);
    ch_unlock(&pool_lock);
    if (rc < 0) return rc;
    protect(out); /* outside the lock: mprotect is a syscall */
    ready(out);
    return 0;
  }
  void *m = ch_mmap(NULL, pg() + size, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (m == MAP_FAILED) return -EAGAIN;
  *out = (struct ch_stack){0};
  out->lo = (char *)m + pg();
  out->size = size;
  out->slab = 0;
  out->vg_id = CH_VG_STACK_REGISTER(out->lo, out->lo + size);
  protect(out);
  ready(out);
  return 0;
}

/* Return the pages below the hot top of a stack that was seen in deep use. */
static void trim_deep(struct ch_stack *st) {
  char *hot = st->lo + st->size - CH_HOT_BYTES;
  if (st->size >= 2 * CH_HOT_BYTES && st->low_water < hot) {
    char *from = (char *)((uintptr_t)st->low_water & ~(uintptr_t)(pg() - 1));
    if (from < st->lo) from = st->lo;
    ch_madvise(from, (size_t)(hot - from), MADV_DONTNEED);
  }
  st->low_water = st->lo + st->size;
}

void ch_stack_put(struct ch_sched *s, struct ch_stack *st) {
  if (!ch_stack_canary_ok(st)) ch_stack_overflow_abort(st, false);
  CH_STAT_STACK(s, st->lo + st->size, st->low_water); /* before trim_deep forgets the depth */
  /* Frames abandoned mid-call (a coroutine never returns through them) may leave ASan poison. */
  CH_ASAN_UNPOISON(st->lo, st->size);
  if (st->slab && st->size == ch_config.stack_size) {
    trim_deep(st);
    if (s && s->ncache < CH_STACK_CACHE) {
      s->cache[s->ncache++] = *st;
      return;
    }
    ch_lock(&pool_lock);
    if (pool_len == pool_cap) {
      size_t ncap = pool_cap ? pool_cap * 2 : 256;
      struct ch_stack *np = ch_realloc(pool, ncap * sizeof *np);
      if (!np) { /* keep it out of the pool rather than fail: the memory stays mapped, unused */
        ch_unlock(&pool_lock);
        ch_madvise(st->lo, st->size, MADV_DONTNEED);
        return;
      }
      pool = np;
      pool_cap = ncap;
    }
    pool[pool_len++] = *st;
    struct slab *sl = &slabs[st->slab_idx];
    /* Every stack of this slab is idle in the pool, and the pool is big: give the memory back. Done
     * under the lock, so no thread can take one of these stacks meanwhile. */
    if (++sl->in_pool == CH_SLAB_STACKS && pool_len >= CH_POOL_TRIM) {
      /* The thread identities kept at the tops of these stacks go with their memory. */
      for (size_t i = 0; i < pool_len; i++)
        if (pool[i].slab_idx == st->slab_idx && pool[i].tls_tp) ch_ident_drop(&pool[i]);
      ch_madvise(sl->base, sl->len, MADV_DONTNEED);
    }
    ch_unlock(&pool_lock);
    return;
  }
  CH_VG_STACK_DEREGISTER(st->vg_id);
  ch_ident_drop(st);
  ch_munmap(st->lo - pg(), pg() + st->size);
  if (st->guarded) {
    atomic_fetch_sub(&guarded_count, 1);
    atomic_fetch_add(&guard_budget, 1);
  }
}

void ch_stack_flush_cache(struct ch_sched *s) {
  while (s->ncache) {
    struct ch_stack st = s->cache[--s->ncache];
    ch_stack_put(NULL, &st);
  }
}

/* ---- overflow reporting ------------------------------------------------------------------------ */

static struct sigaction old_segv;
static _Atomic int handler_installed;

static size_t fmt_u(char *buf, size_t v) {
  char tmp[24];
  size_t n = 0, i = 0;
  do tmp[n++] = (char)('0' + v % 10); while ((v /= 10));
  while (n) buf[i++] = tmp[--n];
  return i;
}

/* Async-signal-safe: runs on the alternate signal stack, so it only formats by hand and write()s. */
void ch_stack_overflow_abort(const struct ch_stack *st, bool guarded) {
  char msg[320];
  size_t n = 0;
  const char *a = guarded ? "cohook: coroutine stack overflow (stack size "
                          : "cohook: coroutine stack overflow detected by canary (stack size ";
  size_t al = strlen(a);
  memcpy(msg + n, a, al), n += al;
  n += fmt_u(msg + n, st->size);
  const char *b = " bytes); raise COHOOK_STACK_SIZE (now ";
  size_t bl = strlen(b);
  memcpy(msg + n, b, bl), n += bl;
  const char *v = ch_config.stack_size_text;
  size_t vl = strnlen(v, 64);
  memcpy(msg + n, v, vl), n += vl;
  const char *c = "), e.g. COHOOK_STACK_SIZE=1M\n";
  size_t cl = strlen(c);
  memcpy(msg + n, c, cl), n += cl;
  ch_write_err(msg, n);
  abort();
}

static uintptr_t fault_sp(void *ucv) {
  ucontext_t *uc = ucv;
#if defined(__x86_64__)
  return (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
  return (uintptr_t)uc->uc_mcontext.sp;
#else
  (void)uc;
  return 0;
#endif
}

static void segv_handler(int sig, siginfo_t *si, void *uc) {
  ch_coro *self = ch_self();
  if (self && self->stack.lo) {
    const struct ch_stack *st = &self->stack;
    uintptr_t lo = (uintptr_t)st->lo, addr = (uintptr_t)si->si_addr, sp = fault_sp(uc);
    bool below = addr < lo && addr + CH_OVERFLOW_WINDOW >= lo;
    bool sp_out = sp && sp < lo && sp + CH_OVERFLOW_WINDOW >= lo;
    if (below || sp_out) ch_stack_overflow_abort(st, st->guarded);
  }
  /* Not ours: behave as if we were never installed. */
  if (old_segv.sa_flags & SA_SIGINFO) {
    old_segv.sa_sigaction(sig, si, uc);
  } else if (old_segv.sa_handler != SIG_DFL && old_segv.sa_handler != SIG_IGN) {
    old_segv.sa_handler(sig);
  } else {
    /* Default action: restore it and return; the faulting instruction faults again and the kernel
     * kills the process with SIGSEGV (and a core dump), exactly as without us. The kernel's
     * disposition, through the platform: the hooked sigaction would record it as the program's. */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    ch_plat()->sigaction(sig, &dfl, NULL);
  }
}

void ch_stack_thread_init(struct ch_sched *s) {
  int expect = 0;
  if (atomic_compare_exchange_strong(&handler_installed, &expect, 1)) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = segv_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    ch_plat()->sigaction(SIGSEGV, &sa, &old_segv);
  }
  /* The overflow handler cannot run on the stack that overflowed: give this thread an alternate
   * signal stack, unless the program (or a sanitizer) already set one. */
  stack_t cur;
  if (ch_sys(SYS_sigaltstack, NULL, &cur, 0) == 0 && (cur.ss_flags & SS_DISABLE)) {
    void *m = ch_mmap(NULL, CH_ALTSTACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m != MAP_FAILED) {
      stack_t ss = {.ss_sp = m, .ss_size = CH_ALTSTACK_SIZE, .ss_flags = 0};
      if (ch_sys(SYS_sigaltstack, &ss, NULL, 0) == 0) {
        s->altstack = m;
        s->altstack_size = CH_ALTSTACK_SIZE;
      } else {
        ch_munmap(m, CH_ALTSTACK_SIZE);
      }
    }
  }
}

void ch_stack_thread_fini(struct ch_sched *s) {
  if (s->altstack) {
    stack_t ss = {.ss_sp = NULL, .ss_size = 0, .ss_flags = SS_DISABLE};
    ch_sys(SYS_sigaltstack, &ss, NULL, 0);
    ch_munmap(s->altstack, s->altstack_size);
    s->altstack = NULL;
  }
  ch_stack_flush_cache(s);
}

void ch_stack_after_fork(void) {
  /* Another thread of the parent may have held the lock at fork(); it does not exist here. */
  atomic_store(&pool_lock.state, 0);
}
