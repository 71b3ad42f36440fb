/*
 * fd.c — bookkeeping for calls that create, duplicate, reconfigure or close fds. Every one of them
 * goes to libc; we only keep runtime/fdtab.c true to what the kernel now holds.
 */
#include <stdarg.h>
#include <stdio.h>
#include <sys/eventfd.h>
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
  return fd == -1 ? made(r, (flags & SFD_NONBLOCK) != 0) : r;
}

/* fclose closes its fd inside libc, where close() is not seen: forget what we knew of that number. */
CH_EXPORT int fclose(FILE *f) {
  int fd = f ? fileno(f) : -1;
  if (fd >= 0 && !ch_tls_bypass) ch_fd_closed(fd);
  return REAL(fclose)(f);
}
