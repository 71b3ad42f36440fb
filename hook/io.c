/*
 * io.c — read/write families on any fd (sockets, pipes, ttys ...). Regular files and fds the program
 * made non-blocking itself go straight to libc (see ch_io_fd).
 */
#include "hook.h"

CH_EXPORT ssize_t read(int fd, void *buf, size_t n) {
  struct iovec v = {buf, n};
  long q = ch_io_read_unclassified(fd, &v, 1);
  if (q != CH_E_PASS) return ch_ret(q);
  q = ch_hook_signalfd_read(fd, buf, n); /* a coroutine-thread's read of a signalfd */
  if (CH_UNLIKELY(q != CH_E_PASS)) return ch_ret(q);
  struct ch_fdinfo *fi = ch_io_fd(fd);
  if (!fi) return ch_passed_read(fd, REAL(read)(fd, buf, n));
  CH_STAT_CALL(CH_FAM_READ);
  return ch_ret(ch_io_read(fd, fi, buf, n));
}

/* _FORTIFY_SOURCE builds call this when the buffer size is known at compile time. */
CH_EXPORT ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen) {
  if (n > buflen) __chk_fail();
  return read(fd, buf, n);
}

CH_EXPORT ssize_t readv(int fd, const struct iovec *iov, int cnt) {
  long q = ch_io_read_unclassified(fd, iov, cnt);
  if (q != CH_E_PASS) return ch_ret(q);
  struct ch_fdinfo *fi = ch_io_fd(fd);
  if (!fi) return REAL(readv)(fd, iov, cnt);
  CH_STAT_CALL(CH_FAM_READ);
  return ch_ret(ch_io_readv(fd, fi, iov, cnt));
}

CH_EXPORT ssize_t write(int fd, const void *buf, size_t n) {
  struct ch_fdinfo *fi = ch_io_fd(fd);
  if (!fi) return REAL(write)(fd, buf, n);
  CH_STAT_CALL(CH_FAM_WRITE);
  return ch_ret(ch_io_write(fd, fi, buf, n));
}

CH_EXPORT ssize_t writev(int fd, const struct iovec *iov, int cnt) {
  struct ch_fdinfo *fi = ch_io_fd(fd);
  if (!fi) return REAL(writev)(fd, iov, cnt);
  CH_STAT_CALL(CH_FAM_WRITE);
  return ch_ret(ch_io_writev(fd, fi, iov, cnt));
}

/* sendfile and splice: a socket or pipe side that would block waits in the loop (runtime/xfer.c). */
CH_EXPORT ssize_t sendfile(int out, int in, off_t *off, size_t count) {
  long r = ch_io_sendfile(out, in, (int64_t *)off, count);
  if (r != CH_E_PASS) return ch_ret(r);
  return REAL(sendfile)(out, in, off, count);
}

CH_EXPORT ssize_t sendfile64(int out, int in, off64_t *off, size_t count) {
  long r = ch_io_sendfile(out, in, (int64_t *)off, count);
  if (r != CH_E_PASS) return ch_ret(r);
  return REAL(sendfile64)(out, in, off, count);
}

CH_EXPORT ssize_t splice(int in, off64_t *off_in, int out, off64_t *off_out, size_t len, unsigned flags) {
  long r = ch_io_splice(in, (int64_t *)off_in, out, (int64_t *)off_out, len, flags);
  if (r != CH_E_PASS) return ch_ret(r);
  return REAL(splice)(in, off_in, out, off_out, len, flags);
}
