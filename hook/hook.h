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
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "emul.h"

int __underflow(FILE *); /* exported by glibc (for its getc macros), declared by no header */

#define CH_REAL_LIST(X)                                                                              \
  X(read) X(readv) X(write) X(writev) X(recv) X(recvfrom) X(recvmsg) X(send) X(sendto) X(sendmsg)   \
  X(accept) X(accept4) X(connect) X(socket) X(socketpair) X(pipe) X(pipe2) X(close) X(dup) X(dup2)  \
  X(dup3) X(fcntl) X(ioctl) X(setsockopt) X(sleep) X(usleep) X(nanosleep) X(clock_nanosleep)      \
  X(poll) X(ppoll) X(select) X(pselect) X(epoll_wait) X(epoll_pwait) X(epoll_ctl) X(sigaction)   \
  X(fork)                                                                                          \
  X(sched_yield) X(pthread_create) X(pthread_join) X(pthread_tryjoin_np) X(pthread_timedjoin_np)    \
  X(pthread_clockjoin_np) X(pthread_detach) X(pthread_exit) X(pthread_self) X(pthread_getattr_np)   \
  X(pthread_kill) X(pthread_mutex_lock) X(pthread_mutex_trylock) X(pthread_mutex_timedlock)         \
  X(pthread_mutex_clocklock) X(pthread_mutex_unlock) X(pthread_cond_wait) X(pthread_cond_timedwait) \
  X(pthread_cond_clockwait) X(pthread_cond_signal) X(pthread_cond_broadcast)                        \
  X(pthread_rwlock_rdlock) X(pthread_rwlock_tryrdlock) X(pthread_rwlock_timedrdlock)                \
  X(pthread_rwlock_clockrdlock) X(pthread_rwlock_wrlock) X(pthread_rwlock_trywrlock)                \
  X(pthread_rwlock_timedwrlock) X(pthread_rwlock_clockwrlock) X(pthread_rwlock_unlock)              \
  X(pthread_barrier_init) X(pthread_barrier_wait) X(pthread_barrier_destroy) X(sem_init)            \
  X(sem_wait) X(sem_trywait) X(sem_timedwait) X(sem_clockwait) X(sem_post) X(sem_getvalue)          \
  X(sem_destroy) X(pthread_mutex_destroy) X(pthread_spin_lock) X(pthread_setname_np) X(pthread_getname_np)            \
  X(pthread_getschedparam) X(pthread_setschedparam) X(pthread_getaffinity_np)                      \
  X(pthread_setaffinity_np) X(pthread_getcpuclockid) X(pthread_cancel) X(pthread_testcancel) X(pthread_setcancelstate) X(pthread_setcanceltype) X(epoll_create1) X(epoll_create) X(eventfd) X(timerfd_create) X(signalfd) X(fclose) \
  X(pthread_key_create) X(pthread_setspecific) X(flockfile) X(funlockfile) X(prctl)              \
  X(flock) X(lockf64) X(wait4) X(waitpid) X(wait) X(wait3) X(waitid) X(open) X(openat) X(fopen)      \
  X(fopen64) X(system) X(sendfile) X(sendfile64) X(splice) X(recvmmsg) X(sendmmsg) X(fgetc) X(getc)  \
  X(fgetc_unlocked) X(getc_unlocked) X(__uflow) X(__underflow) X(fgets) X(fgets_unlocked) X(getdelim) \
  X(fread) X(fread_unlocked) X(pthread_sigmask) X(sigprocmask) X(sigpending) X(sigtimedwait)           \
  X(sigwaitinfo) X(sigwait) X(sigsuspend) X(pause) X(raise) X(epoll_pwait2)   \
  X(clock_gettime) X(clock_getres) X(getrusage) X(syscall) X(fsync) X(fdatasync) X(syncfs)         \
  X(sync_file_range) X(msync)

struct ch_real {
#define CH_REAL_FIELD(n) __typeof__(n) *n;
  CH_REAL_LIST(CH_REAL_FIELD)
#undef CH_REAL_FIELD
};
extern struct ch_real ch_real;
void ch_real_init(void);

/* signal.c: run the program's handler on the current coroutine (the runtime's run_handler upcall);
 * whether sig's handler was installed with SA_RESTART. */
int ch_hook_run_handler(int sig, const siginfo_t *si);
/* signalfd reads by coroutine-threads (CH_E_PASS: not one of ours to handle). */
void ch_hook_signalfd_made(int fd, const sigset_t *mask);
long ch_hook_signalfd_read(int fd, void *buf, size_t n);
int ch_hook_intr_signal(void);
bool ch_sig_restarts(int sig);

/* real.c: the executable range of the program's allocator when it is not libc's (empty otherwise). */
extern uintptr_t ch_alloc_lo, ch_alloc_hi;
static inline bool ch_from_allocator(const void *ret) {
  return (uintptr_t)ret - ch_alloc_lo < ch_alloc_hi - ch_alloc_lo;
}

/* The real function; resolved on first use if a hook runs before our constructor (another library's
 * constructor may already do I/O). */
#define REAL(n) (CH_LIKELY(ch_real.n != NULL) ? ch_real.n : (ch_real_init(), ch_real.n))

/* The one place where a runtime result becomes the libc convention. A call ended by a cancellation
 * request (EINTR) acts on it here, where the runtime holds nothing: deferred cancellation. */
static inline long ch_ret(long r) {
  CH_ASSERT(r >= -4095); /* the runtime's internal codes (CH_E_*) never reach the program */
  if (CH_UNLIKELY(r < 0)) {
    if (r == -EINTR) ch_cancel_test();
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

/* An absolute time on `clk` as a deadline on our monotonic clock; -EINVAL for a bad timespec. */
static inline int ch_abs_deadline(clockid_t clk, const struct timespec *abs, uint64_t *out) {
  if (!abs) {
    *out = CH_NO_DEADLINE;
    return 0;
  }
  if (abs->tv_nsec < 0 || abs->tv_nsec >= 1000000000) return -EINVAL;
  struct timespec now;
  clock_gettime(clk, &now);
  int64_t rel = (int64_t)(abs->tv_sec - now.tv_sec) * 1000000000 + (abs->tv_nsec - now.tv_nsec);
  *out = rel <= 0 ? ch_now_ns() : ch_deadline_after(rel);
  return 0;
}

/* A read passed to libc (the program's own non-blocking fd, MSG_DONTWAIT) that found nothing: the
 * fd's receive queue is empty, so a poll for it that follows (recv, EAGAIN, poll: how servers with
 * non-blocking sockets wait) need not ask the kernel before it parks (runtime/io.c, ch_io_poll). */
static inline ssize_t ch_passed_read(int fd, ssize_t r) {
  if (r < 0 && errno == EAGAIN) ch_io_note_empty(fd);
  return r;
}

#endif /* CH_HOOK_H */
