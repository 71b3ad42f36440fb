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
 * Sizes. A coroutine-thread that asks for no size gets what glibc would give the thread: glibc's
 * default attribute (pthread_getattr_default_np: RLIMIT_STACK at start, 8 MiB on a default machine,
 * or what the program set with pthread_setattr_default_np), read at every creation so that a later
 * change is followed; COHOOK_STACK_SIZE overrides it. Coroutines of the cohook_* API default to
 * COHOOK_STACK_SIZE (256 KiB unset). Stacks of those default sizes come from slabs and pools, one
 * pool per size (a few sizes at most: the default may change while stacks of the old size are out).
 * A size the program asked for is mapped on its own, exactly that size, and unmapped when released;
 * its only bound is what the kernel will map (a failing mmap is EAGAIN, as for pthread_create).
 *
 * Page tables: an idle stack costs its top pages, and the page-table page (one per 2 MiB of address
 * space, 4 KiB) that maps them. Stacks under 2 MiB share those (8 per page at 256 KiB); an 8 MiB stack
 * has one of its own, the price of native-size stacks. A slab therefore lays its stacks out so that
 * nothing else costs one: stack i+1's guard page sits right above stack i's top, and a slab of stacks
 * of 2 MiB or more is placed so that each top (with CH_TOP_SPAN below it) and the guard above it fall
 * in the same 2 MiB (for sizes that are a multiple of 2 MiB: every one of them).
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

#define CH_SLAB_STACKS 64                  /* stacks per slab, at most... */
#define CH_SLAB_BYTES (1024ul * 1024 * 1024) /* ...and no more address space than this (huge defaults) */
#define CH_POOL_SIZES 4                    /* distinct pooled sizes; a fifth default is mapped per stack */
#define CH_PT_SPAN (2ul * 1024 * 1024)     /* address space one page-table page maps (x86-64, aarch64 4K) */
#define CH_TOP_SPAN (64u * 1024u)          /* a stack top's hot part, kept in one 2 MiB with its guard */
#define CH_SIZE_MAX (1ul << 46)            /* no machine maps more: refuse before page rounding wraps */
#define CH_MIN_STACK_BYTES (16u * 1024u)   /* glibc's PTHREAD_STACK_MIN */
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
  unsigned n;       /* stacks it holds (CH_SLAB_STACKS unless they are huge) */
  unsigned in_pool; /* how many of its stacks sit in the shared pool */
};
/* The pool of one stack size. Invariant: every stack in v has this size and came from a slab; a
 * size, once given a class, keeps it (released stacks of an old default still find their pool). */
struct pool_class {
  size_t size; /* usable bytes of its stacks; 0: a free class */
  struct ch_stack *v;
  size_t len, cap;
  uint32_t slab;      /* the slab being carved */
  unsigned slab_next; /* its next stack to carve; == that slab's n (or no slab yet): carve a new one */
  bool has_slab;
};
static ch_lock_t pool_lock;
static struct pool_class classes[CH_POOL_SIZES];
static struct slab *slabs;
static size_t nslabs, slabs_cap;

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

/* The pool of this size; a new one if there is room and `make`; NULL otherwise. Caller holds
 * pool_lock. */
static struct pool_class *class_of(size_t size, bool make) {
  for (int i = 0; i < CH_POOL_SIZES; i++)
    if (classes[i].size == size) return &classes[i];
  if (!make) return NULL;
  for (int i = 0; i < CH_POOL_SIZES; i++)
    if (!classes[i].size) {
      classes[i].size = size;
      return &classes[i];
    }
  return NULL;
}

/* Map a slab of stacks of c's size: [guard][stack 0][guard][stack 1]... Stack i's top is stack i+1's
 * guard page: with markers, the page-table page that maps one maps the other. */
static int new_slab(struct pool_class *c) {
  if (nslabs == slabs_cap) {
    size_t ncap = slabs_cap ? slabs_cap * 2 : 64;
    struct slab *ns = ch_realloc(slabs, ncap * sizeof *ns);
    if (!ns) return -EAGAIN;
    slabs = ns;
    slabs_cap = ncap;
  }
  size_t stride = pg() + c->size;
  size_t n = CH_SLAB_BYTES / stride;
  if (n > CH_SLAB_STACKS) n = CH_SLAB_STACKS;
  if (n < 1) n = 1;
  size_t len = n * stride;
  /* Stacks of 2 MiB or more: over-map by 2 MiB and keep the part whose start lies CH_TOP_SPAN past a
   * 2 MiB boundary. Stack i's top is then at that offset + (i+1) pages (for sizes that are 2 MiB
   * multiples), its hot part and the next guard in one 2 MiB: one page-table page per stack, not two. */
  size_t extra = c->size >= CH_PT_SPAN ? CH_PT_SPAN : 0;
  char *m = ch_mmap(NULL, len + extra, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (m == MAP_FAILED) return -EAGAIN; /* as pthread_create reports resource exhaustion */
  if (extra) {
    uintptr_t at = ((uintptr_t)m & ~(uintptr_t)(CH_PT_SPAN - 1)) + CH_TOP_SPAN;
    if (at < (uintptr_t)m) at += CH_PT_SPAN;
    size_t head = at - (uintptr_t)m;
    if (head) ch_munmap(m, head);
    if (extra - head) ch_munmap((char *)at + len, extra - head);
    m = (char *)at;
  }
  slabs[nslabs++] = (struct slab){.base = m, .len = len, .n = (unsigned)n, .in_pool = 0};
  c->slab = (uint32_t)(nslabs - 1);
  c->slab_next = 0;
  c->has_slab = true;
  return 0;
}

static int carve_from_slab(struct pool_class *c, struct ch_stack *out) {
  /* Caller holds pool_lock. */
  if (!c->has_slab || c->slab_next == slabs[c->slab].n) {
    int rc = new_slab(c);
    if (rc < 0) return rc;
  }
  char *region = slabs[c->slab].base + c->slab_next++ * (pg() + c->size);
  out->lo = region + pg();
  out->size = c->size;
  out->slab = 1;
  out->slab_idx = c->slab;
  out->vg_id = CH_VG_STACK_REGISTER(out->lo, out->lo + c->size);
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

size_t ch_stack_thread_default(void) {
  if (ch_config.stack_size_set) return ch_config.stack_size;
  /* Not a name the preload exports: glibc's own default, as its pthread_create would use it. */
  pthread_attr_t a;
  size_t n = 0;
  if (pthread_getattr_default_np(&a) == 0) {
    pthread_attr_getstacksize(&a, &n);
    pthread_attr_destroy(&a);
  }
  if (n < CH_MIN_STACK_BYTES || n > CH_SIZE_MAX) return ch_config.stack_size;
  return (n + pg() - 1) & ~(pg() - 1);
}

static int map_own(size_t size, struct ch_stack *out) {
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

int ch_stack_get(struct ch_sched *s, size_t size, bool pooled, struct ch_stack *out) {
  if (size > CH_SIZE_MAX) return -EAGAIN; /* no machine maps it; and the rounding below must not wrap */
  size = (size + pg() - 1) & ~(pg() - 1);
  if (!pooled) return map_own(size, out);
  if (s) /* the newest first: a thread that makes and joins threads gets a warm stack back */
    for (unsigned i = s->ncache; i-- > 0;)
      if (s->cache[i].size == size) {
        *out = s->cache[i];
        s->cache[i] = s->cache[--s->ncache];
        ready(out);
        return 0;
      }
  ch_lock(&pool_lock);
  struct pool_class *c = class_of(size, true);
  if (!c) { /* a fifth default size: such stacks are mapped one by one */
    ch_unlock(&pool_lock);
    return map_own(size, out);
  }
  if (c->len) {
    *out = c->v[--c->len];
    slabs[out->slab_idx].in_pool--;
    ch_unlock(&pool_lock);
    CH_ASSERT(out->size == size && out->slab);
    ready(out);
    return 0;
  }
  *out = (struct ch_stack){0}; /* a fresh stack: every field is set here or zero */
  int rc = carve_from_slab(c, out);
  ch_unlock(&pool_lock);
  if (rc < 0) return rc;
  protect(out); /* outside the lock: mprotect is a syscall */
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
  if (st->slab) {
    trim_deep(st);
    if (s && s->ncache < CH_STACK_CACHE) {
      s->cache[s->ncache++] = *st;
      return;
    }
    ch_lock(&pool_lock);
    struct pool_class *c = class_of(st->size, false);
    CH_ASSERT(c); /* a slab stack's size got its class when the slab was carved, and keeps it */
    if (c->len == c->cap) {
      size_t ncap = c->cap ? c->cap * 2 : 256;
      struct ch_stack *np = ch_realloc(c->v, ncap * sizeof *np);
      if (!np) { /* keep it out of the pool rather than fail: the memory stays mapped, unused */
        ch_unlock(&pool_lock);
        ch_madvise(st->lo, st->size, MADV_DONTNEED);
        return;
      }
      c->v = np;
      c->cap = ncap;
    }
    c->v[c->len++] = *st;
    struct slab *sl = &slabs[st->slab_idx];
    /* Every stack of this slab is idle in the pool, and the pool is big: give the memory back. Done
     * under the lock, so no thread can take one of these stacks meanwhile. */
    if (++sl->in_pool == sl->n && c->len >= CH_POOL_TRIM) {
      /* The thread identities kept at the tops of these stacks go with their memory. */
      for (size_t i = 0; i < c->len; i++)
        if (c->v[i].slab_idx == st->slab_idx && c->v[i].tls_tp) ch_ident_drop(&c->v[i]);
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

static size_t put_str(char *buf, const char *str) {
  size_t n = 0;
  while (n < 80 && str[n]) buf[n] = str[n], n++; /* at most 80: the knob's text is the user's */
  return n;
}

/* Async-signal-safe: runs on the alternate signal stack, so it only formats by hand and write()s.
 * A default-size stack names the knob and a size four times this one; a stack of the size the
 * program asked for says so (no knob changes it: natively the thread would overflow as well). */
void ch_stack_overflow_abort(const struct ch_stack *st, bool guarded) {
  char msg[320];
  size_t n = 0;
  n += put_str(msg + n, guarded ? "cohook: coroutine stack overflow (stack size "
                                : "cohook: coroutine stack overflow detected by canary (stack size ");
  n += fmt_u(msg + n, st->size);
  if (st->slab) {
    n += put_str(msg + n, " bytes); raise COHOOK_STACK_SIZE (now ");
    n += put_str(msg + n, ch_config.stack_size_text);
    n += put_str(msg + n, "), e.g. COHOOK_STACK_SIZE=");
    size_t k = st->size / 256; /* 4x, in KiB */
    if (k % 1024 == 0) {
      n += fmt_u(msg + n, k / 1024);
      n += put_str(msg + n, "M\n");
    } else {
      n += fmt_u(msg + n, k);
      n += put_str(msg + n, "K\n");
    }
  } else {
    n += put_str(msg + n, " bytes, the size the program asked for)\n");
  }
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
