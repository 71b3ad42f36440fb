/*
 * poll.c — readiness multiplexers. A zero timeout is a plain look and goes to libc; otherwise we ask
 * the kernel with a zero timeout and, if nothing is ready, park on the fds' watchers and ask again.
 * The variants with a signal mask (ppoll, pselect, epoll_pwait, epoll_pwait2): on an OS thread they
 * go to libc (the kernel swaps the thread's mask atomically with the wait); on a coroutine-thread the
 * mask becomes the coroutine's own for the wait (runtime/sigmask.c): a pending signal it lets
 * through ends the call with EINTR at once, one that arrives during the wait interrupts it.
 */
#include "hook.h"

/* libev watches readable and writable only; urgent data (POLLPRI, select's exception sets) is watched
 * by the runtime's own edge-triggered set (runtime/loop.c), and an fd that set cannot take (one that
 * cannot be polled) waits in the kernel. A request for errors alone (events 0), read hang-ups alone or
 * POLLRDBAND cannot be waited for without waking on readiness nobody asked for (a busy loop) or
 * missing the event: such calls wait in the kernel, blocking their thread, as the program's own. */
/* glibc declares poll's array write-only (access attribute), though poll reads each `events`:
 * GCC then believes we read it uninitialised. */
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

static bool expressible(const struct pollfd *fds, nfds_t n) {
  for (nfds_t i = 0; i < n; i++)
    if (fds[i].fd >= 0 && (!(fds[i].events & (POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM | POLLPRI)) ||
                           (fds[i].events & POLLRDBAND)))
      return false;
  return true;
}

CH_EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout) {
  if (ch_tls_bypass || timeout == 0 || !expressible(fds, n)) return REAL(poll)(fds, n, timeout);
  CH_STAT_CALL(CH_FAM_POLL);
  return (int)ch_ret(ch_io_poll(fds, n, ch_ms_deadline(timeout)));
}

CH_EXPORT int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen) {
  if (fdslen / sizeof *fds < n) __chk_fail();
  return poll(fds, n, timeout);
}

static uint64_t ts_deadline(const struct timespec *ts) {
  if (!ts) return CH_NO_DEADLINE;
  if (ts->tv_sec == 0 && ts->tv_nsec == 0) return 0;
  return ch_deadline_after((int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec);
}

/* A coroutine-thread's wait with a signal mask: MASKED(call) runs call under the mask, or ends with
 * EINTR if a pending signal the mask lets through ran first. */
#define MASKED(co, mask, call)                                                                       \
  ({                                                                                                 \
    uint64_t saved_;                                                                                 \
    long r_ = ch_sig_mask_enter(co, mask, &saved_) ? (long)(call) : -EINTR;                          \
    ch_sig_mask_leave(co, saved_);                                                                   \
    r_;                                                                                              \
  })

static long libc_res(long r) { return r < 0 ? -errno : r; }

static ch_coro *mask_coro(const sigset_t *mask) { return mask && !ch_tls_bypass ? ch_thread_self() : NULL; }

CH_EXPORT int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *ts, const sigset_t *mask) {
  ch_coro *co = mask_coro(mask);
  if (co && !(ts && ts->tv_sec == 0 && ts->tv_nsec == 0) && expressible(fds, n)) {
    if (ts && (ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000 || ts->tv_sec < 0)) return (int)ch_ret(-EINVAL);
    CH_STAT_CALL(CH_FAM_POLL);
    return (int)ch_ret(MASKED(co, mask, ch_io_poll(fds, n, ts_deadline(ts))));
  }
  /* Never the program's mask on a worker's own task: it would let signals in there. */
  if (co) return (int)ch_ret(MASKED(co, mask, libc_res(REAL(ppoll)(fds, n, ts, NULL))));
  if (ch_tls_bypass || mask || (ts && ts->tv_sec == 0 && ts->tv_nsec == 0) || !expressible(fds, n))
    return REAL(ppoll)(fds, n, ts, mask);
  if (ts && (ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000 || ts->tv_sec < 0)) return (int)ch_ret(-EINVAL);
  CH_STAT_CALL(CH_FAM_POLL);
  return (int)ch_ret(ch_io_poll(fds, n, ts_deadline(ts)));
}

CH_EXPORT int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *ts, const sigset_t *mask,
                          size_t fdslen) {
  if (fdslen / sizeof *fds < n) __chk_fail();
  return ppoll(fds, n, ts, mask);
}

CH_EXPORT int select(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, struct timeval *tv) {
  if (ch_tls_bypass || (tv && tv->tv_sec == 0 && tv->tv_usec == 0)) return REAL(select)(nfds, rd, wr, ex, tv);
  if (tv && (tv->tv_sec < 0 || tv->tv_usec < 0)) return (int)ch_ret(-EINVAL);
  if (nfds < 0) return (int)ch_ret(-EINVAL);
  CH_STAT_CALL(CH_FAM_POLL);
  uint64_t deadline = tv ? ch_deadline_after((int64_t)tv->tv_sec * 1000000000 + (int64_t)tv->tv_usec * 1000)
                         : CH_NO_DEADLINE;
  long r = ch_io_select(nfds, rd, wr, ex, deadline);
  if (tv) { /* Linux select() reports the time not slept back through *tv */
    uint64_t now = ch_now_ns();
    uint64_t left = deadline > now ? deadline - now : 0;
    tv->tv_sec = (time_t)(left / 1000000000u);
    tv->tv_usec = (suseconds_t)(left % 1000000000u / 1000u);
  }
  return (int)ch_ret(r);
}

CH_EXPORT int pselect(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, const struct timespec *ts,
                      const sigset_t *mask) {
  ch_coro *co = mask_coro(mask);
  if (co && ts && ts->tv_sec == 0 && ts->tv_nsec == 0)
    return (int)ch_ret(MASKED(co, mask, libc_res(REAL(pselect)(nfds, rd, wr, ex, ts, NULL))));
  if (ch_tls_bypass || (mask && !co) || (ts && ts->tv_sec == 0 && ts->tv_nsec == 0))
    return REAL(pselect)(nfds, rd, wr, ex, ts, mask);
  if (nfds < 0 || (ts && (ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000 || ts->tv_sec < 0)))
    return (int)ch_ret(-EINVAL);
  CH_STAT_CALL(CH_FAM_POLL);
  if (co) return (int)ch_ret(MASKED(co, mask, ch_io_select(nfds, rd, wr, ex, ts_deadline(ts))));
  return (int)ch_ret(ch_io_select(nfds, rd, wr, ex, ts_deadline(ts)));
}

/* libev's own epoll_ctl (inside a scheduler's loop run, on the runtime's epoll fd): an fd the
 * program closed from another thread while this loop still had a change pending for it — a loop a
 * coroutine-thread waited in before it moved to another worker — answers EBADF, and libev aborts
 * the process on that (ev_epoll.c asserts). Natively nothing would be watching that fd any more:
 * nothing to watch, so report it done. If its number comes back, the loop re-adds it (generations,
 * runtime/loop.c). The program's own calls are untouched. */
CH_EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev) {
  int r = REAL(epoll_ctl)(epfd, op, fd, ev);
  if (CH_UNLIKELY(r < 0) && ch_tls_bypass && errno == EBADF && op != EPOLL_CTL_DEL && ch_fd_is_internal(epfd))
    return 0;
  return r;
}

CH_EXPORT int epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout) {
  if (ch_tls_bypass || timeout == 0) return REAL(epoll_wait)(epfd, ev, max, timeout);
  CH_STAT_CALL(CH_FAM_POLL);
  return (int)ch_ret(ch_io_epoll_wait(epfd, ev, max, ch_ms_deadline(timeout)));
}

CH_EXPORT int epoll_pwait(int epfd, struct epoll_event *ev, int max, int timeout, const sigset_t *mask) {
  ch_coro *co = mask_coro(mask);
  if (co && timeout == 0) return (int)ch_ret(MASKED(co, mask, libc_res(REAL(epoll_pwait)(epfd, ev, max, 0, NULL))));
  if (ch_tls_bypass || (mask && !co) || timeout == 0) return REAL(epoll_pwait)(epfd, ev, max, timeout, mask);
  CH_STAT_CALL(CH_FAM_POLL);
  if (co) return (int)ch_ret(MASKED(co, mask, ch_io_epoll_wait(epfd, ev, max, ch_ms_deadline(timeout))));
  return (int)ch_ret(ch_io_epoll_wait(epfd, ev, max, ch_ms_deadline(timeout)));
}

/* epoll_pwait2: a timespec timeout (NULL: none). */
CH_EXPORT int epoll_pwait2(int epfd, struct epoll_event *ev, int max, const struct timespec *ts,
                           const sigset_t *mask) {
  ch_coro *co = mask_coro(mask);
  if (co && ts && ts->tv_sec == 0 && ts->tv_nsec == 0)
    return (int)ch_ret(MASKED(co, mask, libc_res(REAL(epoll_pwait2)(epfd, ev, max, ts, NULL))));
  if (ch_tls_bypass || (mask && !co) || (ts && ts->tv_sec == 0 && ts->tv_nsec == 0))
    return REAL(epoll_pwait2)(epfd, ev, max, ts, mask);
  if (ts && (ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000 || ts->tv_sec < 0)) return (int)ch_ret(-EINVAL);
  if (max <= 0) return (int)ch_ret(-EINVAL);
  CH_STAT_CALL(CH_FAM_POLL);
  if (co) return (int)ch_ret(MASKED(co, mask, ch_io_epoll_wait(epfd, ev, max, ts_deadline(ts))));
  return (int)ch_ret(ch_io_epoll_wait(epfd, ev, max, ts_deadline(ts)));
}
