/*
 * xfer.c — zero-copy and batched transfers (sendfile, splice, recvmmsg, sendmmsg) and stdio's refills,
 * emulated on coroutines with the program's semantics, in the manner of io.c: the call in its
 * non-blocking form, a park on the fd when it would block, the retry.
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <time.h>
#include <sys/socket.h>

#include "internal.h"
#include "emul.h"
#include "sys.h"

/* Park until fd is ready, as io.c's waits do (that file keeps its own helpers static). 0: try again;
 * < 0: give up with that error — -EAGAIN when the socket's SO_RCVTIMEO/SO_SNDTIMEO ran out, as the
 * kernel reports it. *deadline 0 on the first wait of a call: then a shared description is looked at
 * again (another process may have made it non-blocking) and the socket's timeout starts. partial:
 * the call has moved data already, so any handler ends it (SA_RESTART restarts only calls that moved
 * nothing). */
static int await_p(int fd, int events, uint64_t *deadline, _Atomic int64_t *timeo, bool partial) {
  struct ch_fdinfo *fi = ch_fd_info(fd);
  if (*deadline == 0) {
    if (fi && atomic_load_explicit(&fi->shared, memory_order_relaxed)) {
      ch_fd_refresh(fd, fi);
      if (atomic_load_explicit(&fi->user_nonblock, memory_order_relaxed)) return -EAGAIN;
    }
    int64_t t = atomic_load_explicit(timeo, memory_order_relaxed);
    *deadline = t > 0 ? ch_deadline_after(t) : CH_NO_DEADLINE;
  }
  struct ch_sched *s = ch_sched_get();
  if (!s) { /* no scheduler serves here: block in the kernel, as the program's own call would */
    struct pollfd pfd = {.fd = fd, .events = (short)((events & COHOOK_READABLE ? POLLIN : 0) |
                                                     (events & COHOOK_WRITABLE ? POLLOUT : 0))};
    struct timespec ts, *tsp = NULL;
    if (*deadline != CH_NO_DEADLINE) {
      uint64_t now = ch_now_ns(), left = *deadline > now ? *deadline - now : 0;
      ts.tv_sec = (time_t)(left / 1000000000u);
      ts.tv_nsec = (long)(left % 1000000000u);
      tsp = &ts;
    }
    long r = ch_sys5(SYS_ppoll, &pfd, 1, tsp, NULL, 8);
    return r == 0 ? -EAGAIN : r < 0 ? (int)r : 0;
  }
  ch_self()->intr = *deadline != CH_NO_DEADLINE || partial ? CH_INTR_ALWAYS : CH_INTR_NORESTART;
  int w = ch_fd_wait(fd, events, *deadline);
  ch_self()->intr = 0;
  if (w > 0) return 0;
  return w == -ETIMEDOUT ? -EAGAIN : w;
}

static int await(int fd, int events, uint64_t *deadline, _Atomic int64_t *timeo) {
  return await_p(fd, events, deadline, timeo, false);
}

/* ---- sendfile, splice: zero-copy transfers ------------------------------------------------------------
 * Neither has a per-call non-blocking form for a socket: the socket side waits as its file's
 * O_NONBLOCK says (splice_to_socket, tcp_splice_read), and SPLICE_F_NONBLOCK covers only pipe sides;
 * sendfile takes no flags at all. So a socket side holds the transient O_NONBLOCK that accept() and
 * connect() use (fdtab.c), around each attempt only, never across a wait; pipe sides get
 * SPLICE_F_NONBLOCK (a sendfile into a pipe is made as the splice it is in the kernel,
 * splice_file_to_pipe, so a pipe's flags never change). A would-block attempt is followed by a wait
 * for the side that blocked (asked with a zero-timeout poll when both sides could have) and a retry.
 *
 * How much a blocking call moves, as natively:
 *   - sendfile to a socket sends all of count (up to the file's end), like a blocking write: the
 *     kernel's loop (splice_direct_to_actor) only stops short when the socket is non-blocking; so
 *     partial attempts are continued (at most MAX_RW_COUNT in all, the kernel's cap per call);
 *   - splice from a pipe into a socket sends everything the pipe held (up to len) before returning:
 *     continued while the pipe still has data;
 *   - every other case (into a pipe, from a socket) returns what the first successful attempt moved,
 *     which is what the kernel's blocking call returns once it stops waiting.
 * Costs: into or out of a socket each attempt is 3 syscalls (fcntl, the call, fcntl) instead of one:
 * there is no other way to make the kernel not wait there. Pipes and files cost nothing extra. */

#define CH_MAX_RW_COUNT 0x7ffff000L

struct xfer_op {
  bool sendfile;
  bool pipe_nb; /* the program's own SPLICE_F_NONBLOCK: pipe sides are not waited for */
  int64_t *off_in, *off_out;
  unsigned flags;
};

struct side {
  int fd;
  int kind;             /* CH_FD_* as far as known: CH_FD_UNKNOWN (not classified yet) counts as a file */
  struct ch_fdinfo *fi; /* emulated: it would block natively and we wait for it; else NULL */
  bool hold;            /* an O_NONBLOCK of ours around each attempt */
  bool can_block;       /* a pipe or socket: an EAGAIN may come from this side (ours or the program's) */
};

/* Classifying an fd costs an fstat and an fcntl: a file just open()ed for sendfile is not
 * classified unless it must be (neither side known to be ours, or an attempt would block). The one
 * case this misses: a socket or pipe never seen by the hooks (inherited, or made by a raw syscall)
 * on the input side of a call whose output side is ours blocks the worker in its first attempt. */
static void side_set(struct side *sd, const struct xfer_op *op, bool is_in, bool classify) {
  struct ch_fdinfo *fi = ch_fd_info(sd->fd);
  sd->fi = NULL;
  sd->hold = sd->can_block = false;
  sd->kind = -1;
  if (!fi || ch_tls_bypass) return;
  int kind = atomic_load_explicit(&fi->kind, memory_order_acquire);
  if (kind == CH_FD_UNKNOWN && classify) kind = ch_fd_classify(sd->fd, fi);
  sd->kind = kind;
  if (op->sendfile && is_in && kind == CH_FD_PIPE) return; /* sendfile cannot read a pipe: EINVAL */
  sd->can_block = kind == CH_FD_SOCKET || kind == CH_FD_PIPE;
  if (!sd->can_block || !ch_io_fd(sd->fd)) return; /* the program's own O_NONBLOCK */
  if (kind == CH_FD_PIPE && op->pipe_nb) return;
  sd->fi = fi;
  sd->hold = kind == CH_FD_SOCKET;
}

static long xfer_try(const struct xfer_op *op, struct side *in, struct side *out, size_t len) {
  if (in->hold) ch_fd_nonblock_hold(in->fd, in->fi);
  if (out->hold) ch_fd_nonblock_hold(out->fd, out->fi);
  long r;
  if (op->sendfile && out->kind != CH_FD_PIPE)
    r = ch_sys4(SYS_sendfile, out->fd, in->fd, op->off_in, len);
  else /* sendfile into a pipe is the kernel's splice_file_to_pipe, which splice() makes too */
    r = ch_sys6(SYS_splice, in->fd, (long)op->off_in, out->fd, op->sendfile ? 0 : (long)op->off_out, (long)len,
                op->flags | SPLICE_F_NONBLOCK);
  if (out->hold) ch_fd_nonblock_release(out->fd, out->fi);
  if (in->hold) ch_fd_nonblock_release(in->fd, in->fi);
  return r;
}

/* After an EAGAIN: which side is not ready (NULL: both look ready). */
static struct side *blocked_side(struct side *in, struct side *out) {
  if (!in->can_block) return out;
  if (!out->can_block) return in;
  struct pollfd p[2] = {{.fd = in->fd, .events = POLLIN}, {.fd = out->fd, .events = POLLOUT}};
  static const struct timespec now0 = {0, 0};
  if (ch_sys5(SYS_ppoll, p, 2, &now0, NULL, 8) < 0) return NULL;
  if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR))) return in;
  if (!(p[1].revents & (POLLOUT | POLLHUP | POLLERR))) return out;
  return NULL;
}

/* A blocking call that moves everything (see above): sendfile to a socket, splice pipe -> socket. */
static bool moves_all(const struct xfer_op *op, const struct side *in, const struct side *out) {
  return out->kind == CH_FD_SOCKET && (op->sendfile || in->kind == CH_FD_PIPE);
}

static long xfer(const struct xfer_op *op, int in_fd, int out_fd, size_t len) {
  struct side in = {.fd = in_fd}, out = {.fd = out_fd};
  side_set(&in, op, true, false);
  side_set(&out, op, false, false);
  if (!in.fi && !out.fi) {
    if (in.kind != CH_FD_UNKNOWN && out.kind != CH_FD_UNKNOWN) return CH_E_PASS;
    side_set(&in, op, true, true);
    side_set(&out, op, false, true);
    if (!in.fi && !out.fi) return CH_E_PASS;
  }
  if (len > (size_t)CH_MAX_RW_COUNT) len = (size_t)CH_MAX_RW_COUNT;
  uint64_t deadline = 0;
  size_t done = 0;
  for (;;) {
    long r = xfer_try(op, &in, &out, len - done);
    if (r > 0) {
      done += (size_t)r;
      if (!moves_all(op, &in, &out) || done >= len) return (long)done;
      continue; /* a socket took part of it: the rest, or 0 (end of input) / EAGAIN (it is full) */
    }
    if (r == 0) return (long)done;
    if (r != -EAGAIN) return done ? (long)done : r;
    if (in.kind == CH_FD_UNKNOWN || out.kind == CH_FD_UNKNOWN) { /* now it is worth knowing */
      side_set(&in, op, true, true);
      side_set(&out, op, false, true);
    }
    struct side *b = blocked_side(&in, &out);
    if (done && b == &in) return (long)done; /* nothing more to move now: as natively */
    if (b && !b->fi) return done ? (long)done : -EAGAIN; /* the program's own non-blocking side */
    int w;
    if (!b) { /* both look ready, yet it would block (a pipe with room for less than a page ...) */
      static const struct timespec ms1 = {0, 1000000};
      w = (int)ch_io_sleep_until(ch_deadline_after(1000000));
      if (w == CH_E_NOSCHED) w = (int)ch_sys(SYS_nanosleep, &ms1, NULL, 0);
    } else if (b == &in) {
      w = await_p(in.fd, COHOOK_READABLE, &deadline, &in.fi->rcvtimeo_ns, done > 0);
    } else {
      w = await_p(out.fd, COHOOK_WRITABLE, &deadline, &out.fi->sndtimeo_ns, done > 0);
    }
    if (w < 0) return done ? (long)done : w;
  }
}

long ch_io_sendfile(int out_fd, int in_fd, int64_t *off, size_t count) {
  if (ch_tls_bypass) return CH_E_PASS;
  struct xfer_op op = {.sendfile = true, .off_in = off};
  /* sendfile is no cancellation point (glibc makes it a plain syscall; splice is one) */
  int st = PTHREAD_CANCEL_DISABLE, old = PTHREAD_CANCEL_DISABLE;
  bool own = ch_cancel_set(&st, NULL, &old, NULL) == 0;
  long r = xfer(&op, in_fd, out_fd, count);
  if (own && old == PTHREAD_CANCEL_ENABLE) ch_cancel_set(&old, NULL, NULL, NULL);
  return r;
}

long ch_io_splice(int in_fd, int64_t *off_in, int out_fd, int64_t *off_out, size_t len, unsigned flags) {
  if (ch_tls_bypass) return CH_E_PASS;
  struct xfer_op op = {.pipe_nb = (flags & SPLICE_F_NONBLOCK) != 0, .off_in = off_in, .off_out = off_out,
                       .flags = flags};
  return xfer(&op, in_fd, out_fd, len);
}

/* ---- recvmmsg, sendmmsg ----------------------------------------------------------------------------------
 * recvmmsg blocks until vlen messages have come (MSG_WAITFORONE: until one has); its timeout is
 * looked at only after each message (recvmmsg(2) BUGS), and what is left of it is written back when
 * messages were received. Made as MSG_DONTWAIT batches, waiting for readability in between, with the
 * same stops. One difference: an error after some messages (not EAGAIN) ends the call with the count,
 * as natively, but the kernel would keep that error for the next call, which we cannot do.
 * sendmmsg sends every message, each as a blocking sendmsg would: MSG_DONTWAIT batches on datagram
 * sockets (a message goes whole or not at all); one emulated sendmsg per message on stream sockets,
 * where a blocking send completes each message. */

long ch_io_recvmmsg(int fd, struct ch_fdinfo *fi, struct mmsghdr *vec, unsigned vlen, int flags,
                    struct timespec *timeout) {
  uint64_t end = CH_NO_DEADLINE, deadline = 0;
  if (timeout) {
    if (timeout->tv_sec < 0 || timeout->tv_nsec < 0 || timeout->tv_nsec >= 1000000000) return -EINVAL;
    end = ch_deadline_after((int64_t)timeout->tv_sec * 1000000000 + timeout->tv_nsec);
  }
  if (vlen > 1024) vlen = 1024; /* UIO_MAXIOV, as the kernel caps it */
  unsigned done = 0;
  long r;
  for (;;) {
    r = ch_sys6(SYS_recvmmsg, fd, (long)(vec + done), vlen - done, flags | MSG_DONTWAIT, 0, 0);
    if (r > 0) {
      done += (unsigned)r;
      if (done >= vlen || (flags & MSG_WAITFORONE) || (vec[done - 1].msg_hdr.msg_flags & MSG_OOB)) break;
      if (timeout && ch_now_ns() >= end) break;
      continue;
    }
    if (r == 0) break; /* vlen 0 */
    if (r != -EAGAIN) break;
    int w = await_p(fd, COHOOK_READABLE, &deadline, &fi->rcvtimeo_ns, done > 0);
    if (w < 0) {
      r = w;
      break;
    }
  }
  if (!done) return r;
  if (timeout) {
    uint64_t now = ch_now_ns(), left = end > now ? end - now : 0;
    timeout->tv_sec = (time_t)(left / 1000000000u);
    timeout->tv_nsec = (long)(left % 1000000000u);
  }
  return done;
}

long ch_io_sendmmsg(int fd, struct ch_fdinfo *fi, struct mmsghdr *vec, unsigned vlen, int flags) {
  if (vlen > 1024) vlen = 1024;
  unsigned done = 0;
  if (atomic_load_explicit(&fi->stream, memory_order_relaxed)) {
    for (; done < vlen; done++) {
      long r = ch_io_sendmsg(fd, fi, &vec[done].msg_hdr, flags);
      if (r < 0) return done ? (long)done : r;
      vec[done].msg_len = (unsigned)r;
    }
    return done;
  }
  uint64_t deadline = 0;
  for (;;) {
    long r = ch_sys4(SYS_sendmmsg, fd, vec + done, vlen - done, flags | MSG_DONTWAIT);
    if (r > 0) {
      done += (unsigned)r;
      if (done >= vlen) return done;
      continue; /* the next one would block (or failed: asked again, it says which) */
    }
    if (r == 0) return done;
    if (r != -EAGAIN) return done ? (long)done : r;
    int w = await(fd, COHOOK_WRITABLE, &deadline, &fi->sndtimeo_ns);
    if (w < 0) return done ? (long)done : w;
  }
}

/* ---- stdio's refills ---------------------------------------------------------------------------------- */

long ch_io_wait_readable(int fd) {
  struct ch_fdinfo *fi = ch_io_fd(fd);
  if (!fi) return CH_E_PASS;
  uint64_t deadline = 0;
  return await(fd, COHOOK_READABLE, &deadline, &fi->rcvtimeo_ns);
}
