/*
 * offload.c — run a call that can only block (a glibc object with no try-variant, a file lock, the
 * open of a FIFO) on a helper OS thread while the calling coroutine parks, so its worker keeps running
 * the others.
 *
 * One short-lived detached thread per call: this path serves rare calls (process-shared barriers, a
 * contended lock, a FIFO's rendezvous), and a pool would keep threads the program never asked for. If
 * no thread can be made, the call is made in place, blocking the worker — what the program would have
 * done natively. In a vfork() child (which runs on its parent's memory) the call is always made in
 * place: a thread must not be made there.
 *
 * Signals (ch_offload_call). Natively the thread blocked in flock()/fcntl(F_SETLKW)/open() of a FIFO
 * gets EINTR when a handler installed without SA_RESTART runs on it. Here the coroutine is parked and
 * its handler runs on the coroutine (pthread_kill) or on the main thread (a process-directed signal
 * while main waits), which ends the park with EINTR (intr, as for every hooked wait); the helper's
 * syscall must then end too, or the lock would be taken later behind the program's back. So the
 * helper waits with one signal unblocked — a signal whose handler the hook layer installed without
 * SA_RESTART (upcall intr_signal) — and the coroutine sends it that signal with
 * rt_tgsigqueueinfo(), tagged (si_code SI_QUEUE, si_value CH_KICK_TAG) so the hook layer's wrapper
 * recognises the kick and runs no handler. The kernel ends the helper's syscall with EINTR; the
 * coroutine waits for the helper to finish (re-sending the kick every 10 ms, in case it arrived
 * before the syscall started) and returns the helper's own result: EINTR, or success if the lock was
 * granted first (as natively, where the call then returns 0 and the handler runs afterwards). If the
 * program has no such handler when the call starts, nothing can interrupt it natively either, and
 * the coroutine waits uninterruptibly. A process-directed instance of that one signal may be
 * delivered to the helper while it waits: its handler then runs there and the call ends with EINTR,
 * as it would on the native thread blocked in that call.
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "internal.h"
#include "emul.h"
#include "sys.h"

/* ---- the mechanism --------------------------------------------------------------------------------- */

struct job {
  long (*fn)(void *);
  void *arg;
  long result;
  int sig;             /* the signal the helper leaves unblocked while it waits (0: none) */
  ch_lock_t klock;     /* kicks are sent under it; the helper clears tid under it when done */
  int tid;             /* the helper's tid while kicks may reach it, else 0 */
  _Atomic int cancel;  /* kicked before the helper started: do not start */
  _Atomic uint32_t done;
};

/* The tag of a kick (hook/signal.c ignores tagged signals). */
const char ch_kick_tag[1];

static void set_mask(int allow) {
  sigset_t set;
  sigfillset(&set); /* without glibc's own internal signals (SIGCANCEL, SIGSETXID): setxid still works */
  sigdelset(&set, SIGSEGV), sigdelset(&set, SIGBUS), sigdelset(&set, SIGILL);
  sigdelset(&set, SIGFPE), sigdelset(&set, SIGTRAP), sigdelset(&set, SIGSYS);
  if (allow > 0) sigdelset(&set, allow);
  ch_sys4(SYS_rt_sigprocmask, SIG_SETMASK, &set, NULL, _NSIG / 8);
}

static void *runner(void *p) {
  struct job *j = p;
  if (j->sig) {
    ch_lock(&j->klock);
    j->tid = ch_gettid();
    ch_unlock(&j->klock);
    set_mask(j->sig);
  }
  long r = atomic_load_explicit(&j->cancel, memory_order_acquire) ? -EINTR : j->fn(j->arg);
  if (j->sig) {
    set_mask(0); /* a kick still on its way stays pending here and dies with this thread */
    ch_lock(&j->klock);
    j->tid = 0;
    ch_unlock(&j->klock);
  }
  j->result = r;
  /* The last touch of *j: once done is set, the coroutine may return and its stack frame go. */
  atomic_store_explicit(&j->done, 1, memory_order_release);
  ch_pl_wake(&j->done, 1); /* the address as a key only; a stale wake-up is re-checked by the waiter */
  return NULL;
}

static void kick(struct job *j) {
  atomic_store_explicit(&j->cancel, 1, memory_order_release);
  ch_lock(&j->klock);
  if (j->tid) {
    siginfo_t si;
    memset(&si, 0, sizeof si);
    si.si_signo = j->sig;
    si.si_code = SI_QUEUE;
    si.si_pid = ch_process_pid;
    si.si_uid = (uid_t)ch_sys0(SYS_getuid);
    si.si_value.sival_ptr = (void *)ch_kick_tag;
    ch_sys4(SYS_rt_tgsigqueueinfo, ch_process_pid, j->tid, j->sig, &si);
  }
  ch_unlock(&j->klock);
}

int ch_os_thread_detached(void *(*fn)(void *), void *arg, size_t stack_size) {
  pthread_t t;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, stack_size);
  ch_tls_bypass++; /* glibc allocates the thread: see platform.h */
  int rc = ch_plat()->thread_create(&t, &attr, fn, arg);
  ch_tls_bypass--;
  pthread_attr_destroy(&attr);
  return rc;
}

long ch_offload_call(long (*fn)(void *), void *arg, int intr) {
  /* A vfork() child shares our memory and must not make threads: the call blocks, as natively. */
  if (CH_UNLIKELY(ch_getpid() != ch_process_pid)) return fn(arg);
  struct job j = {.fn = fn, .arg = arg};
  if (intr != CH_INTR_NONE && ch_upcalls && ch_upcalls->intr_signal) j.sig = ch_upcalls->intr_signal();
  if (ch_os_thread_detached(runner, &j, 64 * 1024) != 0) return fn(arg);
  /* Parks as a coroutine; where no scheduler serves, ch_pl_wait waits natively on the futex that
   * ch_pl_wake also wakes — so this loop never spins. */
  bool kicked = false;
  while (!atomic_load_explicit(&j.done, memory_order_acquire)) {
    int w = ch_pl_wait32(&j.done, 0, kicked ? ch_deadline_after(10000000) : CH_NO_DEADLINE,
                         kicked || !j.sig ? CH_INTR_NONE : intr);
    if (w == -EINTR || (kicked && w == -ETIMEDOUT)) {
      kicked = true;
      kick(&j);
    }
  }
  return j.result;
}

struct void_job {
  void (*fn)(void *);
  void *arg;
};

static long run_void(void *p) {
  struct void_job *v = p;
  v->fn(v->arg);
  return 0;
}

void ch_offload(void (*fn)(void *), void *arg) {
  struct void_job v = {fn, arg};
  ch_offload_call(run_void, &v, CH_INTR_NONE);
}

/* ---- blocking file locks ------------------------------------------------------------------------------
 * The non-blocking form first: an uncontended lock costs exactly the program's one syscall. Only if it
 * is held elsewhere does the blocking form go to a helper. Exactness:
 *   - flock: a conversion (LOCK_SH -> LOCK_EX) that must wait drops the old lock before it waits,
 *     whether LOCK_NB is given or not (flock_lock_inode), so the failed LOCK_NB attempt leaves the same
 *     state the blocking call would have started from;
 *   - fcntl F_SETLK/F_OFD_SETLK fail with EAGAIN/EACCES before touching anything;
 *   - POSIX record locks belong to the process (the files table), OFD and flock locks to the open
 *     file description: taken by the helper thread of the same process, they are the program's
 *     exactly as if the calling thread had taken them, deadlock detection (EDEADLK) included;
 *   - both are restarted by SA_RESTART handlers and fail with EINTR otherwise (see the top);
 *   - fcntl(F_SETLKW), lockf and open are cancellation points (a pthread_cancel kicks the helper out
 *     of its wait as a signal does, and the hook acts on it), flock is not. */

struct lock_call {
  int fd;
  int cmd; /* flock: the operation; fcntl: the command */
  void *arg;
};

static long do_flock(void *p) {
  struct lock_call *c = p;
  return ch_sys(SYS_flock, c->fd, c->cmd, 0);
}

static long do_fcntl(void *p) {
  struct lock_call *c = p;
  return ch_sys(SYS_fcntl, c->fd, c->cmd, c->arg);
}

long ch_lock_flock(int fd, int op) {
  if ((op & LOCK_NB) || !(op & (LOCK_SH | LOCK_EX)) || !ch_on_worker()) return CH_E_PASS;
  long r = ch_sys(SYS_flock, fd, op | LOCK_NB, 0);
  if (r != -EWOULDBLOCK) return r;
  struct lock_call c = {fd, op, NULL};
  /* flock is no cancellation point (glibc makes it a plain syscall): a pthread_cancel must not end
   * this wait, signals still do. */
  int st = PTHREAD_CANCEL_DISABLE, old = PTHREAD_CANCEL_DISABLE;
  bool own = ch_cancel_set(&st, NULL, &old, NULL) == 0;
  r = ch_offload_call(do_flock, &c, CH_INTR_NORESTART);
  if (own && old == PTHREAD_CANCEL_ENABLE) ch_cancel_set(&old, NULL, NULL, NULL);
  return r;
}

long ch_lock_fcntl(int fd, int cmd, void *fl) {
  if ((cmd != F_SETLKW && cmd != F_OFD_SETLKW) || !ch_on_worker()) return CH_E_PASS;
  long r = ch_sys(SYS_fcntl, fd, cmd == F_SETLKW ? F_SETLK : F_OFD_SETLK, fl);
  if (r != -EAGAIN && r != -EACCES) return r;
  struct lock_call c = {fd, cmd, fl};
  return ch_offload_call(do_fcntl, &c, CH_INTR_NORESTART);
}

/* ---- open() of a FIFO ------------------------------------------------------------------------------------
 * A blocking open of a FIFO for reading waits for a writer, and for writing waits for a reader. On a
 * worker that wait would block every coroutine of the worker, the other end's opener too if it runs
 * there: so such an open goes to a helper (the exact call, on another thread of the same process).
 *
 * Which opens can wait: O_RDONLY or O_WRONLY without O_NONBLOCK, O_PATH, O_DIRECTORY (O_TMPFILE
 * includes it) or O_CREAT|O_EXCL (that one makes a new regular file or fails). O_RDWR never waits on
 * Linux. That still leaves most opens, and no flag or syscall of the open itself tells a FIFO from a
 * regular file before it blocks: knowing costs a stat of the path. To keep regular files at exactly
 * the program's one syscall, the answer is remembered per path for a second (a small table keyed by
 * a hash of dirfd and path, for paths that are not FIFOs, missing ones included): a static-file
 * server that opens the same files over and over pays one stat per path per second. The table decides only WHERE the open
 * runs, never what it does: a stale or colliding entry (the path became a FIFO within the second)
 * makes the open block its worker, which is what every open did before this emulation — never a
 * different result. Only workers pay anything: the main thread and native threads (COHOOK_THREADS=
 * native) block only themselves, exactly as natively, and pass straight through. */

#define FIFO_CACHE 256
#define FIFO_CACHE_TTL_NS 1000000000ull

struct path_seen {
  _Atomic uint64_t hash;    /* 0: empty */
  _Atomic uint64_t expires; /* ch_now_ns() until which hash is known not to be a FIFO */
};
static struct path_seen seen[FIFO_CACHE];

static uint64_t path_hash(int dirfd, const char *path) {
  uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)(unsigned)dirfd;
  for (const unsigned char *p = (const unsigned char *)path; *p; p++) h = (h ^ *p) * 0x100000001b3ull;
  return h ? h : 1;
}

/* Whether the open may wait for the other end of a FIFO; 0 no, 1 yes, or -errno of the stat. */
static int may_wait(int dirfd, const char *path, int flags) {
  int acc = flags & O_ACCMODE;
  if ((acc != O_RDONLY && acc != O_WRONLY) || (flags & (O_NONBLOCK | O_PATH | O_DIRECTORY)) ||
      (flags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL) || !path || !ch_on_worker())
    return 0;
  uint64_t h = path_hash(dirfd, path), now = ch_now_ns();
  struct path_seen *e = &seen[h % FIFO_CACHE];
  if (atomic_load_explicit(&e->hash, memory_order_relaxed) == h &&
      atomic_load_explicit(&e->expires, memory_order_relaxed) > now)
    return 0;
  struct stat st;
  long r = ch_sys4(SYS_newfstatat, dirfd, path, &st, (flags & O_NOFOLLOW) ? AT_SYMLINK_NOFOLLOW : 0);
  if (r == 0 && S_ISFIFO(st.st_mode)) return 1;
  /* Not a FIFO now — not there either (O_CREAT makes a regular file), or not reachable (the open
   * itself answers): remembered. Racy updates of one slot only ever cost a stat. */
  atomic_store_explicit(&e->expires, now + FIFO_CACHE_TTL_NS, memory_order_relaxed);
  atomic_store_explicit(&e->hash, h, memory_order_relaxed);
  return 0;
}

bool ch_open_may_wait(int dirfd, const char *path, int flags) { return may_wait(dirfd, path, flags) == 1; }

struct open_call {
  int dirfd;
  const char *path;
  int flags;
  unsigned mode;
};

static long do_open(void *p) {
  struct open_call *c = p;
  return ch_sys4(SYS_openat, c->dirfd, c->path, c->flags, c->mode);
}

long ch_open(int dirfd, const char *path, int flags, unsigned mode) {
  if (CH_LIKELY(may_wait(dirfd, path, flags) != 1)) return CH_E_PASS;
  struct open_call c = {dirfd, path, flags, mode};
  /* open(2) of a FIFO is restarted after an SA_RESTART handler, ends with EINTR otherwise */
  return ch_offload_call(do_open, &c, CH_INTR_NORESTART);
}
