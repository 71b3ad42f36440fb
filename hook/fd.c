/*
 * fd.c — bookkeeping for calls that create, duplicate, reconfigure or close fds. Every one of them
 * goes to libc; we only keep runtime/fdtab.c true to what the kernel now holds. Also the fd calls
 * that can wait for another process or thread: file locks (flock, fcntl F_SETLKW/F_OFD_SETLKW, lockf)
 * and the open of a FIFO, which on a worker wait on a helper thread (runtime/offload.c).
 */
#include <stdarg.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>

#include "hook.h"

CH_EXPORT int pipe2(int p[2], int flags) {
  int r = REAL(pipe2)(p, flags);
  if (r == 0) {
    int fl = flags & (O_NONBLOCK | O_DIRECT);
    ch_fd_created(p[0], CH_FD_PIPE, (flags & O_NONBLOCK) != 0, O_RDONLY | fl);
    ch_fd_created(p[1], CH_FD_PIPE, (flags & O_NONBLOCK) != 0, O_WRONLY | fl);
  }
  return r;
}

CH_EXPORT int pipe(int p[2]) {
  int r = REAL(pipe)(p);
  if (r == 0) {
    ch_fd_created(p[0], CH_FD_PIPE, false, O_RDONLY);
    ch_fd_created(p[1], CH_FD_PIPE, false, O_WRONLY);
  }
  return r;
}

/* Closing wakes the fd's waiters with EBADF (design.md §3.5) and retires its watcher. */
CH_EXPORT int close(int fd) {
  if (!ch_tls_bypass) {
    /* The runtime's own fds are not open as far as the program knows (a daemon closing every fd
     * up to the limit must not take the event loop with it): answer as for a closed number. */
    if (ch_fd_is_internal(fd)) return (int)ch_ret(-EBADF);
    ch_fd_closed(fd);
  }
  return REAL(close)(fd);
}

CH_EXPORT int dup(int fd) {
  int r = REAL(dup)(fd);
  if (r >= 0) ch_fd_dup(fd, r);
  return r;
}

/* dup2 onto a watched fd closes the target: its waiters see EBADF, as after close(). */
CH_EXPORT int dup2(int fd, int to) {
  int r = REAL(dup2)(fd, to);
  if (r >= 0 && fd != to) {
    ch_fd_closed(to);
    ch_fd_dup(fd, to);
  }
  return r;
}

CH_EXPORT int dup3(int fd, int to, int flags) {
  int r = REAL(dup3)(fd, to, flags);
  if (r >= 0) {
    ch_fd_closed(to);
    ch_fd_dup(fd, to);
  }
  return r;
}

static int do_fcntl(int fd, int cmd, void *arg) {
  switch (cmd) {
    case F_SETFL: {
      int r = REAL(fcntl)(fd, cmd, arg);
      if (r == 0) ch_fd_set_flags(fd, (int)(intptr_t)arg);
      return r;
    }
    case F_GETFL: /* our transient O_NONBLOCK (accept/connect in progress) is not the program's */
      return ch_fd_user_flags(fd, REAL(fcntl)(fd, cmd));
    case F_SETLKW:
    case F_OFD_SETLKW: { /* a blocking record lock waits off the worker (runtime/offload.c) */
      long r = ch_lock_fcntl(fd, cmd, arg);
      if (r != CH_E_PASS) return (int)ch_ret(r);
      return REAL(fcntl)(fd, cmd, arg);
    }
    case F_DUPFD:
    case F_DUPFD_CLOEXEC: {
      int r = REAL(fcntl)(fd, cmd, arg);
      if (r >= 0) ch_fd_dup(fd, r);
      return r;
    }
    default:
      return REAL(fcntl)(fd, cmd, arg);
  }
}

/* fcntl's third argument is an int or a pointer; both travel in the same register class on the
 * ABIs we support, so it is fetched as a pointer, as libc's own wrappers do. */
CH_EXPORT int fcntl(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  void *arg = va_arg(ap, void *);
  va_end(ap);
  return do_fcntl(fd, cmd, arg);
}

CH_EXPORT int fcntl64(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  void *arg = va_arg(ap, void *);
  va_end(ap);
  return do_fcntl(fd, cmd, arg);
}

CH_EXPORT int ioctl(int fd, unsigned long req, ...) {
  va_list ap;
  va_start(ap, req);
  void *arg = va_arg(ap, void *);
  va_end(ap);
  int r = REAL(ioctl)(fd, req, arg);
  if (r == 0 && req == FIONBIO && arg) ch_fd_set_nonblock(fd, *(int *)arg != 0);
  return r;
}

/* ---- fds made by calls we do not otherwise intercept ------------------------------------------------
 * Hooked for two reasons. Inside the runtime (libev making its epoll fd and eventfd), the new fd is
 * moved high and marked internal, so it never takes a number the program expects and the program's
 * "close every fd" loops cannot pull the loop from under us. For the program, a fresh fd resets
 * what we knew about that number, in case the previous holder was closed behind our back. */
static int made(int fd, bool nonblock) {
  if (fd < 0) return fd;
  if (ch_tls_bypass) return ch_fd_make_internal(fd);
  ch_fd_created(fd, CH_FD_ANON, nonblock, O_RDWR | (nonblock ? O_NONBLOCK : 0));
  return fd;
}

CH_EXPORT int epoll_create1(int flags) { return made(REAL(epoll_create1)(flags), false); }
CH_EXPORT int epoll_create(int size) { return made(REAL(epoll_create)(size), false); }
CH_EXPORT int eventfd(unsigned int v, int flags) { return made(REAL(eventfd)(v, flags), (flags & EFD_NONBLOCK) != 0); }
CH_EXPORT int timerfd_create(int clk, int flags) {
  return made(REAL(timerfd_create)(clk, flags), (flags & TFD_NONBLOCK) != 0);
}
CH_EXPORT int signalfd(int fd, const sigset_t *mask, int flags) {
  int r = REAL(signalfd)(fd, mask, flags);
  if (fd == -1) r = made(r, (flags & SFD_NONBLOCK) != 0);
  if (r >= 0 && !ch_tls_bypass) ch_hook_signalfd_made(r, mask);
  return r;
}

/* fclose closes its fd inside libc, where close() is not seen: forget what we knew of that number. */
CH_EXPORT int fclose(FILE *f) {
  int fd = f ? fileno(f) : -1;
  if (fd >= 0 && !ch_tls_bypass) ch_fd_closed(fd);
  return REAL(fclose)(f);
}

/* ---- blocking file locks: waited for off the worker (runtime/offload.c) ------------------------------- */

CH_EXPORT int flock(int fd, int op) {
  long r = ch_lock_flock(fd, op);
  if (r != CH_E_PASS) return (int)ch_ret(r);
  return REAL(flock)(fd, op);
}

/* lockf(F_LOCK) is fcntl(F_SETLKW) inside libc, where fcntl() is not seen: the same lock, built as
 * glibc builds it (a write lock from the current position, len bytes). */
CH_EXPORT int lockf64(int fd, int cmd, off64_t len) {
  if (cmd == F_LOCK) {
    struct flock64 fl = {.l_type = F_WRLCK, .l_whence = SEEK_CUR, .l_start = 0, .l_len = len};
    long r = ch_lock_fcntl(fd, F_SETLKW, &fl);
    if (r != CH_E_PASS) return (int)ch_ret(r);
  }
  return REAL(lockf64)(fd, cmd, len);
}

CH_EXPORT int lockf(int fd, int cmd, off_t len) { return lockf64(fd, cmd, len); }

/* ---- open(): a FIFO's blocking open waits off the worker; every other open passes straight through -- */

static int open_at(int dirfd, const char *path, int flags, mode_t mode) {
  long r = ch_open(dirfd, path, flags, mode);
  if (r != CH_E_PASS) return (int)ch_ret(r);
  return dirfd == AT_FDCWD ? REAL(open)(path, flags, mode) : REAL(openat)(dirfd, path, flags, mode);
}

/* The mode argument exists only with O_CREAT or O_TMPFILE (as glibc reads it). */
#define OPEN_MODE(flags, last)                                                                       \
  mode_t mode = 0;                                                                                   \
  if ((flags) & (O_CREAT | __O_TMPFILE)) {                                                           \
    va_list ap;                                                                                      \
    va_start(ap, last);                                                                              \
    mode = va_arg(ap, mode_t);                                                                       \
    va_end(ap);                                                                                      \
  }

CH_EXPORT int open(const char *path, int flags, ...) {
  OPEN_MODE(flags, flags)
  return open_at(AT_FDCWD, path, flags, mode);
}

CH_EXPORT int open64(const char *path, int flags, ...) {
  OPEN_MODE(flags, flags)
  return open_at(AT_FDCWD, path, flags | O_LARGEFILE, mode);
}

CH_EXPORT int openat(int dirfd, const char *path, int flags, ...) {
  OPEN_MODE(flags, flags)
  return open_at(dirfd, path, flags, mode);
}

CH_EXPORT int openat64(int dirfd, const char *path, int flags, ...) {
  OPEN_MODE(flags, flags)
  return open_at(dirfd, path, flags | O_LARGEFILE, mode);
}

CH_EXPORT int creat(const char *path, mode_t mode) { return open_at(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode); }
CH_EXPORT int creat64(const char *path, mode_t mode) {
  return open_at(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC | O_LARGEFILE, mode);
}

/* _FORTIFY_SOURCE: open without a mode where one is needed is a bug caught here, as glibc does. */
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);
int __openat64_2(int dirfd, const char *path, int flags);
static void open_2_check(int flags) {
  if (flags & (O_CREAT | __O_TMPFILE)) __chk_fail();
}
CH_EXPORT int __open_2(const char *path, int flags) {
  open_2_check(flags);
  return open_at(AT_FDCWD, path, flags, 0);
}
CH_EXPORT int __open64_2(const char *path, int flags) {
  open_2_check(flags);
  return open_at(AT_FDCWD, path, flags | O_LARGEFILE, 0);
}
CH_EXPORT int __openat_2(int dirfd, const char *path, int flags) {
  open_2_check(flags);
  return open_at(dirfd, path, flags, 0);
}
CH_EXPORT int __openat64_2(int dirfd, const char *path, int flags) {
  open_2_check(flags);
  return open_at(dirfd, path, flags | O_LARGEFILE, 0);
}

/* fopen opens inside libc. A FIFO opened for reading or writing only: the whole fopen on a helper
 * (the mode string as glibc reads it: r/w/a, then '+' or 'x' among the next characters). */
struct fopen_call {
  const char *path, *mode;
  FILE *(*fn)(const char *, const char *);
  FILE *f;
  int err;
};

static long fopen_job(void *p) {
  struct fopen_call *c = p;
  c->f = c->fn(c->path, c->mode);
  c->err = errno;
  return 0;
}

static FILE *fopen_as(FILE *(*fn)(const char *, const char *), const char *path, const char *mode) {
  int flags = -1;
  if (mode && path) {
    flags = mode[0] == 'r' ? O_RDONLY : (mode[0] == 'w' || mode[0] == 'a') ? O_WRONLY : -1;
    for (int i = 1; i < 7 && flags >= 0 && mode[i] && mode[i] != ','; i++)
      if (mode[i] == '+' || mode[i] == 'x') flags = -1;
  }
  if (flags < 0 || !ch_open_may_wait(AT_FDCWD, path, flags)) return fn(path, mode);
  struct fopen_call c = {path, mode, fn, NULL, 0};
  ch_offload_call(fopen_job, &c, CH_INTR_NORESTART);
  if (!c.f) errno = c.err;
  return c.f;
}

CH_EXPORT FILE *fopen(const char *path, const char *mode) { return fopen_as(REAL(fopen), path, mode); }
CH_EXPORT FILE *fopen64(const char *path, const char *mode) { return fopen_as(REAL(fopen64), path, mode); }
