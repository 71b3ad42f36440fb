/*
 * proc.c — waiting for child processes without blocking the worker: wait4()/waitpid()/wait()/wait3()
 * and waitid() without WNOHANG, and system(), whose wait happens inside libc where no hook sees it.
 *
 * A wait is made in its non-blocking form first (WNOHANG added): a child that has already changed
 * state costs exactly the program's one syscall. Otherwise the coroutine parks until the child may
 * have changed state, and asks again with WNOHANG; the kernel's answer (pid, status, rusage,
 * siginfo, ECHILD ...) is always the one returned, so the results are the native call's.
 *
 * What the coroutine waits on:
 *   - one child (pid > 0, waitid P_PID): a pidfd (pidfd_open, Linux >= 5.3), which becomes readable
 *     when the child exits; the program's own pidfd for waitid(P_PIDFD);
 *   - any child (-1), a process group (0, -pgid, P_PGID, P_ALL), stops and continues (WUNTRACED,
 *     WCONTINUED, WSTOPPED — a pidfd reports exits only), or a kernel without pidfd_open: there is
 *     nothing to wait on that does not change what the program sees (a SIGCHLD handler or a signalfd
 *     would change its dispositions or mask), so the coroutine looks again after 1 ms, 2, 4 ... up to
 *     16 ms between looks: a state change is seen at most 16 ms late, at the cost of one wait4 per
 *     look. With a pidfd a stop or continue is looked for the same way, an exit is seen at once.
 *
 * Signals: a wait is restarted after a handler installed with SA_RESTART and fails with EINTR after
 * one without. The kernel looks for a waitable child before it looks at pending signals, so when the
 * child's exit (and its SIGCHLD) comes with the interruption, the child wins: after an interrupted
 * park the wait is asked once more, and only if nothing is waitable does it answer EINTR.
 *
 * Only on a worker: a blocking wait on the main thread or a native thread blocks only that thread,
 * as natively, and goes straight to libc (no scheduler to make, no pidfd: a single-threaded program
 * pays nothing).
 */
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "internal.h"
#include "emul.h"
#include "sys.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

#define LOOK_FIRST_NS 1000000ull
#define LOOK_MAX_NS 16000000ull

struct child_wait {
  int pidfd;      /* readable when the child exits, or -1 */
  bool own_pidfd; /* ours to close */
  uint64_t look;  /* the next look's delay; 0: the pidfd alone tells (exits only) */
};

static void child_wait_init(struct child_wait *cw, int pid, int pidfd, bool exits_only) {
  cw->own_pidfd = false;
  cw->pidfd = pidfd;
  if (pidfd < 0 && pid > 0) {
    long fd = ch_sys(SYS_pidfd_open, pid, 0, 0);
    if (fd >= 0) {
      cw->pidfd = (int)fd;
      cw->own_pidfd = true;
      ch_fd_forget((int)fd); /* a new file under this number: the loop must (re)register it */
    }
  }
  cw->look = cw->pidfd >= 0 && exits_only ? 0 : LOOK_FIRST_NS;
}

static void child_wait_done(struct child_wait *cw) {
  if (!cw->own_pidfd) return;
  ch_fd_closed(cw->pidfd);
  ch_sys(SYS_close, cw->pidfd, 0, 0);
}

/* Park until the child may have changed state. 0: look again; -EINTR: a handler without SA_RESTART
 * ran (look once more, then fail). */
static int child_wait_park(struct child_wait *cw) {
  uint64_t deadline = cw->look ? ch_deadline_after((int64_t)cw->look) : CH_NO_DEADLINE;
  if (cw->look && cw->look < LOOK_MAX_NS) cw->look *= 2;
  int w;
  if (cw->pidfd >= 0) {
    ch_self()->intr = CH_INTR_NORESTART;
    w = ch_fd_wait(cw->pidfd, COHOOK_READABLE, deadline);
    ch_self()->intr = 0;
    if (w > 0 && !cw->look) cw->look = LOOK_FIRST_NS; /* if the look finds nothing: no busy loop */
    if (w < 0 && w != -ETIMEDOUT && w != -EINTR) { /* the pidfd cannot be waited on: look by time */
      child_wait_done(cw);
      cw->pidfd = -1;
      cw->own_pidfd = false;
      if (!cw->look) cw->look = LOOK_FIRST_NS;
    }
  } else {
    _Atomic uint32_t never = 0; /* nobody wakes it: a timed, interruptible park */
    w = ch_pl_wait32(&never, 0, deadline, CH_INTR_NORESTART);
  }
  return w == -EINTR ? -EINTR : 0;
}

long ch_proc_wait4(int pid, int *status, int options, void *rusage) {
  if ((options & WNOHANG) || !ch_on_worker()) return CH_E_PASS;
  long r = ch_sys4(SYS_wait4, pid, status, options | WNOHANG, rusage);
  if (r != 0) return r; /* a child's state, or an error: what the blocking call would answer now */
  struct child_wait cw;
  child_wait_init(&cw, pid, -1, !(options & (WUNTRACED | WCONTINUED)));
  for (;;) {
    int w = child_wait_park(&cw);
    r = ch_sys4(SYS_wait4, pid, status, options | WNOHANG, rusage);
    if (r != 0) break;
    if (w == -EINTR) {
      r = -EINTR;
      break;
    }
  }
  child_wait_done(&cw);
  return r;
}

long ch_proc_waitid(int idtype, int id, siginfo_t *info, int options) {
  if ((options & WNOHANG) || !ch_on_worker()) return CH_E_PASS;
  if (idtype == P_PIDFD) { /* a PIDFD_NONBLOCK pidfd answers EAGAIN instead of waiting: libc's call */
    long fl = ch_sys(SYS_fcntl, id, F_GETFL, 0);
    if (fl >= 0 && (fl & O_NONBLOCK)) return CH_E_PASS;
  }
  siginfo_t local, *si = info ? info : &local; /* with WNOHANG, si_pid 0 tells "nothing yet" */
  si->si_pid = 0;
  long r = ch_sys5(SYS_waitid, idtype, id, si, options | WNOHANG, NULL);
  if (r != 0 || si->si_pid != 0) return r;
  struct child_wait cw;
  child_wait_init(&cw, idtype == P_PID ? id : 0, idtype == P_PIDFD ? id : -1,
                  !(options & (WSTOPPED | WCONTINUED)));
  for (;;) {
    int w = child_wait_park(&cw);
    si->si_pid = 0;
    r = ch_sys5(SYS_waitid, idtype, id, si, options | WNOHANG, NULL);
    if (r != 0 || si->si_pid != 0) break;
    if (w == -EINTR) {
      r = -EINTR;
      break;
    }
  }
  child_wait_done(&cw);
  return r;
}

/* ---- system() -------------------------------------------------------------------------------------------
 * glibc's system() (2.36, sysdeps/posix/system.c) spawns "/bin/sh -c CMD" with posix_spawn and waits
 * with its internal waitpid, which no hook sees: on a worker it would block every coroutine there.
 * The same steps, with the emulated wait:
 *   - SIGINT and SIGQUIT ignored in the process while any system() runs (a count of the calls in
 *     progress, under a lock; the first saves the dispositions, the last restores them), at the
 *     kernel level as glibc does (ch_plat()->sigaction, not the program's recorded view);
 *   - SIGCHLD blocked in the calling thread during the call (a coroutine-thread's mask is its
 *     worker's, which already blocks it: workers block every asynchronous signal);
 *   - the child gets the program's mask (the one its threads had when the pool started, as a thread
 *     would have natively — not the worker's) and SIGINT/SIGQUIT at their defaults unless ignored;
 *   - a failed spawn returns the status of a shell that exited 127 and sets errno to the spawn's
 *     error; a failed wait returns -1 (errno from the wait); system(NULL) says whether "exit 0" runs;
 *   - a cancellation request while it waits kills the child with SIGKILL, reaps it and restores the
 *     dispositions and the mask before it acts, as glibc's cleanup handler does. */

extern char **environ;

static ch_lock_t sys_lock;
static int sys_refs;
static struct sigaction sys_intr, sys_quit;

static int do_system(const char *line, int *err) {
  const struct ch_platform *pl = ch_plat();
  struct sigaction ign;
  memset(&ign, 0, sizeof ign);
  ign.sa_handler = SIG_IGN;
  ch_lock(&sys_lock);
  if (sys_refs++ == 0) {
    pl->sigaction(SIGINT, &ign, &sys_intr);
    pl->sigaction(SIGQUIT, &ign, &sys_quit);
  }
  bool reset_int = sys_intr.sa_handler != SIG_IGN, reset_quit = sys_quit.sa_handler != SIG_IGN;
  ch_unlock(&sys_lock);

  sigset_t chld, omask, reset;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  ch_sys4(SYS_rt_sigprocmask, SIG_BLOCK, &chld, &omask, _NSIG / 8);
  sigemptyset(&reset);
  if (reset_int) sigaddset(&reset, SIGINT);
  if (reset_quit) sigaddset(&reset, SIGQUIT);

  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setsigmask(&attr, ch_worker_program_mask());
  posix_spawnattr_setsigdefault(&attr, &reset);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  pid_t pid;
  char *argv[] = {(char *)"sh", (char *)"-c", (char *)line, NULL};
  ch_tls_bypass++; /* glibc's own code (it may allocate): nothing in it may park */
  int ret = posix_spawn(&pid, "/bin/sh", NULL, &attr, argv, environ);
  ch_tls_bypass--;
  posix_spawnattr_destroy(&attr);

  int status = -1;
  *err = 0;
  if (ret == 0) {
    long r;
    ch_coro *self = ch_self();
    for (;;) { /* glibc: TEMP_FAILURE_RETRY (__waitpid (pid, &status, 0)) */
      r = ch_proc_wait4(pid, &status, 0, NULL);
      if (r != -EINTR) break;
      if (ch_cancel_wanted(self)) {
        /* A cancellation request: glibc's cleanup handler kills the child and reaps it (the wait
         * for a SIGKILLed child is short: made in place), restores what system() changed; then
         * the hook lets the request act (*err EINTR, which system() never returns otherwise). */
        ch_sys(SYS_kill, pid, SIGKILL, 0);
        while (ch_sys4(SYS_wait4, pid, NULL, 0, NULL) == -EINTR) {
        }
        status = -1;
        *err = EINTR;
        goto restore;
      }
    }
    if (r == CH_E_PASS) r = ch_sys4(SYS_wait4, pid, &status, 0, NULL); /* cannot happen on a worker */
    if (r != pid) {
      status = -1;
      *err = r < 0 ? (int)-r : 0;
    }
  } else {
    status = 127 << 8; /* W_EXITCODE(127, 0): as if the shell had failed to run */
  }

restore:
  ch_lock(&sys_lock);
  if (--sys_refs == 0) {
    pl->sigaction(SIGINT, &sys_intr, NULL);
    pl->sigaction(SIGQUIT, &sys_quit, NULL);
  }
  ch_unlock(&sys_lock);
  ch_sys4(SYS_rt_sigprocmask, SIG_SETMASK, &omask, NULL, _NSIG / 8);
  if (ret != 0) *err = ret;
  return status;
}

bool ch_proc_system(const char *line, int *status, int *err) {
  if (!ch_on_worker()) return false;
  if (!line) {
    *status = do_system("exit 0", err) == 0;
    return true;
  }
  *status = do_system(line, err);
  return true;
}
