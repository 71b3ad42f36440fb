/*
 * net.c — socket calls. A call the program already made non-blocking (MSG_DONTWAIT) is its own
 * business and goes to libc untouched.
 */
#include "hook.h"

/* MSG_DONTWAIT: the program asked for non-blocking itself. MSG_ERRQUEUE never blocks. */
static struct ch_fdinfo *ours(int fd, int flags) {
  return (flags & (MSG_DONTWAIT | MSG_ERRQUEUE)) ? NULL : ch_io_fd(fd);
}

CH_EXPORT ssize_t recv(int fd, void *buf, size_t n, int flags) {
  struct ch_fdinfo *fi = ours(fd, flags);
  if (!fi) return ch_passed_read(fd, REAL(recv)(fd, buf, n, flags));
  CH_STAT_CALL(CH_FAM_READ);
  return ch_ret(ch_io_recvfrom(fd, fi, buf, n, flags, NULL, NULL));
}

CH_EXPORT ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags) {
  if (n > buflen) __chk_fail();
  return recv(fd, buf, n, flags);
}

CH_EXPORT ssize_t recvfrom(int fd, void *restrict buf, size_t n, int flags, struct sockaddr *restrict addr,
                           socklen_t *restrict alen) {
  struct ch_fdinfo *fi = ours(fd, flags);
  if (!fi) return ch_passed_read(fd, REAL(recvfrom)(fd, buf, n, flags, addr, alen));
  CH_STAT_CALL(CH_FAM_READ);
  return ch_ret(ch_io_recvfrom(fd, fi, buf, n, flags, addr, alen));
}

CH_EXPORT ssize_t __recvfrom_chk(int fd, void *restrict buf, size_t n, size_t buflen, int flags,
                                 struct sockaddr *restrict addr, socklen_t *restrict alen) {
  if (n > buflen) __chk_fail();
  return recvfrom(fd, buf, n, flags, addr, alen);
}

CH_EXPORT ssize_t recvmsg(int fd, struct msghdr *m, int flags) {
  struct ch_fdinfo *fi = ours(fd, flags);
  if (!fi) return ch_passed_read(fd, REAL(recvmsg)(fd, m, flags));
  CH_STAT_CALL(CH_FAM_READ);
  return ch_ret(ch_io_recvmsg(fd, fi, m, flags));
}

CH_EXPORT ssize_t send(int fd, const void *buf, size_t n, int flags) {
  struct ch_fdinfo *fi = ours(fd, flags);
  if (!fi) return REAL(send)(fd, buf, n, flags);
  CH_STAT_CALL(CH_FAM_WRITE);
  return ch_ret(ch_io_sendto(fd, fi, buf, n, flags, NULL, 0));
}

CH_EXPORT ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *addr,
                         socklen_t alen) {
  struct ch_fdinfo *fi = ours(fd, flags);
  if (!fi) return REAL(sendto)(fd, buf, n, flags, addr, alen);
  CH_STAT_CALL(CH_FAM_WRITE);
  return ch_ret(ch_io_sendto(fd, fi, buf, n, flags, addr, alen));
}

CH_EXPORT ssize_t sendmsg(int fd, const struct msghdr *m, int flags) {
  struct ch_fdinfo *fi = ours(fd, flags);
  if (!fi) return REAL(sendmsg)(fd, m, flags);
  CH_STAT_CALL(CH_FAM_WRITE);
  return ch_ret(ch_io_sendmsg(fd, fi, m, flags));
}

CH_EXPORT int accept4(int fd, struct sockaddr *restrict addr, socklen_t *restrict alen, int flags) {
  struct ch_fdinfo *fi = ch_io_fd(fd);
  if (!fi) {
    int r = REAL(accept4)(fd, addr, alen, flags);
    if (r >= 0) ch_fd_accepted(fd, r, flags);
    return r;
  }
  CH_STAT_CALL(CH_FAM_READ);
  return (int)ch_ret(ch_io_accept(fd, fi, addr, alen, flags));
}

CH_EXPORT int accept(int fd, struct sockaddr *restrict addr, socklen_t *restrict alen) {
  return accept4(fd, addr, alen, 0);
}

CH_EXPORT int connect(int fd, const struct sockaddr *addr, socklen_t alen) {
  struct ch_fdinfo *fi = ch_io_fd(fd);
  if (!fi) return REAL(connect)(fd, addr, alen);
  CH_STAT_CALL(CH_FAM_WRITE);
  return (int)ch_ret(ch_io_connect(fd, fi, addr, alen));
}

CH_EXPORT int socket(int domain, int type, int proto) {
  int fd = REAL(socket)(domain, type, proto);
  if (fd >= 0) {
    ch_fd_created(fd, CH_FD_SOCKET, (type & SOCK_NONBLOCK) != 0, O_RDWR);
    ch_fd_set_stream(fd, (type & 0xf) == SOCK_STREAM);
  }
  return fd;
}

CH_EXPORT int socketpair(int domain, int type, int proto, int sv[2]) {
  int r = REAL(socketpair)(domain, type, proto, sv);
  if (r == 0) {
    ch_fd_created(sv[0], CH_FD_SOCKET, (type & SOCK_NONBLOCK) != 0, O_RDWR);
    ch_fd_created(sv[1], CH_FD_SOCKET, (type & SOCK_NONBLOCK) != 0, O_RDWR);
    ch_fd_set_stream(sv[0], (type & 0xf) == SOCK_STREAM);
    ch_fd_set_stream(sv[1], (type & 0xf) == SOCK_STREAM);
  }
  return r;
}

/* SO_RCVTIMEO / SO_SNDTIMEO reach the kernel as usual (getsockopt reads them back from there) and
 * are remembered, because our waits must end when the kernel's would have. */
CH_EXPORT int setsockopt(int fd, int level, int name, const void *val, socklen_t len) {
  int r = REAL(setsockopt)(fd, level, name, val, len);
  /* SO_RCVTIMEO_NEW/SO_SNDTIMEO_NEW (66/67) take a 64-bit timeval: the same layout on our ABIs. */
  bool rcv = name == SO_RCVTIMEO || name == 66, snd = name == SO_SNDTIMEO || name == 67;
  if (r == 0 && level == SOL_SOCKET && (rcv || snd) && len >= sizeof(struct timeval)) {
    const struct timeval *tv = val;
    ch_fd_set_timeo(fd, rcv, (int64_t)tv->tv_sec * 1000000000 + (int64_t)tv->tv_usec * 1000);
  }
  return r;
}

CH_EXPORT int recvmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags, struct timespec *timeout) {
  struct ch_fdinfo *fi = ours(fd, flags);
  if (!fi) return REAL(recvmmsg)(fd, vec, vlen, flags, timeout);
  return (int)ch_ret(ch_io_recvmmsg(fd, fi, vec, vlen, flags, timeout));
}

CH_EXPORT int sendmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags) {
  struct ch_fdinfo *fi = ours(fd, flags);
  if (!fi) return REAL(sendmmsg)(fd, vec, vlen, flags);
  return (int)ch_ret(ch_io_sendmmsg(fd, fi, vec, vlen, flags));
}
