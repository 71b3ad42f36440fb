/*
 * monitor.c — one OS thread per process that watches the workers, after Go's sysmon: stall reports
 * (COHOOK_LOG), the scheduler trace (COHOOK_TRACE), and the samples COHOOK_STATS reports (longest
 * stall, peak OS threads).
 *
 * Started by the first scheduler (ch_stats_sched_add), only if one of those knobs asks for it, and
 * again in a fork() child the same way. It is no scheduler and is never hooked: it calls nothing the
 * preload exports (raw system calls, static buffers, the runtime's own allocator), keeps every signal
 * blocked, and runs with ch_tls_bypass raised, so even a stray hooked call would go straight to libc.
 *
 * Stall detection reads two counters each worker keeps for nothing else's sake: nswitch (bumped on
 * every switch) and st.npoll (odd while the worker sits in its event loop's poll). A worker whose
 * counters stayed the same across samples spanning more than COHOOK_HANDOFF_US, while not in its poll,
 * has been running one coroutine all that time: a stall. No clock is read on the switch path; the
 * monitor reads the clock, once per sample. It samples every millisecond while a worker has not
 * switched since the last look, backs off to 4 ms while all busy workers keep switching, and to 20 ms
 * while all sit in their polls, so an idle program costs it a wake-up every 20 ms.
 *
 * The same samples drive the handoff (handoff.c): see sample().
 *
 * A stall report says what the stuck coroutine is doing, from /proc/self/task/TID/syscall:
 *   - in a system call the hooks do not emulate: its name, and its frames from the pc and a bounded
 *     scan of the coroutine's stack from the saved sp for words that are return addresses (point into
 *     an executable mapping, just after a call instruction) — a heuristic, and the thread is never
 *     disturbed: a signal would make its call fail with EINTR where natively it would not;
 *   - running (computing, or spinning): its frames from backtrace(), taken on the worker itself by a
 *     SIGURG the monitor sends it. SIGURG, as Go's preemption uses: ignored by default, and sent by
 *     the kernel only for out-of-band data on sockets that asked for it (F_SETOWN). The handler is
 *     installed only with COHOOK_LOG set and only if the program has none; if the program installs
 *     its own later, the monitor sees that and reports without frames.
 * Frames are named from the ELF symbol tables of the mapped files (.symtab, else .dynsym), read by the
 * monitor itself: static functions of an unstripped program get their names too, and no loader lock
 * is ever taken (dladdr takes one, which a thread inside dlopen may hold).
 *
 * Memory: static buffers and raw mmap of the ELF files only. Two things allocate through glibc, both
 * once and on the monitor's own thread with ch_tls_bypass raised (so an allocator lock it meets waits
 * natively): making the thread itself (glibc's pthread_create, as for the workers) and the warm-up
 * call of backtrace(), whose first call dlopens libgcc_s — done there so that the signal handler
 * never does it.
 */
#include <elf.h>
#include <execinfo.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <ucontext.h>

#include "internal.h"
#include "sys.h"

#define CH_MON_BUSY_NS 1000000ull      /* sample period while any worker runs something */
#define CH_MON_IDLE_NS 20000000ull     /* the most it backs off to while all workers are idle */
#define CH_MON_HEALTHY_NS 4000000ull   /* ... while all busy workers keep switching */
#define CH_MON_THREADS_NS 100000000ull /* OS thread count sampled this often (COHOOK_STATS) */
#define CH_MON_WORKERS 1024            /* COHOOK_WORKERS' maximum */
#define CH_PROBE_FRAMES 64
#define CH_SCAN_BYTES (32u * 1024u)    /* of a stuck coroutine's stack, from its sp */
#define CH_RATE_PER_S 5                /* warn: stall lines per second at most, all workers together */

/* Per worker, the monitor's own view (only the monitor thread touches it). Invariant: while valid,
 * (sw, poll) are the counters as last seen and `since` the first sample that saw them. */
struct wstate {
  uint64_t sw, since, trace_sw;
  uint64_t cpu; /* the worker thread's CPU time at `since` (when it was not in its poll) */
  uint32_t poll;
  bool valid, reported;
};
static struct wstate ws[CH_MON_WORKERS];
static _Atomic int started; /* 0 not yet, 1 running (or being started) in this process */
static _Atomic bool handoff_on; /* workers run: watch them for handoffs (ch_monitor_start_handoff) */
static bool stall_watch;        /* COHOOK_LOG or COHOOK_STATS: stalls are reported or counted */
static int probe_sig;       /* SIGURG once our handler is installed, else 0 */

/* One backtrace request at a time (the monitor's). tid: the worker asked (the monitor sets it), -1
 * once its handler has claimed the request, 0 when there is none. */
static struct {
  _Atomic int tid;
  _Atomic int done;
  int n;
  uintptr_t pc;
  void *frames[CH_PROBE_FRAMES];
} probe;

/* ---- small raw-syscall helpers ------------------------------------------------------------------------ */

static void nap(uint64_t ns) {
  struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u), .tv_nsec = (long)(ns % 1000000000u)};
  ch_sys(SYS_nanosleep, &ts, NULL, 0);
}

/* Read a whole small file into buf (NUL-terminated); bytes read or -errno. */
static long read_small(const char *path, char *buf, size_t n) {
  long fd = ch_sys4(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) return fd;
  size_t got = 0;
  while (got < n - 1) {
    long r = ch_sys(SYS_read, fd, buf + got, n - 1 - got);
    if (r == -EINTR) continue;
    if (r <= 0) break;
    got += (size_t)r;
  }
  ch_sys(SYS_close, fd, 0, 0);
  buf[got] = 0;
  return (long)got;
}

/* Copy n bytes from our own address space at src, or fail (-EFAULT) where it is not mapped: the
 * monitor reads memory another thread may unmap at any moment (a coroutine's stack). */
static bool safe_read(void *dst, const void *src, size_t n) {
  struct iovec l = {dst, n}, r = {(void *)src, n};
  return ch_sys6(SYS_process_vm_readv, ch_getpid(), (long)&l, 1, (long)&r, 1, 0) == (long)n;
}

struct line {
  char buf[1024];
  size_t len;
};

static void add(struct line *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(struct line *o, const char *fmt, ...) {
  if (o->len >= sizeof o->buf - 1) return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(o->buf + o->len, sizeof o->buf - o->len, fmt, ap);
  va_end(ap);
  if (n > 0) o->len += (size_t)n < sizeof o->buf - o->len ? (size_t)n : sizeof o->buf - 1 - o->len;
}

static void emit(struct line *o) {
  if (o->len >= sizeof o->buf - 1) o->len = sizeof o->buf - 2;
  o->buf[o->len++] = '\n';
  ch_write_err(o->buf, o->len);
}

int ch_os_threads(void) {
  char buf[1024];
  if (read_small("/proc/self/stat", buf, sizeof buf) <= 0) return 0;
  const char *p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
  if (!p) return 0;
  /* After ")": state is field 3; num_threads is field 20. */
  for (int field = 2; *p && field < 20; p++)
    if (*p == ' ') field++;
  int n = 0;
  while (*p >= '0' && *p <= '9') n = n * 10 + (*p++ - '0');
  return n;
}

int ch_monitor_running(void) { return atomic_load_explicit(&started, memory_order_relaxed); }

/* ---- syscall names ---------------------------------------------------------------------------------- */

static const struct {
  long nr;
  const char *name;
} sysnames[] = {
    {SYS_read, "read"}, {SYS_write, "write"}, {SYS_close, "close"}, {SYS_openat, "openat"},
    {SYS_readv, "readv"}, {SYS_writev, "writev"}, {SYS_pread64, "pread64"}, {SYS_pwrite64, "pwrite64"},
    {SYS_preadv2, "preadv2"}, {SYS_pwritev2, "pwritev2"}, {SYS_ppoll, "ppoll"}, {SYS_pselect6, "pselect6"},
    {SYS_epoll_pwait, "epoll_pwait"}, {SYS_nanosleep, "nanosleep"}, {SYS_clock_nanosleep, "clock_nanosleep"},
    {SYS_futex, "futex"}, {SYS_wait4, "wait4"}, {SYS_waitid, "waitid"}, {SYS_accept, "accept"},
    {SYS_accept4, "accept4"}, {SYS_connect, "connect"}, {SYS_recvfrom, "recvfrom"}, {SYS_sendto, "sendto"},
    {SYS_recvmsg, "recvmsg"}, {SYS_sendmsg, "sendmsg"}, {SYS_recvmmsg, "recvmmsg"}, {SYS_sendmmsg, "sendmmsg"},
    {SYS_fsync, "fsync"}, {SYS_fdatasync, "fdatasync"}, {SYS_flock, "flock"}, {SYS_fcntl, "fcntl"},
    {SYS_ioctl, "ioctl"}, {SYS_msgrcv, "msgrcv"}, {SYS_msgsnd, "msgsnd"}, {SYS_semtimedop, "semtimedop"},
    {SYS_rt_sigsuspend, "rt_sigsuspend"}, {SYS_rt_sigtimedwait, "rt_sigtimedwait"},
    {SYS_sched_yield, "sched_yield"}, {SYS_getrandom, "getrandom"}, {SYS_io_getevents, "io_getevents"},
    {SYS_io_uring_enter, "io_uring_enter"}, {SYS_mmap, "mmap"}, {SYS_munmap, "munmap"},
    {SYS_splice, "splice"}, {SYS_sendfile, "sendfile"}, {SYS_copy_file_range, "copy_file_range"},
    {SYS_mq_timedreceive, "mq_timedreceive"}, {SYS_mq_timedsend, "mq_timedsend"},
#ifdef SYS_poll
    {SYS_poll, "poll"},
#endif
#ifdef SYS_select
    {SYS_select, "select"},
#endif
#ifdef SYS_epoll_wait
    {SYS_epoll_wait, "epoll_wait"},
#endif
#ifdef SYS_pause
    {SYS_pause, "pause"},
#endif
#ifdef SYS_open
    {SYS_open, "open"},
#endif
#ifdef SYS_semop
    {SYS_semop, "semop"},
#endif
#ifdef SYS_epoll_pwait2
    {SYS_epoll_pwait2, "epoll_pwait2"},
#endif
#ifdef SYS_futex_waitv
    {SYS_futex_waitv, "futex_waitv"},
#endif
};

static const char *sysname(long nr, char tmp[32]) {
  for (size_t i = 0; i < sizeof sysnames / sizeof *sysnames; i++)
    if (sysnames[i].nr == nr) return sysnames[i].name;
  snprintf(tmp, 32, "syscall %ld", nr);
  return tmp;
}

/* ---- mappings and ELF symbols ----------------------------------------------------------------------- */

/* The mappings a frame can be named from: executable ones, and the offset-0 one of each file (where
 * it is loaded: its ELF header). Only the monitor touches these. */
struct xmap {
  uintptr_t lo, hi, off;
  bool x, r;
  char path[200];
};
static struct xmap maps[256];
static int nmaps;

static uintptr_t hex(const char **p) {
  uintptr_t v = 0;
  for (;; (*p)++) {
    char c = **p;
    unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0') : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10) : 16u;
    if (d == 16) return v;
    v = v * 16 + d;
  }
}

static void map_line(const char *l) {
  /* lo-hi perms offset dev inode path */
  const char *p = l;
  struct xmap m;
  m.lo = hex(&p);
  if (*p++ != '-') return;
  m.hi = hex(&p);
  if (*p++ != ' ' || strlen(p) < 5) return;
  m.r = p[0] == 'r', m.x = p[2] == 'x';
  p += 5;
  m.off = hex(&p);
  for (int sp = 0; *p && sp < 3; p++) /* past offset, dev, inode */
    if (*p == ' ' && p[1] != ' ') sp++;
  while (*p == ' ') p++;
  if ((!m.x && m.off != 0) || nmaps == (int)(sizeof maps / sizeof *maps)) return;
  size_t n = strlen(p);
  if (n >= sizeof m.path) n = sizeof m.path - 1;
  memcpy(m.path, p, n);
  m.path[n] = 0;
  if (!m.path[0] && !m.x) return;
  maps[nmaps++] = m;
}

/* /proc/self/maps may be megabytes (two lines per guarded coroutine stack): streamed, not slurped. */
static void load_maps(void) {
  static char buf[65536];
  nmaps = 0;
  long fd = ch_sys4(SYS_openat, AT_FDCWD, "/proc/self/maps", O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) return;
  size_t have = 0;
  for (;;) {
    long r = ch_sys(SYS_read, fd, buf + have, sizeof buf - 1 - have);
    if (r == -EINTR) continue;
    if (r <= 0) break;
    have += (size_t)r;
    buf[have] = 0;
    char *line = buf, *nl;
    while ((nl = strchr(line, '\n'))) {
      *nl = 0;
      map_line(line);
      line = nl + 1;
    }
    have = (size_t)(buf + have - line);
    memmove(buf, line, have);
    if (have == sizeof buf - 1) have = 0; /* a line longer than the buffer: drop it */
  }
  ch_sys(SYS_close, fd, 0, 0);
}

static const struct xmap *exec_map_of(uintptr_t a) {
  for (int i = 0; i < nmaps; i++)
    if (maps[i].x && a >= maps[i].lo && a < maps[i].hi) return &maps[i];
  return NULL;
}

struct elf_file {
  char path[200];
  const unsigned char *p; /* the whole file, mapped read-only; NULL if it could not be */
  size_t len;
};
static struct elf_file files[8];
static int nfiles;

static const struct elf_file *elf_get(const char *path) {
  for (int i = 0; i < nfiles; i++)
    if (strcmp(files[i].path, path) == 0) return &files[i];
  if (nfiles == (int)(sizeof files / sizeof *files)) return NULL;
  struct elf_file *f = &files[nfiles++];
  memset(f, 0, sizeof *f);
  size_t n = strlen(path); /* a longer path is cut short: it then only misses the cache */
  memcpy(f->path, path, n < sizeof f->path ? n : sizeof f->path - 1);
  if (path[0] != '/') return f;
  long fd = ch_sys4(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) return f;
  struct stat st;
  if (ch_sys(SYS_fstat, fd, &st, 0) == 0 && st.st_size >= (off_t)sizeof(Elf64_Ehdr)) {
    void *m = ch_mmap(NULL, (unsigned long)st.st_size, PROT_READ, MAP_PRIVATE, (int)fd, 0);
    if (m != MAP_FAILED) f->p = m, f->len = (size_t)st.st_size;
  }
  ch_sys(SYS_close, fd, 0, 0);
  return f;
}

static void elf_release(void) {
  for (int i = 0; i < nfiles; i++)
    if (files[i].p) ch_munmap(files[i].p, files[i].len);
  nfiles = 0;
}

static bool within(const struct elf_file *f, uint64_t off, uint64_t n) {
  return off <= f->len && n <= f->len - off;
}

/* The function of symbol table `type` in f that contains file address v; its name and v's offset. */
static const char *elf_lookup(const struct elf_file *f, unsigned type, uint64_t v, uint64_t *off) {
  const Elf64_Ehdr *eh = (const void *)f->p;
  if (!within(f, eh->e_shoff, (uint64_t)eh->e_shnum * sizeof(Elf64_Shdr))) return NULL;
  const Elf64_Shdr *sh = (const void *)(f->p + eh->e_shoff);
  for (unsigned i = 0; i < eh->e_shnum; i++) {
    if (sh[i].sh_type != type || sh[i].sh_link >= eh->e_shnum || !within(f, sh[i].sh_offset, sh[i].sh_size))
      continue;
    const Elf64_Shdr *strs = &sh[sh[i].sh_link];
    if (!within(f, strs->sh_offset, strs->sh_size)) continue;
    const Elf64_Sym *sym = (const void *)(f->p + sh[i].sh_offset);
    size_t n = sh[i].sh_size / sizeof *sym;
    for (size_t k = 0; k < n; k++) {
      unsigned t = ELF64_ST_TYPE(sym[k].st_info);
      if ((t != STT_FUNC && t != STT_GNU_IFUNC) || sym[k].st_shndx == SHN_UNDEF) continue;
      if (v < sym[k].st_value || v - sym[k].st_value >= (sym[k].st_size ? sym[k].st_size : 1)) continue;
      if (sym[k].st_name >= strs->sh_size) continue;
      *off = v - sym[k].st_value;
      const char *name = (const char *)f->p + strs->sh_offset + sym[k].st_name;
      if (!memchr(name, 0, strs->sh_size - sym[k].st_name)) continue;
      return name;
    }
  }
  return NULL;
}

/* "name+0xoff (module)" for a code address; `ret`: a return address (named by the call before it). */
static void name_frame(struct line *o, uintptr_t a, bool ret) {
  const struct xmap *m = exec_map_of(a);
  if (!m) {
    add(o, "%#lx", (unsigned long)a);
    return;
  }
  const char *base = strrchr(m->path, '/');
  base = base ? base + 1 : m->path;
  if (m->path[0] != '/') { /* [vdso] and friends */
    add(o, "%s+%#lx", m->path[0] ? m->path : "?", (unsigned long)(a - m->lo));
    return;
  }
  /* The file's load address: where its offset-0 mapping (its ELF header) is. */
  uintptr_t load = 0;
  for (int i = 0; i < nmaps; i++)
    if (maps[i].off == 0 && strcmp(maps[i].path, m->path) == 0 && maps[i].lo <= m->lo) load = maps[i].lo;
  const struct elf_file *f = elf_get(m->path);
  const char *name = NULL;
  uint64_t off = 0;
  if (f && f->p && load && f->len >= sizeof(Elf64_Ehdr) && memcmp(f->p, ELFMAG, SELFMAG) == 0 &&
      f->p[EI_CLASS] == ELFCLASS64) {
    const Elf64_Ehdr *eh = (const void *)f->p;
    /* bias = load - the first PT_LOAD's page-aligned address (0 for a PIE or a library, the link
     * address for a fixed-address executable). */
    uint64_t first = 0;
    if (within(f, eh->e_phoff, (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr))) {
      const Elf64_Phdr *ph = (const void *)(f->p + eh->e_phoff);
      for (unsigned i = 0; i < eh->e_phnum; i++)
        if (ph[i].p_type == PT_LOAD) {
          first = ph[i].p_vaddr & ~(uint64_t)(getauxval(AT_PAGESZ) - 1);
          break;
        }
    }
    uint64_t v = (uint64_t)a - (load - first) - (ret ? 1 : 0);
    name = elf_lookup(f, SHT_SYMTAB, v, &off);
    if (!name) name = elf_lookup(f, SHT_DYNSYM, v, &off);
    off += ret ? 1 : 0;
  }
  if (name) add(o, "%s+%#lx (%s)", name, (unsigned long)off, base);
  else add(o, "%s+%#lx", base, (unsigned long)(a - (load ? load : m->lo)));
}

/* Is a a return address: in an executable mapping, just after a call instruction? */
static bool after_call(uintptr_t a) {
  const struct xmap *m = exec_map_of(a);
  if (!m || !m->r || a < m->lo + 8) return false;
  const unsigned char *c = (const unsigned char *)a;
#if defined(__x86_64__)
  if (c[-5] == 0xe8) return true; /* call rel32 */
  for (int k = 2; k <= 7; k++)    /* call r/m64: FF /2, with ModRM, SIB, displacement, REX */
    if (c[-k] == 0xff && ((c[-k + 1] >> 3) & 7) == 2) return true;
  return false;
#elif defined(__aarch64__)
  uint32_t insn;
  memcpy(&insn, c - 4, 4);
  return (insn & 0xfc000000u) == 0x94000000u /* bl */ || (insn & 0xfffffc1fu) == 0xd63f0000u /* blr */;
#endif
}

/* ---- taking a running worker's backtrace -------------------------------------------------------------- */

static void probe_handler(int sig, siginfo_t *si, void *ucv) {
  (void)sig;
  int self = ch_gettid(), want = self;
  /* Not a request of ours (SIGURG for out-of-band data): SIGURG's default is to ignore it. */
  if (!si || si->si_code != SI_TKILL || !atomic_compare_exchange_strong(&probe.tid, &want, -1)) return;
  int saved = errno;
  ucontext_t *uc = ucv;
#if defined(__x86_64__)
  probe.pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
  probe.pc = (uintptr_t)uc->uc_mcontext.pc;
#endif
  probe.n = backtrace(probe.frames, CH_PROBE_FRAMES);
  atomic_store_explicit(&probe.done, 1, memory_order_release);
  errno = saved;
}

void ch_monitor_init_probe(void) {
  struct sigaction old, sa;
  if (ch_plat()->sigaction(SIGURG, NULL, &old) != 0) return;
  if ((old.sa_flags & SA_SIGINFO) || (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN)) return;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = probe_handler;
  sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  if (ch_plat()->sigaction(SIGURG, &sa, NULL) == 0) probe_sig = SIGURG;
}

int ch_monitor_probe_signal(void) { return probe_sig; }

/* Frames of the coroutine running on tid, taken there by our handler; how many, or -1. */
static int probe_frames(int tid, uintptr_t *out, int max) {
  if (!probe_sig) return -1;
  struct sigaction cur; /* the program may have installed a SIGURG handler of its own since */
  if (ch_plat()->sigaction(SIGURG, NULL, &cur) != 0 || cur.sa_sigaction != probe_handler) return -1;
  atomic_store(&probe.done, 0);
  probe.n = 0;
  atomic_store(&probe.tid, tid);
  if (ch_sys(SYS_tgkill, ch_getpid(), tid, SIGURG) < 0) {
    atomic_store(&probe.tid, 0);
    return -1;
  }
  for (int i = 0; i < 250 && !atomic_load_explicit(&probe.done, memory_order_acquire); i++) nap(200000);
  int t = tid;
  if (atomic_compare_exchange_strong(&probe.tid, &t, 0)) return -1; /* never ran (signal blocked) */
  /* Claimed by the handler: it finishes soon, it only unwinds. */
  for (int i = 0; i < 5000 && !atomic_load_explicit(&probe.done, memory_order_acquire); i++) nap(200000);
  if (!atomic_load_explicit(&probe.done, memory_order_acquire)) return -1; /* leave tid claimed: the
                                                                            handler still owns it */
  atomic_store(&probe.tid, 0);
  /* Start at the interrupted pc: what comes before it is the handler and the signal trampoline. */
  int from = 0;
  for (int i = 0; i < probe.n; i++)
    if ((uintptr_t)probe.frames[i] == probe.pc) {
      from = i;
      break;
    }
  int n = 0;
  for (int i = from; i < probe.n && n < max; i++) out[n++] = (uintptr_t)probe.frames[i];
  return n;
}

/* ---- stall reports ---------------------------------------------------------------------------------- */

static uint64_t rate_at;  /* when rate_tokens was last refilled */
static uint64_t rate_tokens = CH_RATE_PER_S;
static unsigned suppressed;

/* warn: a token bucket of CH_RATE_PER_S lines a second for all workers together; debug: no limit. */
static bool rate_ok(uint64_t now) {
  if (ch_config.log >= CH_LOG_DEBUG) return true;
  const uint64_t per = 1000000000u / CH_RATE_PER_S;
  if (now - rate_at >= per) {
    uint64_t more = (now - rate_at) / per;
    rate_tokens = rate_tokens + more > CH_RATE_PER_S ? CH_RATE_PER_S : rate_tokens + more;
    rate_at = now;
  }
  if (rate_tokens == 0) return false;
  rate_tokens--;
  return true;
}

/* The CPU time thread tid has used (ns), from the kernel's per-thread CPU clock; UINT64_MAX if
 * unknown. A system call, but only for workers that run something, once per sample. */
static uint64_t thread_cpu_ns(int tid) {
  struct timespec ts;
  clockid_t clk = (clockid_t)(((unsigned)~tid << 3) | 6u); /* CPUCLOCK_PERTHREAD | CPUCLOCK_SCHED */
  if (ch_sys(SYS_clock_gettime, clk, &ts, 0) != 0) return UINT64_MAX;
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Whether task tid sleeps in the kernel (state S or D in /proc/self/task/TID/stat): blocked in a
 * system call, not computing and not waiting for a CPU. */
static bool task_asleep(int tid) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
  if (read_small(path, buf, sizeof buf) <= 0) return false;
  const char *p = strrchr(buf, ')'); /* the name may hold anything, ')' included: the last one */
  return p && p[1] == ' ' && (p[2] == 'S' || p[2] == 'D');
}

/* What the kernel says task tid is doing: /proc/self/task/TID/syscall ("running", "nr args sp pc",
 * or "-1 sp pc"); false if it cannot be read. */
static bool task_syscall(int tid, char *sc, size_t n) {
  char path[64];
  snprintf(path, sizeof path, "/proc/self/task/%d/syscall", tid);
  return read_small(path, sc, n) > 0;
}

/* One line about worker wi, whose coroutine has not switched for `d` ns (counters sw as sampled);
 * sc: what task_syscall said. */
static void report(int wi, struct ch_sched *s, uint64_t sw, uint64_t d, uint64_t now, const char *sc) {
  if (!rate_ok(now)) {
    suppressed++;
    return;
  }
  int maxf = ch_config.log >= CH_LOG_DEBUG ? 24 : 6;
  ch_coro *cur = __atomic_load_n(&s->current, __ATOMIC_RELAXED);
  ch_coro co;
  bool is_coro = cur != &s->main && cur != &s->zombie && safe_read(&co, cur, sizeof co) &&
                 co.magic == CH_CORO_MAGIC;
  char tmp[32];
  long got = sc[0] ? 1 : 0;
  load_maps();
  uintptr_t frames[32];
  int nf = 0;
  const char *doing;
  char what[96];
  if (got > 0 && strncmp(sc, "running", 7) != 0) {
    /* "nr arg1..arg6 sp pc", or "-1 sp pc" when in the kernel but not in a system call. */
    const char *p = sc;
    bool neg = *p == '-';
    if (neg) p++;
    long nr = 0;
    while (*p >= '0' && *p <= '9') nr = nr * 10 + (*p++ - '0');
    uintptr_t v[8];
    int nv = 0;
    while (*p && nv < 8) {
      while (*p == ' ') p++;
      if (p[0] == '0' && p[1] == 'x') p += 2;
      if (!*p || *p == '\n') break;
      v[nv++] = hex(&p);
    }
    uintptr_t sp = nv >= 2 ? v[nv - 2] : 0, pc = nv >= 2 ? v[nv - 1] : 0;
    if (neg) snprintf(what, sizeof what, "in the kernel (not in a system call)");
    else snprintf(what, sizeof what, "in system call %s (not hooked: it blocks the worker)", sysname(nr, tmp));
    doing = what;
    if (pc) frames[nf++] = pc;
    /* The frames above: return addresses on the coroutine's stack, from sp up. */
    if (sp && is_coro && co.stack.lo && sp >= (uintptr_t)co.stack.lo && sp < (uintptr_t)co.stack.lo + co.stack.size) {
      static uintptr_t words[CH_SCAN_BYTES / sizeof(uintptr_t)];
      size_t len = (uintptr_t)co.stack.lo + co.stack.size - sp;
      if (len > sizeof words) len = sizeof words;
      len &= ~(sizeof(uintptr_t) - 1);
      if (safe_read(words, (void *)sp, len))
        for (size_t i = 0; i < len / sizeof *words && nf < maxf; i++)
          if (words[i] != pc && after_call(words[i])) frames[nf++] = words[i];
    }
  } else {
    doing = "running";
    nf = probe_frames(s->tid, frames, maxf);
    if (nf < 0) {
      nf = 0;
      doing = "running (no frames: SIGURG is the program's, or blocked on that worker)";
    }
  }
  /* It may have moved on while we looked: then this is no stall, and nothing is said. */
  if (__atomic_load_n(&s->nswitch, __ATOMIC_RELAXED) != sw) {
    elf_release();
    return;
  }
  struct line o = {.len = 0};
  add(&o, "cohook: stall: worker %d (tid %d) has run ", wi, s->tid);
  if (is_coro) {
    co.name[sizeof co.name - 1] = 0;
    add(&o, "%s %llu", co.is_thread ? "thread" : "coroutine", (unsigned long long)co.id);
    if (co.name[0]) add(&o, " \"%s\"", co.name);
  } else {
    add(&o, "its own scheduler code");
  }
  add(&o, " for %llu ms without a switch (COHOOK_HANDOFF_US=%llu): %s", (unsigned long long)(d / 1000000u),
      (unsigned long long)(ch_config.handoff_ns / 1000u), doing);
  for (int i = 0; i < nf && i < maxf; i++) {
    add(&o, i ? " < " : "; at ");
    name_frame(&o, frames[i], i > 0);
  }
  if (suppressed) add(&o, " (%u earlier stall reports suppressed)", suppressed);
  suppressed = 0;
  emit(&o);
  elf_release();
}

/* One sample of every worker; whether any was busy (running something, not idle in its poll). */
enum { MON_IDLE = 0, MON_BUSY = 1, MON_STUCK = 2 };
static int sample(uint64_t now) {
  int busy = MON_IDLE;
  int n = ch_worker_count();
  if (n > CH_MON_WORKERS) n = CH_MON_WORKERS;
  for (int i = 0; i < n; i++) {
    struct ch_sched *s = ch_worker_sched(i);
    if (!s) continue;
    uint64_t sw = __atomic_load_n(&s->nswitch, __ATOMIC_RELAXED);
    uint32_t poll = (uint32_t)__atomic_load_n(&s->st.npoll, __ATOMIC_RELAXED);
    struct wstate *w = &ws[i];
    if (!w->valid || sw != w->sw || poll != w->poll) {
      if (w->valid && !(w->poll & 1)) { /* a run without a switch ended: how long was it? */
        uint64_t d = now - w->since;
        uint64_t max = atomic_load_explicit(&ch_stats.stall_max_ns, memory_order_relaxed);
        if (d > max) atomic_store_explicit(&ch_stats.stall_max_ns, d, memory_order_relaxed);
        if (w->reported && ch_config.log >= CH_LOG_DEBUG) {
          struct line o = {.len = 0};
          add(&o, "cohook: stall: worker %d (tid %d) switched again after about %llu ms", i, s->tid,
              (unsigned long long)(d / 1000000u));
          emit(&o);
        }
      }
      *w = (struct wstate){.sw = sw, .poll = poll, .since = now, .trace_sw = w->trace_sw, .valid = true};
      if (!(poll & 1)) {
        if (busy == MON_IDLE) busy = MON_BUSY;
        /* The worker's CPU time, for the stall reports' "the kernel did not run it" test: a system
         * call per busy worker per sample, only when stalls are reported or counted. */
        w->cpu = stall_watch ? thread_cpu_ns(s->tid) : UINT64_MAX;
      }
      continue;
    }
    if (poll & 1) continue; /* idle in its poll all along */
    busy = MON_STUCK;
    uint64_t d = now - w->since;
    /* Kept 2 ms with others waiting: ask it to yield at its next hooked I/O call (ch_io_fd). A
     * coroutine that never makes one is handed off at the threshold below. */
    if (d >= 2 * CH_MON_BUSY_NS && atomic_load_explicit(&handoff_on, memory_order_relaxed) &&
        !atomic_load_explicit(&s->preempt, memory_order_relaxed) && ch_handoff_worth(s))
      atomic_store_explicit(&s->preempt, 1, memory_order_relaxed);
    if (d <= ch_config.handoff_ns) {
      /* Asleep in the kernel (a system call the hooks do not emulate: an fsync, io_uring_enter, a raw
       * futex wait) across two samples: its scheduler goes to a spare OS thread now, as Go's sysmon
       * retakes a P in a system call after one tick; a computation gets the whole threshold. */
      if (d >= CH_MON_BUSY_NS && atomic_load_explicit(&handoff_on, memory_order_relaxed) && ch_handoff_worth(s) &&
          task_asleep(s->tid)) {
        /* Reported as a stall all the same (COHOOK_LOG): the call it blocks in is worth knowing. */
        if (!w->reported && ch_config.log >= CH_LOG_WARN) {
          char sc[256] = "";
          task_syscall(s->tid, sc, sizeof sc);
          w->reported = true;
          atomic_fetch_add_explicit(&ch_stats.stalls, 1, memory_order_relaxed);
          report(i, s, sw, d, now, sc);
        }
        if (ch_handoff_try(s)) w->valid = false;
      }
      continue;
    }
    if (!w->reported) {
      char sc[256] = "";
      task_syscall(s->tid, sc, sizeof sc);
      /* "Running", yet the worker used under half the time on a CPU: the kernel did not run it (a
       * machine with more runnable threads than CPUs), no coroutine kept it: no report. (A thread
       * asleep in a system call uses no CPU either; that one is a stall.) */
      uint64_t cpu = thread_cpu_ns(s->tid);
      if (!(strncmp(sc, "running", 7) == 0 && cpu != UINT64_MAX && w->cpu != UINT64_MAX && 2 * (cpu - w->cpu) < d)) {
        w->reported = true;
        atomic_fetch_add_explicit(&ch_stats.stalls, 1, memory_order_relaxed);
        if (ch_config.log >= CH_LOG_WARN) report(i, s, sw, d, now, sc);
      }
    }
    /* Stuck past the threshold with other work waiting: the scheduler goes to a spare OS thread
     * (handoff.c) — also when the kernel is what delays the stuck one: the others then get their
     * own time slices, as natively. Its counters start afresh there. */
    if (atomic_load_explicit(&handoff_on, memory_order_relaxed) && ch_handoff_try(s)) {
      uint64_t max = atomic_load_explicit(&ch_stats.stall_max_ns, memory_order_relaxed);
      if (d > max) atomic_store_explicit(&ch_stats.stall_max_ns, d, memory_order_relaxed);
      if (ch_config.log >= CH_LOG_DEBUG) {
        struct line o = {.len = 0};
        add(&o, "cohook: handoff: worker %d's scheduler went to another OS thread after %llu ms (tid %d kept the "
                "stuck thread)", i, (unsigned long long)(d / 1000000u), s->tid);
        emit(&o);
      }
      w->valid = false;
    }
  }
  return busy;
}

/* ---- the trace ---------------------------------------------------------------------------------------- */

/* One line, Go's schedtrace in spirit: per worker, its run queue, its parked coroutines and the
 * switches since the last line; and the process's OS threads. Read without locks: a snapshot. */
static void trace_line(void) {
  struct line o = {.len = 0};
  int n = ch_worker_count();
  add(&o, "cohook: trace %llums: threads=%d workers=%d", (unsigned long long)(ch_stats_uptime_ns() / 1000000u),
      ch_os_threads(), n);
  if (n > CH_MON_WORKERS) n = CH_MON_WORKERS;
  for (int i = 0; i < n; i++) {
    struct ch_sched *s = ch_worker_sched(i);
    if (!s) continue;
    if (i == 32) {
      add(&o, " ...");
      break;
    }
    uint64_t sw = __atomic_load_n(&s->nswitch, __ATOMIC_RELAXED);
    long runq = (long)(__atomic_load_n(&s->runq_in, __ATOMIC_RELAXED) - __atomic_load_n(&s->runq_out, __ATOMIC_RELAXED));
    long load = atomic_load_explicit(&s->load, memory_order_relaxed);
    ch_coro *cur = __atomic_load_n(&s->current, __ATOMIC_RELAXED);
    /* A coroutine that parks with nothing else ready stays `current` while its worker polls (on its
     * stack, sched.c): in the poll, nothing runs. */
    long running = !(__atomic_load_n(&s->st.npoll, __ATOMIC_RELAXED) & 1) && cur != &s->zombie && cur != &s->main;
    struct ch_m *sm = atomic_load_explicit(&s->m, memory_order_relaxed);
    if (sm && cur == &sm->g0) running = 0; /* its OS thread's own stack: it only schedules */
    long parked = load - runq - running;
    add(&o, " w%d[runq=%ld parked=%ld switches=%llu]", i, runq, parked > 0 ? parked : 0,
        (unsigned long long)(sw - ws[i].trace_sw));
    ws[i].trace_sw = sw;
  }
  emit(&o);
}

/* ---- the thread ------------------------------------------------------------------------------------ */

static void *monitor_main(void *arg) {
  (void)arg;
  sigset_t all;
  sigfillset(&all); /* process-directed signals are the program's threads' business, never ours */
  ch_sys4(SYS_rt_sigprocmask, SIG_BLOCK, &all, NULL, _NSIG / 8);
  char name[16] = "cohook-monitor";
  ch_sys(SYS_prctl, PR_SET_NAME, name, 0);
  ch_tls_bypass = 1;
  if (probe_sig) { /* backtrace's first call loads libgcc_s: here, not in a signal handler */
    void *f[4];
    backtrace(f, 4);
  }
  bool watch_knobs = ch_config.log >= CH_LOG_WARN || ch_config.stats;
  stall_watch = watch_knobs;
  uint64_t trace_ns = (uint64_t)ch_config.trace_ms * 1000000u;
  uint64_t now = ch_now_ns(), period = CH_MON_BUSY_NS;
  /* Trace lines fall on whole multiples of the period since the process started (Go's do too). */
  uint64_t next_trace = trace_ns ? now + trace_ns - ch_stats_uptime_ns() % trace_ns : UINT64_MAX;
  uint64_t next_threads = now;
  for (;;) {
    bool watch = watch_knobs || atomic_load_explicit(&handoff_on, memory_order_relaxed);
    /* Without stall watching, only the trace wakes it (then trace_ns is set: see ch_monitor_start). */
    uint64_t want = watch ? period : UINT64_MAX;
    if (next_trace != UINT64_MAX && (next_trace <= now || next_trace - now < want))
      want = next_trace > now ? next_trace - now : 0;
    if (want) nap(want);
    now = ch_now_ns();
    int busy = watch ? sample(now) : MON_IDLE;
    if (ch_config.stats && now >= next_threads) {
      uint64_t t = (uint64_t)ch_os_threads();
      if (t > atomic_load_explicit(&ch_stats.os_threads_peak, memory_order_relaxed))
        atomic_store_explicit(&ch_stats.os_threads_peak, t, memory_order_relaxed);
      next_threads = now + CH_MON_THREADS_NS;
    }
    if (now >= next_trace) {
      trace_line();
      next_trace += trace_ns;
      if (next_trace <= now) next_trace = now + trace_ns; /* we overslept (a stopped process) */
    }
    /* A worker that did not switch since the last look: every millisecond. Busy ones that all
     * switched: back off, doubling, to CH_MON_HEALTHY_NS (a stall is then seen up to that much later,
     * and the monitor does not take a CPU from busy workers a thousand times a second). All idle in
     * their polls: to CH_MON_IDLE_NS. */
    uint64_t most = busy == MON_BUSY ? CH_MON_HEALTHY_NS : CH_MON_IDLE_NS;
    period = busy == MON_STUCK ? CH_MON_BUSY_NS : 2 * period > most ? most : 2 * period;
  }
  return NULL;
}

void ch_monitor_start(void) {
  if (ch_config.log < CH_LOG_WARN && !ch_config.trace_ms && !ch_config.stats &&
      !atomic_load_explicit(&handoff_on, memory_order_relaxed))
    return;
  if (atomic_load_explicit(&started, memory_order_relaxed)) return;
  /* A vfork() child shares our memory until it execs: a thread started there would be its, and
   * would die with the exec while `started` told the parent it had one. */
  if (ch_getpid() != ch_process_pid) return;
  int expect = 0;
  if (!atomic_compare_exchange_strong(&started, &expect, 1)) return;
  if (ch_os_thread_detached(monitor_main, NULL, 256 * 1024) != 0) {
    atomic_store(&started, 0);
    static const char msg[] = "cohook: cannot start the monitor thread: no stall reports or trace\n";
    ch_write_err(msg, sizeof msg - 1);
  }
}

void ch_monitor_start_handoff(void) {
  atomic_store_explicit(&handoff_on, true, memory_order_relaxed);
  ch_monitor_start();
}

void ch_monitor_after_fork(void) {
  /* The parent's monitor is not in the child: the child's first scheduler starts one of its own. */
  atomic_store(&started, 0);
  atomic_store(&handoff_on, false); /* until the child starts workers of its own */
  memset(ws, 0, sizeof ws);
  atomic_store(&probe.tid, 0);
  atomic_store(&probe.done, 0);
}
