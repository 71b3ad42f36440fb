/*
 * cpuclock.c — per coroutine-thread CPU-time clocks (see cpuclock.h).
 *
 * Accounting: a coroutine's CPU time is the sum of its slices, a slice running from the switch to it
 * to the switch away from it, each end read from the OS thread's own CPU clock (the kernel's
 * sum_exec_runtime, to the nanosecond). A slice includes what the scheduler does on the coroutine's
 * stack while it parks (looking at the run queue, polling I/O, the few microseconds an idle worker
 * spins before it sleeps): there is no separate scheduler context to charge it to, as a thread's own
 * system calls count as its CPU time natively. A coroutine that was running when accounting was
 * turned on counts from its next switch (or, for the caller, from that moment): CPU time spent before
 * the program first asked for any thread CPU clock is not attributed.
 *
 * Clock ids (cpuclock.h): an entry of a table of registered coroutine-threads and a generation, so an
 * id outliving its thread does not name the next thread to get the entry (a kernel tid is reused only
 * after pid_max others, our entries sooner: the generation covers 64 reuses). A thread gets an entry
 * when someone asks for its id, gives it back when it ends. The table lock also keeps the coroutine's
 * control block alive while a reader looks at it: its end takes the entry out under the lock.
 */
#include <sys/resource.h>

#include "internal.h"
#include "sys.h"

_Atomic int ch_cpuclock_on;

/* ---- reading the kernel's clocks ------------------------------------------------------------------- */

static uint64_t ts_ns(const struct timespec *ts) {
  return (uint64_t)ts->tv_sec * 1000000000u + (uint64_t)ts->tv_nsec;
}

/* The calling OS thread's CPU time. A system call (CPU clocks have no vDSO path), made with the
 * instruction: in the preload clock_gettime is our own hook. Never 0, which means "no slice". */
static uint64_t os_cpu_now(void) {
  struct timespec ts;
  if (ch_sys(SYS_clock_gettime, CLOCK_THREAD_CPUTIME_ID, &ts, 0) != 0) return 1;
  uint64_t ns = ts_ns(&ts);
  return ns ? ns : 1;
}

/* OS thread tid's CPU time (a thread of this process), or 0 if the kernel cannot say. */
static uint64_t tid_cpu_now(int tid) {
  struct timespec ts;
  clockid_t clk = (clockid_t)(((unsigned)~tid << 3) | 6u); /* CPUCLOCK_PERTHREAD | CPUCLOCK_SCHED */
  if (ch_sys(SYS_clock_gettime, clk, &ts, 0) != 0) return 0;
  return ts_ns(&ts);
}

/* ---- the seqlock around a coroutine's fields ------------------------------------------------------- */

static inline void seq_begin(struct ch_cpuclock *c) {
  uint32_t s = atomic_load_explicit(&c->seq, memory_order_relaxed);
  CH_ASSERT(!(s & 1)); /* one writer at a time: the OS thread switching it */
  atomic_store_explicit(&c->seq, s + 1, memory_order_relaxed);
  atomic_thread_fence(memory_order_release);
}

static inline void seq_end(struct ch_cpuclock *c) {
  atomic_store_explicit(&c->seq, atomic_load_explicit(&c->seq, memory_order_relaxed) + 1, memory_order_release);
}

/* Close from's slice at `now`. */
static inline void slice_close(struct ch_cpuclock *c, uint64_t now) {
  uint64_t in = atomic_load_explicit(&c->in, memory_order_relaxed);
  if (!in) return;
  /* A fork() child's thread starts its CPU clock again: never count backwards. */
  uint64_t ns = atomic_load_explicit(&c->ns, memory_order_relaxed) + (now > in ? now - in : 0);
  atomic_store_explicit(&c->ns, ns, memory_order_relaxed);
  atomic_store_explicit(&c->in, 0, memory_order_relaxed);
}

void ch_cpuclock_switch_slow(struct ch_cpuclock *from, struct ch_cpuclock *to, int tid) {
  if (from) seq_begin(from);
  seq_begin(to);
  /* The clock is read after both counters are odd: a reader that finds them unchanged after reading
   * the OS thread's clock itself (read_other) read it before this, so never more than we will
   * record. */
  atomic_thread_fence(memory_order_seq_cst);
  uint64_t now = os_cpu_now();
  if (from) {
    slice_close(from, now);
    seq_end(from);
  }
  atomic_store_explicit(&to->tid, tid, memory_order_relaxed);
  atomic_store_explicit(&to->in, now, memory_order_relaxed);
  seq_end(to);
}

/* ---- the caller's own clock ---------------------------------------------------------------------- */

static void turn_on(void) {
  if (!atomic_load_explicit(&ch_cpuclock_on, memory_order_relaxed))
    atomic_store_explicit(&ch_cpuclock_on, 1, memory_order_seq_cst);
}

uint64_t ch_cpuclock_self(ch_coro *self) {
  struct ch_cpuclock *c = &self->cpu;
  turn_on();
  uint64_t now = os_cpu_now();
  uint64_t in = atomic_load_explicit(&c->in, memory_order_relaxed);
  if (CH_UNLIKELY(!in)) { /* running since before accounting was on: count from now */
    seq_begin(c);
    atomic_store_explicit(&c->tid, ch_tls_sched->tid, memory_order_relaxed);
    atomic_store_explicit(&c->in, now, memory_order_relaxed);
    seq_end(c);
    in = now;
  }
  /* Only this OS thread writes our fields while we run: no need for the sequence counter. */
  return atomic_load_explicit(&c->ns, memory_order_relaxed) + (now > in ? now - in : 0);
}

/* Another coroutine's CPU time: its finished slices, plus the current one if it runs now (on another
 * OS thread, whose CPU clock we read). */
static uint64_t read_other(struct ch_cpuclock *c) {
  for (;;) {
    uint32_t s1 = atomic_load_explicit(&c->seq, memory_order_acquire);
    if (s1 & 1) { /* a switch of it is under way: a system call's time */
      ch_cpu_relax();
      continue;
    }
    uint64_t ns = atomic_load_explicit(&c->ns, memory_order_relaxed);
    uint64_t in = atomic_load_explicit(&c->in, memory_order_relaxed);
    int tid = atomic_load_explicit(&c->tid, memory_order_relaxed);
    uint64_t now = in ? tid_cpu_now(tid) : 0;
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&c->seq, memory_order_relaxed) != s1) continue;
    return ns + (now > in ? now - in : 0);
  }
}

/* ---- clock ids ------------------------------------------------------------------------------------- */

#define GEN_BITS 6
#define SLOT_BITS 22 /* with GEN_BITS: 28 bits, what fits above the low 3 of a negative 32-bit id */
#define MAX_SLOTS (1u << SLOT_BITS)

struct slot {
  ch_coro *co;        /* NULL: free */
  uint32_t gen;       /* bumped when freed */
  uint32_t next_free; /* 1 + next free entry, 0 none */
};

static ch_lock_t table_lock;
static struct slot *slots; /* [table_lock] */
static uint32_t nslots, cap, free_head;

static clockid_t encode(uint32_t i, uint32_t gen) {
  uint32_t x = (i << GEN_BITS) | (gen & ((1u << GEN_BITS) - 1));
  return (clockid_t)((~x << 3) | 7u);
}

static void decode(clockid_t clk, uint32_t *i, uint32_t *gen) {
  uint32_t x = ~((uint32_t)clk >> 3) & ((1u << (SLOT_BITS + GEN_BITS)) - 1);
  *i = x >> GEN_BITS;
  *gen = x & ((1u << GEN_BITS) - 1);
}

/* [table_lock] */
static void slot_free(uint32_t i) {
  slots[i].co = NULL;
  slots[i].gen++;
  slots[i].next_free = free_head;
  free_head = i + 1;
}

/* [table_lock] A free entry, or UINT32_MAX. */
static uint32_t slot_alloc(void) {
  if (free_head) {
    uint32_t i = free_head - 1;
    free_head = slots[i].next_free;
    return i;
  }
  if (nslots == MAX_SLOTS) return UINT32_MAX;
  if (nslots == cap) {
    uint32_t ncap = cap ? cap * 2 : 64;
    struct slot *p = ch_realloc(slots, ncap * sizeof *p);
    if (!p) return UINT32_MAX;
    slots = p;
    cap = ncap;
  }
  slots[nslots] = (struct slot){0};
  return nslots++;
}

int ch_cpuclock_id(ch_coro *co, clockid_t *out) {
  turn_on();
  struct ch_cpuclock *c = &co->cpu;
  int r = 0;
  ch_lock(&table_lock);
  uint32_t cur = atomic_load_explicit(&c->slot, memory_order_acquire);
  if (cur == CH_CPUCLOCK_GONE) {
    r = -ESRCH;
  } else if (cur) {
    *out = encode(cur - 1, slots[cur - 1].gen);
  } else {
    uint32_t i = slot_alloc();
    uint32_t zero = 0;
    if (i == UINT32_MAX) {
      r = -EAGAIN;
    } else if (!atomic_compare_exchange_strong_explicit(&c->slot, &zero, i + 1, memory_order_acq_rel,
                                                        memory_order_acquire)) {
      slot_free(i); /* it ended meanwhile (ch_cpuclock_thread_exit) */
      r = -ESRCH;
    } else {
      slots[i].co = co;
      *out = encode(i, slots[i].gen);
    }
  }
  ch_unlock(&table_lock);
  return r;
}

int ch_cpuclock_get(clockid_t clk, ch_coro *self, uint64_t *out_ns) {
  uint32_t i, gen;
  decode(clk, &i, &gen);
  int r = 0;
  ch_lock(&table_lock);
  ch_coro *co = i < nslots && (slots[i].gen & ((1u << GEN_BITS) - 1)) == gen ? slots[i].co : NULL;
  if (!co) r = -EINVAL;
  else if (co == self) *out_ns = ch_cpuclock_self(self);
  else *out_ns = read_other(&co->cpu);
  ch_unlock(&table_lock);
  return r;
}

void ch_cpuclock_thread_exit(ch_coro *co) {
  /* One atomic on the coroutine's own line: an ended thread must never get an entry (its control
   * block goes with its join), and an entry it has is given back before that. */
  uint32_t old = atomic_exchange_explicit(&co->cpu.slot, CH_CPUCLOCK_GONE, memory_order_acq_rel);
  if (!old) return;
  CH_ASSERT(old != CH_CPUCLOCK_GONE);
  ch_lock(&table_lock);
  CH_ASSERT(slots[old - 1].co == co);
  slot_free(old - 1);
  ch_unlock(&table_lock);
}

void ch_cpuclock_after_fork(ch_coro *self) {
  atomic_store(&table_lock.state, 0);
  for (uint32_t i = 0; i < nslots; i++)
    if (slots[i].co && slots[i].co != self) slot_free(i);
  if (self && atomic_load_explicit(&ch_cpuclock_on, memory_order_relaxed)) {
    struct ch_cpuclock *c = &self->cpu;
    atomic_store_explicit(&c->seq, 0, memory_order_relaxed);
    atomic_store_explicit(&c->ns, 0, memory_order_relaxed);
    atomic_store_explicit(&c->tid, ch_tls_sched ? ch_tls_sched->tid : ch_gettid(), memory_order_relaxed);
    atomic_store_explicit(&c->in, os_cpu_now(), memory_order_relaxed);
  }
}

/* ---- getrusage(RUSAGE_THREAD) -------------------------------------------------------------------- */

/* The kernel's answer for the OS thread, with the CPU times replaced by the coroutine-thread's own.
 * The coroutine's time is one figure (user + system); it is split in the proportion of user to
 * system time the kernel reports for the OS thread, which is how the kernel itself apportions a
 * thread's precise runtime between the two (cputime_adjust). The other fields (faults, context
 * switches, max RSS) are the OS thread's: what the kernel keeps per task is shared by the
 * coroutine-threads it runs. */
int ch_cpuclock_rusage_thread(ch_coro *self, struct rusage *ru) {
  long r = ch_sys(SYS_getrusage, RUSAGE_THREAD, ru, 0);
  if (r < 0) return (int)r;
  uint64_t ns = ch_cpuclock_self(self);
  uint64_t u = (uint64_t)ru->ru_utime.tv_sec * 1000000u + (uint64_t)ru->ru_utime.tv_usec;
  uint64_t s = (uint64_t)ru->ru_stime.tv_sec * 1000000u + (uint64_t)ru->ru_stime.tv_usec;
  uint64_t us = ns / 1000u;
  uint64_t uu = u + s ? (uint64_t)((unsigned __int128)us * u / (u + s)) : us;
  uint64_t su = us - uu;
  ru->ru_utime.tv_sec = (time_t)(uu / 1000000u);
  ru->ru_utime.tv_usec = (suseconds_t)(uu % 1000000u);
  ru->ru_stime.tv_sec = (time_t)(su / 1000000u);
  ru->ru_stime.tv_usec = (suseconds_t)(su % 1000000u);
  return 0;
}
