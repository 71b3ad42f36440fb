/*
 * stats.c — the scheduler registry and the COHOOK_STATS report at exit.
 *
 * The counters themselves live where they are cheapest to bump (stats.h): per scheduler, in plain
 * fields its own thread writes, and process-wide for rare events. Here they are found (every
 * scheduler is registered from its creation to its thread's exit, when its counts are folded into
 * ch_stats.gone) and summed once, when the process exits normally (exit() or a return from main;
 * _exit() and a fatal signal skip destructors, and so the report: the counts are still in memory but
 * nothing runs to print them).
 *
 * fork(): the child inherits the parent's counts with its memory. They are the parent's, so the child
 * starts from zero (ch_stats_after_fork) and labels its own report as a child's; a vfork() child that
 * exits shares the parent's memory and prints nothing (the pid check).
 */
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>

#include "internal.h"
#include "sys.h"

struct ch_stats_global ch_stats;

/* Invariant: reg[0..nreg) are the live schedulers of this process, each once. */
static ch_lock_t reg_lock;
static struct ch_sched **reg;
static size_t nreg, capreg;
static uint64_t start_ns;  /* this process's start (or its fork) on the monotonic clock */
static int parent_pid;     /* in a fork child: the parent's pid; 0 in the original process */
static _Atomic int reported;

__attribute__((constructor(101))) static void stats_init(void) { start_ns = ch_now_ns(); }

uint64_t ch_stats_uptime_ns(void) { return ch_now_ns() - start_ns; }

static void atomic_max(_Atomic uint64_t *m, uint64_t v) {
  uint64_t cur = atomic_load_explicit(m, memory_order_relaxed);
  while (v > cur && !atomic_compare_exchange_weak_explicit(m, &cur, v, memory_order_relaxed,
                                                           memory_order_relaxed)) {
  }
}

void ch_stats_thread_made(long alive) {
  atomic_fetch_add_explicit(&ch_stats.threads_made, 1, memory_order_relaxed);
  atomic_max(&ch_stats.threads_peak, alive > 0 ? (uint64_t)alive : 0);
}

void ch_stats_sched_add(struct ch_sched *s) {
  ch_lock(&reg_lock);
  if (nreg == capreg) {
    size_t ncap = capreg ? 2 * capreg : 16;
    struct ch_sched **n = ch_realloc(reg, ncap * sizeof *n);
    if (n) reg = n, capreg = ncap;
  }
  if (nreg < capreg) reg[nreg++] = s; /* out of memory: its counts are lost, nothing else is */
  ch_unlock(&reg_lock);
  ch_monitor_start(); /* the first scheduler starts the monitor, if anything needs it */
}

static void fold(struct ch_stats_sched *into, const struct ch_stats_sched *st) {
  for (int f = 0; f < CH_FAM_N; f++) into->calls[f] += st->calls[f], into->waits[f] += st->waits[f];
  if (st->timers_peak > into->timers_peak) into->timers_peak = st->timers_peak;
  into->fd_watchers += st->fd_watchers;
  if (st->stack_peak > into->stack_peak) into->stack_peak = st->stack_peak;
}

void ch_stats_sched_del(struct ch_sched *s) {
  ch_lock(&reg_lock);
  for (size_t i = 0; i < nreg; i++) {
    if (reg[i] != s) continue;
    reg[i] = reg[--nreg];
    fold(&ch_stats.gone, &s->st);
    ch_stats.gone_switches += s->nswitch;
    break;
  }
  ch_unlock(&reg_lock);
}

size_t ch_stats_scheds(struct ch_sched **out, size_t max) {
  ch_lock(&reg_lock);
  size_t n = nreg < max ? nreg : max;
  memcpy(out, reg, n * sizeof *out);
  ch_unlock(&reg_lock);
  return n;
}

void ch_stats_after_fork(void) {
  atomic_store(&reg_lock.state, 0); /* another thread of the parent may have held it */
  nreg = 0;                         /* the parent's schedulers are not ours (their threads are gone) */
  parent_pid = (int)ch_sys0(SYS_getppid);
  memset(&ch_stats, 0, sizeof ch_stats);
  start_ns = ch_now_ns();
  atomic_store(&reported, 0);
  ch_monitor_after_fork();
}

/* ---- the report ------------------------------------------------------------------------------------- */

struct out {
  char buf[4096];
  size_t len;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(o->buf + o->len, sizeof o->buf - o->len, fmt, ap);
  va_end(ap);
  if (n > 0) o->len += (size_t)n < sizeof o->buf - o->len ? (size_t)n : sizeof o->buf - o->len - 1;
}

static const char *const fam_names[CH_FAM_N] = {"read", "write", "poll", "sleep", "sync", "join"};
static const char *const fam_what[CH_FAM_N] = {
    "read readv recv* accept", "write writev send* connect", "poll select epoll_wait",
    "nanosleep sleep usleep",  "mutex cond rwlock sem barrier", "pthread_join"};

/* One compact block, as mimalloc's: what ran, how it was scheduled, what it waited for. */
static void report(void) {
  struct ch_stats_sched sum = {0};
  uint64_t switches = 0;
  size_t nsched = 0;
  ch_lock(&reg_lock);
  fold(&sum, &ch_stats.gone);
  switches = ch_stats.gone_switches;
  for (size_t i = 0; i < nreg; i++) {
    fold(&sum, &reg[i]->st); /* a moment's snapshot of running threads: exit() does not stop them */
    switches += reg[i]->nswitch;
  }
  nsched = nreg;
  ch_unlock(&reg_lock);
  for (int f = 0; f < CH_FAM_N; f++)
    sum.calls[f] += atomic_load_explicit(&ch_stats.calls[f], memory_order_relaxed);

  struct out o = {.len = 0};
  uint64_t up = ch_stats_uptime_ns() / 1000000u;
  put(&o, "cohook stats: pid %d%s%.0d%s, %llu.%03llu s\n", ch_getpid(), parent_pid ? " (fork child of " : "",
      parent_pid, parent_pid ? ")" : "", (unsigned long long)(up / 1000), (unsigned long long)(up % 1000));
  put(&o, "  coroutine-threads   made %llu, peak alive %llu\n",
      (unsigned long long)atomic_load(&ch_stats.threads_made), (unsigned long long)atomic_load(&ch_stats.threads_peak));
  int now_threads = ch_os_threads(), workers = ch_worker_count(), mon = ch_monitor_running();
  int ms = ch_handoff_threads();
  if (ms < workers) ms = workers; /* handoff off: the workers' own threads, uncounted */
  uint64_t peak = atomic_load(&ch_stats.os_threads_peak);
  if ((uint64_t)now_threads > peak) peak = (uint64_t)now_threads;
  int spawner = ch_handoff_spawner(), own = now_threads - ms - mon - spawner;
  put(&o, "  os threads          peak %llu; at exit %d (%d running the %d worker schedulers or spare, %d monitor, "
          "%d spawner, %d the program's own)\n",
      (unsigned long long)peak, now_threads, ms, workers, mon, spawner, own > 0 ? own : 0);
  put(&o, "  schedulers          %zu (workers, and threads of the program that blocked in a hooked call)\n",
      nsched);
  put(&o, "  switches            %llu\n", (unsigned long long)switches);
  put(&o, "  blocking calls      %10s %10s\n", "calls", "waited");
  uint64_t tc = 0, tw = 0;
  for (int f = 0; f < CH_FAM_N; f++) {
    put(&o, "    %-17s %10llu %10llu   (%s)\n", fam_names[f], (unsigned long long)sum.calls[f],
        (unsigned long long)sum.waits[f], fam_what[f]);
    tc += sum.calls[f], tw += sum.waits[f];
  }
  put(&o, "    %-17s %10llu %10llu\n", "total", (unsigned long long)tc, (unsigned long long)tw);
  uint64_t smax = atomic_load(&ch_stats.stall_max_ns) / 1000000u;
  put(&o, "  stalls              %llu over %llu us; longest run without a switch %llu ms%s\n",
      (unsigned long long)atomic_load(&ch_stats.stalls), (unsigned long long)(ch_config.handoff_ns / 1000),
      (unsigned long long)smax, mon ? " (sampled every 1 ms)" : " (not watched: no monitor)");
  put(&o, "  handoffs, steals    %llu, %llu (spare OS threads made: %llu)\n",
      (unsigned long long)atomic_load(&ch_stats.handoffs), (unsigned long long)atomic_load(&ch_stats.steals),
      (unsigned long long)atomic_load(&ch_stats.spares_made));
  put(&o, "  deepest stack use   %llu KiB; threads' default stack %zu KiB (stacks given back; depth seen "
          "where they blocked)\n",
      (unsigned long long)((sum.stack_peak + 1023) / 1024), ch_stack_thread_default() / 1024);
  put(&o, "  timers, peak        %llu (most deadlines armed at once on one scheduler)\n",
      (unsigned long long)sum.timers_peak);
  put(&o, "  fd watchers         %llu (one per fd number a scheduler waited on)\n",
      (unsigned long long)sum.fd_watchers);

  if (ch_config.stats == CH_STATS_FILE) {
    long fd = ch_sys4(SYS_openat, AT_FDCWD, ch_config.stats_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) {
      for (size_t off = 0; off < o.len;) {
        long w = ch_sys(SYS_write, fd, o.buf + off, o.len - off);
        if (w == -EINTR) continue;
        if (w <= 0) break;
        off += (size_t)w;
      }
      ch_sys(SYS_close, fd, 0, 0);
      return;
    }
    /* It could be opened at start: say where the numbers went instead. */
    static const char msg[] = "cohook: COHOOK_STATS file cannot be opened at exit; the stats follow on stderr\n";
    ch_write_err(msg, sizeof msg - 1);
  }
  ch_write_err(o.buf, o.len);
}

/* At exit, once: a destructor of the library runs after the program's own atexit handlers and
 * destructors, so the counts are final (but for threads exit() leaves running). */
__attribute__((destructor)) static void stats_at_exit(void) {
  if (!ch_config.stats) return;
  if (ch_getpid() != ch_process_pid) return; /* a vfork() child: its memory is its parent's */
  if (atomic_exchange(&reported, 1)) return;
  ch_tls_bypass++; /* nothing in here may park, whatever thread calls exit() */
  report();
  ch_tls_bypass--;
}
