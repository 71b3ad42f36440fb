/*
 * io.c — blocking calls, emulated on coroutines with exactly the program's semantics.
 *
 * Pattern of every call here: make the program's own syscall in its non-blocking form (MSG_DONTWAIT
 * on sockets, RWF_NOWAIT on pipes and character devices); if it would block, park on the fd (the
 * thread runs other coroutines) and try again when the loop says it is ready. The fast path is then
 * exactly the syscall the program would have made; a would-block costs one failed attempt, the wait,
 * and the retry. The fd's flags are never changed, so paths we do not intercept (stdio inside libc,
 * other processes sharing the file description) never see an EAGAIN they did not ask for. The only
 * exceptions are accept() and connect(), which have no per-call form: they hold a transient O_NONBLOCK
 * around the single syscall (fdtab.c), never across a wait.
 *
 * Semantics kept (design.md §3): no invented timeouts (no deadline unless SO_RCVTIMEO/SO_SNDTIMEO say
 * so, and then EAGAIN as the kernel gives); blocking writes return only when everything is written or
 * an error/timeout stops them (then with the partial count, as the kernel does); a close() of the fd
 * by another coroutine ends the wait with EBADF. Every function returns a count/fd/0 or -errno.
 */
#include <fcntl.h>
#include <poll.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "internal.h"
#include "sys.h"

#ifndef RWF_NOWAIT
#define RWF_NOWAIT 0x00000008
#endif


struct ch_fdinfo *ch_io_fd(int fd) {
  if (ch_tls_bypass) return NULL;
  struct ch_fdinfo *fi = ch_fd_info(fd);
  if (!fi) return NULL;
  int kind = ch_fd_classify(fd, fi);
  /* A bad fd, a regular file (always ready), or a program that asked for O_NONBLOCK itself: let libc
   * do exactly what it does. */
  if (kind < 0 || kind == CH_FD_FILE || kind == CH_FD_INTERNAL) return NULL;
  if (atomic_load_explicit(&fi->user_nonblock, memory_order_relaxed)) return NULL;
  if (kind == CH_FD_ANON) atomic_store_explicit(&fi->nowait_bad, 1, memory_order_relaxed);
  /* A coroutine that finds its data ready call after call never parks: when the monitor says others
   * have waited long enough, this call yields first (natively the kernel would have time-sliced it). */
  struct ch_sched *s = ch_tls_sched;
  if (s && CH_UNLIKELY(atomic_load_explicit(&s->preempt, memory_order_relaxed))) ch_yield();
  return fi;
}

/* A read on an fd we have not classified yet (a file the program just open()ed, typically): try it
 * as it is first. A regular file in the page cache, or a pipe or socket with data waiting, answers
 * at once, exactly as read() would, and we save the fstat+fcntl of classifying it — on a static-file
 * server that is two syscalls per request. Only if it would block (or the fd refuses RWF_NOWAIT) does
 * the caller classify the fd and take the full path. */
long ch_io_read_unclassified(int fd, const struct iovec *iov, int cnt) {
  if (ch_tls_bypass) return CH_E_PASS;
  struct ch_fdinfo *fi = ch_fd_info(fd);
  if (!fi || atomic_load_explicit(&fi->kind, memory_order_acquire) != CH_FD_UNKNOWN) return CH_E_PASS;
  long r = ch_sys6(SYS_preadv2, fd, (long)iov, cnt, -1, -1, RWF_NOWAIT);
  if (r == -EAGAIN || r == -EOPNOTSUPP || r == -EINVAL || r == -ESPIPE) return CH_E_PASS;
  return r;
}

/* The time left until deadline as a timespec for a native blocking call; NULL: no limit. */
static struct timespec *left_ts(uint64_t deadline, struct timespec *ts) {
  if (deadline == CH_NO_DEADLINE) return NULL;
  uint64_t now = ch_now_ns(), left = deadline > now ? deadline - now : 0;
  ts->tv_sec = (time_t)(left / 1000000000u);
  ts->tv_nsec = (long)(left % 1000000000u);
  return ts;
}

/* No scheduler serves here (none could be made: out of fds or memory; or inside the runtime's own
 * machinery): block this thread in the kernel until fd is ready, exactly as the program's own call
 * would have. > 0 ready, -ETIMEDOUT, or -errno. */
static int native_wait(int fd, int events, uint64_t deadline) {
  struct pollfd pfd = {.fd = fd, .events = (short)((events & COHOOK_READABLE ? POLLIN : 0) |
                                                   (events & COHOOK_WRITABLE ? POLLOUT : 0))};
  struct timespec ts;
  long r = ch_sys5(SYS_ppoll, &pfd, 1, left_ts(deadline, &ts), NULL, 8);
  return r == 0 ? -ETIMEDOUT : (int)r;
}

static uint64_t timeo_deadline(_Atomic int64_t *timeo) {
  int64_t t = atomic_load_explicit(timeo, memory_order_relaxed);
  return t > 0 ? ch_deadline_after(t) : CH_NO_DEADLINE;
}

/* Park until fd is ready. 0: try again; < 0: give up with that error (-EAGAIN when the socket's own
 * timeout ran out, which is what the kernel reports for SO_RCVTIMEO/SO_SNDTIMEO). */
static int await_p(int fd, int events, uint64_t *deadline, _Atomic int64_t *timeo, bool partial);

static int await(int fd, int events, uint64_t *deadline, _Atomic int64_t *timeo) {
  return await_p(fd, events, deadline, timeo, false);
}

/* partial: the call has already moved data; then any handler ends it with the count so far, as
 * the kernel does (SA_RESTART restarts only calls that transferred nothing). */
static int await_p(int fd, int events, uint64_t *deadline, _Atomic int64_t *timeo, bool partial) {
  struct ch_fdinfo *fi = ch_fd_info(fd);
  if (*deadline == 0) {
    if (fi && atomic_load_explicit(&fi->shared, memory_order_relaxed)) {
      ch_fd_refresh(fd, fi); /* another fd or process may have made it non-blocking, or set a timeout */
      if (atomic_load_explicit(&fi->user_nonblock, memory_order_relaxed)) return -EAGAIN;
    }
    *deadline = timeo_deadline(timeo);
  }
  struct ch_sched *s = ch_sched_get();
  if (!s) {
    int r = native_wait(fd, events, *deadline);
    return r == -ETIMEDOUT ? -EAGAIN : r < 0 ? r : 0;
  }
  /* signal(7): a call on a socket with a timeout set is interrupted by any handler; otherwise only
   * by one installed without SA_RESTART (with it, the kernel restarts the call: we keep waiting). */
  ch_self()->intr = *deadline != CH_NO_DEADLINE || partial ? CH_INTR_ALWAYS : CH_INTR_NORESTART;
  int w = ch_fd_wait(fd, events, *deadline);
  ch_self()->intr = 0;
  if (w > 0) return 0;
  return w == -ETIMEDOUT ? -EAGAIN : w;
}

/* ---- reads ------------------------------------------------------------------------------------ */

/* A read that came back shorter than asked emptied the receive queue, almost always: the next read
 * on that fd (typically the next request on a connection) would fail with EAGAIN. Skip that doomed
 * attempt and wait for readiness first — level-triggered epoll reports at once if data did arrive
 * meanwhile. One syscall less per request/response round trip. */
static void note_short(struct ch_fdinfo *fi, long r, size_t asked) {
  if (r > 0 && (size_t)r < asked) atomic_store_explicit(&fi->drained, 1, memory_order_relaxed);
}

static int wait_if_drained(int fd, struct ch_fdinfo *fi, uint64_t *deadline) {
  if (!atomic_load_explicit(&fi->drained, memory_order_relaxed)) return 0;
  atomic_store_explicit(&fi->drained, 0, memory_order_relaxed);
  return await(fd, COHOOK_READABLE, deadline, &fi->rcvtimeo_ns);
}

/* One non-blocking attempt at readv. -EOPNOTSUPP means: this fd cannot do that (then wait first). */
static long try_readv(int fd, struct ch_fdinfo *fi, const struct iovec *iov, int cnt) {
  if (atomic_load_explicit(&fi->kind, memory_order_relaxed) == CH_FD_SOCKET) {
    struct msghdr m = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)cnt};
    return ch_sys(SYS_recvmsg, fd, &m, MSG_DONTWAIT);
  }
  if (atomic_load_explicit(&fi->nowait_bad, memory_order_relaxed)) return -EOPNOTSUPP;
  long r = ch_sys6(SYS_preadv2, fd, (long)iov, cnt, -1, -1, RWF_NOWAIT);
  if (r == -EOPNOTSUPP || r == -EINVAL) { /* anon inodes and some devices refuse RWF_NOWAIT */
    atomic_store_explicit(&fi->nowait_bad, 1, memory_order_relaxed);
    return -EOPNOTSUPP;
  }
  return r;
}

long ch_io_readv(int fd, struct ch_fdinfo *fi, const struct iovec *iov, int cnt) {
  uint64_t deadline = 0;
  int w0 = wait_if_drained(fd, fi, &deadline);
  if (w0 < 0) return w0;
  size_t asked = 0;
  for (int i = 0; i < cnt; i++) asked += iov[i].iov_len;
  for (;;) {
    long r = try_readv(fd, fi, iov, cnt);
    note_short(fi, r, asked);
    if (r == -EOPNOTSUPP) {
      /* No per-call non-blocking form: wait for readiness, then make the plain (blocking) call,
       * which readiness makes return at once. */
      int w = await(fd, COHOOK_READABLE, &deadline, &fi->rcvtimeo_ns);
      if (w < 0) return w;
      return ch_sys(SYS_readv, fd, iov, cnt);
    }
    if (r != -EAGAIN) return r;
    int w = await(fd, COHOOK_READABLE, &deadline, &fi->rcvtimeo_ns);
    if (w < 0) return w;
  }
}

/* The fd number was closed behind our back and reused for something that is not a socket: learn
 * what it is now and do the call again. NULL: not ours any more. */
static struct ch_fdinfo *reclassify(int fd) {
  ch_fd_forget(fd);
  return ch_io_fd(fd);
}

long ch_io_read(int fd, struct ch_fdinfo *fi, void *buf, size_t n) {
  struct iovec v = {buf, n};
  if (atomic_load_explicit(&fi->kind, memory_order_relaxed) != CH_FD_SOCKET) return ch_io_readv(fd, fi, &v, 1);
  long r = ch_io_recvfrom(fd, fi, buf, n, 0, NULL, NULL);
  if (r != -ENOTSOCK) return r;
  fi = reclassify(fd);
  return fi ? ch_io_readv(fd, fi, &v, 1) : ch_sys(SYS_read, fd, buf, n);
}

long ch_io_recvfrom(int fd, struct ch_fdinfo *fi, void *buf, size_t n, int flags, struct sockaddr *addr,
                    ch_socklen_t *alen) {
  uint64_t deadline = 0;
  size_t got = 0;
  if ((flags & MSG_WAITALL) && !atomic_load_explicit(&fi->stream, memory_order_relaxed))
    flags &= ~MSG_WAITALL; /* no effect on datagram sockets, natively either */
  if ((flags & (MSG_WAITALL | MSG_PEEK)) == (MSG_WAITALL | MSG_PEEK)) {
    /* Peeking until n bytes are there: leave the waiting to the kernel once data starts. */
    int w = await(fd, COHOOK_READABLE, &deadline, &fi->rcvtimeo_ns);
    if (w < 0) return w;
    return ch_sys6(SYS_recvfrom, fd, (long)buf, (long)n, flags, (long)addr, (long)alen);
  }
  if (!(flags & MSG_PEEK)) {
    int w0 = wait_if_drained(fd, fi, &deadline);
    if (w0 < 0) return w0;
  }
  for (;;) {
    long r = ch_sys6(SYS_recvfrom, fd, (long)((char *)buf + got), (long)(n - got), flags | MSG_DONTWAIT,
                     (long)addr, (long)alen);
    if (!(flags & (MSG_PEEK | MSG_WAITALL))) note_short(fi, r, n);
    if (r > 0 && (flags & MSG_WAITALL) && got + (size_t)r < n) {
      got += (size_t)r; /* MSG_WAITALL: keep going until all of it, EOF, an error or the timeout */
      continue;
    }
    if (r >= 0) return (long)got + r;
    if (r != -EAGAIN) return got ? (long)got : r;
    int w = await_p(fd, COHOOK_READABLE, &deadline, &fi->rcvtimeo_ns, got > 0);
    if (w < 0) return got ? (long)got : w;
  }
}

long ch_io_recvmsg(int fd, struct ch_fdinfo *fi, struct msghdr *m, int flags) {
  uint64_t deadline = 0;
  for (;;) {
    if (flags & MSG_WAITALL) {
      /* Rare with recvmsg: keep the kernel's own all-or-nothing logic; wait for the first byte. */
      int w = await(fd, COHOOK_READABLE, &deadline, &fi->rcvtimeo_ns);
      if (w < 0) return w;
      return ch_sys(SYS_recvmsg, fd, m, flags);
    }
    long r = ch_sys(SYS_recvmsg, fd, m, flags | MSG_DONTWAIT);
    if (r != -EAGAIN) return r;
    int w = await(fd, COHOOK_READABLE, &deadline, &fi->rcvtimeo_ns);
    if (w < 0) return w;
  }
}

/* ---- writes: a blocking write returns when all of it is written ----------------------------------- */

static long try_writev(int fd, struct ch_fdinfo *fi, const struct iovec *iov, int cnt, int flags) {
  if (atomic_load_explicit(&fi->kind, memory_order_relaxed) == CH_FD_SOCKET) {
    struct msghdr m = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)cnt};
    return ch_sys(SYS_sendmsg, fd, &m, flags | MSG_DONTWAIT);
  }
  if (atomic_load_explicit(&fi->nowait_bad, memory_order_relaxed)) return -EOPNOTSUPP;
  long r = ch_sys6(SYS_pwritev2, fd, (long)iov, cnt, -1, -1, RWF_NOWAIT);
  if (r == -EOPNOTSUPP || r == -EINVAL) {
    atomic_store_explicit(&fi->nowait_bad, 1, memory_order_relaxed);
    return -EOPNOTSUPP;
  }
  return r;
}

/* Drop the first n bytes from an iovec array in place. */
static void iov_advance(struct iovec **iov, int *cnt, size_t n) {
  while (*cnt && n >= (*iov)->iov_len) {
    n -= (*iov)->iov_len;
    (*iov)++;
    (*cnt)--;
  }
  if (*cnt && n) {
    (*iov)->iov_base = (char *)(*iov)->iov_base + n;
    (*iov)->iov_len -= n;
  }
}

long ch_io_writev_flags(int fd, struct ch_fdinfo *fi, const struct iovec *iov_in, int cnt, int flags) {
  if (cnt < 0 || cnt > 1024) return -EINVAL;
  size_t total = 0;
  for (int i = 0; i < cnt; i++) total += iov_in[i].iov_len;
  struct iovec local[8], *copy = cnt <= 8 ? local : ch_alloc((size_t)cnt * sizeof *copy);
  if (!copy) return -ENOMEM;
  memcpy(copy, iov_in, (size_t)cnt * sizeof *copy);
  struct iovec *iov = copy;
  uint64_t deadline = 0;
  size_t done = 0;
  long ret;
  for (;;) {
    long r = try_writev(fd, fi, iov, cnt, flags);
    if (r == -EOPNOTSUPP) {
      int w = await(fd, COHOOK_WRITABLE, &deadline, &fi->sndtimeo_ns);
      r = w < 0 ? w : ch_sys(SYS_writev, fd, iov, cnt);
    }
    if (r >= 0) {
      done += (size_t)r;
      if (done >= total || r == 0) { ret = (long)done; break; }
      iov_advance(&iov, &cnt, (size_t)r);
      continue;
    }
    if (r != -EAGAIN) { ret = done ? (long)done : r; break; }
    int w = await_p(fd, COHOOK_WRITABLE, &deadline, &fi->sndtimeo_ns, done > 0);
    if (w < 0) { ret = done ? (long)done : w; break; }
  }
  if (copy != local) ch_free(copy);
  return ret;
}

long ch_io_writev(int fd, struct ch_fdinfo *fi, const struct iovec *iov, int cnt) {
  return ch_io_writev_flags(fd, fi, iov, cnt, 0);
}

long ch_io_write(int fd, struct ch_fdinfo *fi, const void *buf, size_t n) {
  struct iovec v = {(void *)buf, n};
  long r = ch_io_writev_flags(fd, fi, &v, 1, 0);
  if (r != -ENOTSOCK || atomic_load_explicit(&fi->kind, memory_order_relaxed) != CH_FD_SOCKET) return r;
  fi = reclassify(fd);
  return fi ? ch_io_writev_flags(fd, fi, &v, 1, 0) : ch_sys(SYS_write, fd, buf, n);
}

long ch_io_sendto(int fd, struct ch_fdinfo *fi, const void *buf, size_t n, int flags,
                  const struct sockaddr *addr, ch_socklen_t alen) {
  if (!addr) {
    struct iovec v = {(void *)buf, n};
    return ch_io_writev_flags(fd, fi, &v, 1, flags);
  }
  /* Addressed sends are datagrams (or a TCP fast-open connect): one whole attempt at a time. */
  uint64_t deadline = 0;
  for (;;) {
    long r = ch_sys6(SYS_sendto, fd, (long)buf, (long)n, flags | MSG_DONTWAIT, (long)addr, alen);
    if (r != -EAGAIN) return r;
    int w = await(fd, COHOOK_WRITABLE, &deadline, &fi->sndtimeo_ns);
    if (w < 0) return w;
  }
}

long ch_io_sendmsg(int fd, struct ch_fdinfo *fi, const struct msghdr *m, int flags) {
  if (!m->msg_name && !m->msg_control && m->msg_iovlen <= 1024)
    return ch_io_writev_flags(fd, fi, m->msg_iov, (int)m->msg_iovlen, flags);
  uint64_t deadline = 0;
  for (;;) { /* ancillary data (fd passing) or an address: the first part goes with them */
    long r = ch_sys(SYS_sendmsg, fd, m, flags | MSG_DONTWAIT);
    if (r >= 0 && atomic_load_explicit(&fi->stream, memory_order_relaxed) && m->msg_iovlen <= 1024) {
      /* A stream socket took part of it: a blocking sendmsg goes on with the rest, which no longer
       * carries the control data. */
      size_t total = 0;
      for (size_t i = 0; i < m->msg_iovlen; i++) total += m->msg_iov[i].iov_len;
      if ((size_t)r >= total) return r;
      struct iovec local[8], *copy = m->msg_iovlen <= 8 ? local : ch_alloc(m->msg_iovlen * sizeof *copy);
      if (!copy) return r;
      memcpy(copy, m->msg_iov, m->msg_iovlen * sizeof *copy);
      struct iovec *iov = copy;
      int cnt = (int)m->msg_iovlen;
      iov_advance(&iov, &cnt, (size_t)r);
      long rest = ch_io_writev_flags(fd, fi, iov, cnt, flags);
      if (copy != local) ch_free(copy);
      return rest > 0 ? r + rest : r;
    }
    if (r != -EAGAIN) return r;
    int w = await(fd, COHOOK_WRITABLE, &deadline, &fi->sndtimeo_ns);
    if (w < 0) return w;
  }
}

/* ---- accept and connect --------------------------------------------------------------------------- */

/* Before a transient O_NONBLOCK of ours, see whether the program itself made the (shared)
 * description non-blocking meanwhile: then the call is simply the program's own. */
static bool now_nonblocking(int fd, struct ch_fdinfo *fi) {
  if (atomic_load_explicit(&fi->shared, memory_order_relaxed)) ch_fd_refresh(fd, fi);
  return atomic_load_explicit(&fi->user_nonblock, memory_order_relaxed);
}

long ch_io_accept(int fd, struct ch_fdinfo *fi, struct sockaddr *addr, ch_socklen_t *alen, int flags) {
  uint64_t deadline = 0;
  if (now_nonblocking(fd, fi)) {
    long r = ch_sys4(SYS_accept4, fd, addr, alen, flags);
    if (r >= 0) ch_fd_accepted(fd, (int)r, flags);
    return r;
  }
  for (;;) {
    ch_fd_nonblock_hold(fd, fi);
    long r = ch_sys4(SYS_accept4, fd, addr, alen, flags);
    ch_fd_nonblock_release(fd, fi);
    if (r >= 0) {
      ch_fd_accepted(fd, (int)r, flags);
      return r;
    }
    if (r != -EAGAIN) return r;
    int w = await(fd, COHOOK_READABLE, &deadline, &fi->rcvtimeo_ns);
    if (w < 0) return w;
  }
}

long ch_io_connect(int fd, struct ch_fdinfo *fi, const struct sockaddr *addr, ch_socklen_t alen) {
  if (now_nonblocking(fd, fi)) return ch_sys(SYS_connect, fd, addr, alen);
  uint64_t deadline = timeo_deadline(&fi->sndtimeo_ns);
  for (;;) {
    ch_fd_nonblock_hold(fd, fi);
    long r = ch_sys(SYS_connect, fd, addr, alen);
    ch_fd_nonblock_release(fd, fi);
    if (r == -EAGAIN && addr && addr->sa_family == AF_UNIX) {
      /* A full AF_UNIX backlog: a blocking connect sleeps until the server accepts, and there is no
       * readiness to wait for; poll for it every millisecond, within SO_SNDTIMEO. */
      if (deadline != CH_NO_DEADLINE && ch_now_ns() >= deadline) return -EAGAIN;
      long rc = ch_io_sleep_until(ch_deadline_after(1000000));
      static const struct timespec ms1 = {0, 1000000};
      if (rc == CH_E_NOSCHED) rc = ch_sys(SYS_nanosleep, &ms1, NULL, 0);
      if (rc < 0) return rc;
      continue;
    }
    if (r != -EINPROGRESS && r != -EALREADY) return r;
    struct ch_sched *s = ch_sched_get();
    int w;
    if (s) {
      ch_self()->intr = deadline != CH_NO_DEADLINE ? CH_INTR_ALWAYS : CH_INTR_NORESTART;
      w = ch_fd_wait(fd, COHOOK_WRITABLE, deadline);
      ch_self()->intr = 0;
    } else {
      w = native_wait(fd, COHOOK_WRITABLE, deadline); /* as the kernel's blocking connect */
    }
    /* SO_SNDTIMEO expiry: the kernel answers EINPROGRESS and leaves the attempt running. */
    if (w == -ETIMEDOUT) return -EINPROGRESS;
    if (w < 0) return w;
    /* Finish the way the kernel's own blocking connect does: ask connect() again. It reports the
     * outcome (0 or the error, which it consumes) and moves the socket out of its connecting state,
     * so a later connect() answers EISCONN and a failed socket can be connected anew. Reading
     * SO_ERROR instead would leave the socket half-way (a retry answers ECONNABORTED). */
    ch_fd_nonblock_hold(fd, fi);
    r = ch_sys(SYS_connect, fd, addr, alen);
    ch_fd_nonblock_release(fd, fi);
    if (r == -EISCONN) return 0;
    if (r == -EALREADY || r == -EINPROGRESS) continue; /* spurious readiness: keep waiting */
    return r;
  }
}

/* ---- readiness multiplexers: poll, select, epoll_wait --------------------------------------------- */

static const struct timespec zero_ts;

/* poll, select and epoll_wait are interrupted by every handler, SA_RESTART or not (signal(7)).
 * CH_E_NOSCHED: no scheduler serves here; the caller makes its own blocking call instead. */
static int wait_any_intr(const int *fds, const int *events, size_t n, uint64_t deadline) {
  struct ch_sched *s = ch_sched_get();
  if (!s) return CH_E_NOSCHED;
  ch_self()->intr = CH_INTR_ALWAYS;
  int w = ch_fd_wait_any(fds, events, n, deadline);
  ch_self()->intr = 0;
  return w;
}

static int poll_bits(short ev) {
  return ((ev & (POLLIN | POLLRDNORM | POLLRDHUP)) ? COHOOK_READABLE : 0) | ((ev & POLLPRI) ? CH_FD_URGENT : 0) |
         ((ev & (POLLOUT | POLLWRBAND | POLLWRNORM)) ? COHOOK_WRITABLE : 0);
}

void ch_io_note_empty(int fd) {
  struct ch_fdinfo *fi = ch_fd_info(fd);
  if (fi) atomic_store_explicit(&fi->drained, 1, memory_order_relaxed);
}

/* The kernel always has the last word: we only wait for "something may be ready", then ask it again
 * with a zero timeout, so revents, POLLNVAL, POLLHUP and counts are the kernel's own. The first look
 * is skipped for one fd whose last read found its queue empty (drained): the program polls right
 * after an EAGAIN, and that look would answer "nothing" (MariaDB waits for each statement so: one
 * syscall in ten). The fd's watcher is level-triggered: data that came meanwhile is reported at once. */
long ch_io_poll(struct pollfd *fds, unsigned long n, uint64_t deadline) {
  int lfds[16], lev[16], *wfds = lfds, *wev = lev;
  long r = 0;
  bool look = true;
  if (n == 1 && fds[0].fd >= 0 && (fds[0].events & (POLLIN | POLLRDNORM)) && deadline != 0) {
    struct ch_fdinfo *fi = ch_fd_info(fds[0].fd);
    if (fi && atomic_load_explicit(&fi->drained, memory_order_relaxed)) {
      atomic_store_explicit(&fi->drained, 0, memory_order_relaxed);
      look = false;
    }
  }
  for (;;) {
    if (look) {
      r = ch_sys5(SYS_ppoll, fds, n, &zero_ts, NULL, 8);
      if (r != 0 || deadline == 0 || ch_now_ns() >= deadline) break;
    }
    look = true;
    if (wfds == lfds && n > 16) {
      wfds = ch_alloc(n * sizeof *wfds);
      wev = ch_alloc(n * sizeof *wev);
      if (!wfds || !wev) { r = -ENOMEM; break; }
    }
    for (unsigned long i = 0; i < n; i++) {
      wfds[i] = fds[i].fd;
      /* events 0 still reports errors and hang-ups: wake on anything for that fd */
      wev[i] = fds[i].events ? poll_bits(fds[i].events) : COHOOK_READABLE;
    }
    int w = wait_any_intr(wfds, wev, n, deadline);
    if (w == CH_E_NOSCHED) { r = ch_sys5(SYS_ppoll, fds, n, left_ts(deadline, &(struct timespec){0, 0}), NULL, 8); break; }
    if (w == -EINTR || w == -ENOMEM) { r = w; break; }
  }
  if (wfds != lfds) ch_free(wfds), ch_free(wev);
  return r;
}

long ch_io_select(int nfds, void *rdv, void *wrv, void *exv, uint64_t deadline) {
  fd_set *rd = rdv, *wr = wrv, *ex = exv;
  if (nfds < 0) return -EINVAL;
  size_t words = ((size_t)nfds + 63) / 64, bytes = words * 8;
  fd_set in[3];
  fd_set *sets[3] = {rd, wr, ex};
  for (int k = 0; k < 3; k++)
    if (sets[k]) memcpy(&in[k], sets[k], bytes < sizeof(fd_set) ? bytes : sizeof(fd_set));
  int lfds[64], lev[64], *wfds = lfds, *wev = lev;
  long r;
  for (;;) {
    for (int k = 0; k < 3; k++)
      if (sets[k]) memcpy(sets[k], &in[k], bytes < sizeof(fd_set) ? bytes : sizeof(fd_set));
    r = ch_sys6(SYS_pselect6, nfds, (long)rd, (long)wr, (long)ex, (long)&zero_ts, 0);
    if (r != 0 || deadline == 0 || ch_now_ns() >= deadline) break;
    size_t m = 0;
    for (int fd = 0; fd < nfds && fd < FD_SETSIZE; fd++) {
      int ev = (rd && FD_ISSET(fd, &in[0]) ? COHOOK_READABLE : 0) | (ex && FD_ISSET(fd, &in[2]) ? CH_FD_URGENT : 0) |
               (wr && FD_ISSET(fd, &in[1]) ? COHOOK_WRITABLE : 0);
      if (!ev) continue;
      if (wfds == lfds && m == 64) {
        wfds = ch_alloc(FD_SETSIZE * sizeof *wfds);
        wev = ch_alloc(FD_SETSIZE * sizeof *wev);
        if (!wfds || !wev) { r = -ENOMEM; goto out; }
        memcpy(wfds, lfds, sizeof lfds);
        memcpy(wev, lev, sizeof lev);
      }
      wfds[m] = fd;
      wev[m++] = ev;
    }
    /* select(0, NULL, NULL, NULL, &tv) is the classic portable sleep */
    int w = m ? wait_any_intr(wfds, wev, m, deadline) : (int)ch_io_sleep_until(deadline);
    if (w == CH_E_NOSCHED) {
      for (int k = 0; k < 3; k++)
        if (sets[k]) memcpy(sets[k], &in[k], bytes < sizeof(fd_set) ? bytes : sizeof(fd_set));
      r = ch_sys6(SYS_pselect6, nfds, (long)rd, (long)wr, (long)ex, (long)left_ts(deadline, &(struct timespec){0, 0}), 0);
      break;
    }
    if (w == -EINTR || w == -ENOMEM) { r = w; break; }
  }
out:
  if (wfds != lfds) ch_free(wfds), ch_free(wev);
  return r;
}

long ch_io_epoll_wait(int epfd, struct epoll_event *ev, int max, uint64_t deadline) {
  for (;;) {
    long r = ch_sys6(SYS_epoll_pwait, epfd, (long)ev, max, 0, 0, 8);
    if (r != 0 || deadline == 0 || ch_now_ns() >= deadline) return r;
    /* An epoll fd is itself pollable: readable while it has events to report. */
    int w = wait_any_intr(&epfd, (int[]){COHOOK_READABLE}, 1, deadline);
    if (w == CH_E_NOSCHED) {
      struct pollfd p = {.fd = epfd, .events = POLLIN};
      w = (int)ch_sys5(SYS_ppoll, &p, 1, left_ts(deadline, &(struct timespec){0, 0}), NULL, 8);
    }
    if (w == -EINTR || w == -ENOMEM) return w;
  }
}

/* ---- sleeping -------------------------------------------------------------------------------------- */

long ch_io_sleep_until(uint64_t deadline) {
  CH_RT_SECTION();
  struct ch_sched *s = ch_sched_get();
  if (!s) return CH_E_NOSCHED;
  ch_coro *self = ch_self();
  self->wait_kind = CH_WAIT_SLEEP;
  CH_STAT_WAIT(s, CH_FAM_SLEEP);
  ch_park_prepare(self);
  self->intr = CH_INTR_ALWAYS; /* nanosleep returns EINTR for any handler, SA_RESTART or not */
  int why = ch_park(s, deadline);
  self->intr = 0;
  return why == CH_WAKE_INTR ? -EINTR : 0;
}
