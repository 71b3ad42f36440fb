/*
 * hook.h — what every hook/ file shares: the real libc functions and the errno conversion.
 *
 * A hook is thin by rule: decide whether the call is ours (ch_io_fd and friends), call the runtime,
 * and turn its -errno into errno + -1 in exactly one place, ch_ret(). Everything else lives in
 * runtime/. Calls that are not ours go to the next definition in the lookup order — libc's — through
 * ch_real, resolved once with dlsym(RTLD_NEXT).
 */
#ifndef CH_HOOK_H
#define CH_HOOK_H

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define CH_REAL_LIST(X)                                                                              \
  X(read) X(readv) X(write) X(writev) X(recv) X(recvfrom) X(recvmsg) X(send) X(sendto) X(sendmsg)   \
  X(accept) X(accept4) X(connect) X(socket) X(socketpair) X(pipe) X(pipe2) X(close) X(dup) X(dup2)  \
  X(dup3) X(fcntl) X(ioctl) X(setsockopt) X(sleep) X(usleep) X(nanosleep) X(clock_nanosleep)      \
  X(poll) X(ppoll) X(select) X(pselect) X(epoll_wait) X(epoll_pwait) X(sigaction) X(fork)

struct ch_real {
#define CH_REAL_FIELD(n) __typeof__(n) *n;
  CH_REAL_LIST(CH_REAL_FIELD)
#undef CH_REAL_FIELD
};
extern struct ch_real ch_real;
void ch_real_init(void);

/* The real function; resolved on first use if a hook runs before our constructor (another library's
 * constructor may already do I/O). */
#define REAL(n) (CH_LIKELY(ch_real.n != NULL) ? ch_real.n : (ch_real_init(), ch_real.n))

/* The one place where a runtime result becomes the libc convention. */
static inline long ch_ret(long r) {
  if (CH_UNLIKELY(r < 0)) {
    errno = (int)-r;
    return -1;
  }
  return r;
}

extern void __chk_fail(void) __attribute__((noreturn));

/* A relative timeout in ms as poll/epoll take it: < 0 none, 0 just look. */
static inline uint64_t ch_ms_deadline(int ms) {
  return ms < 0 ? CH_NO_DEADLINE : ms == 0 ? 0 : ch_deadline_after((int64_t)ms * 1000000);
}

#endif /* CH_HOOK_H */
