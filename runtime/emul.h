/*
 * emul.h — blocking calls emulated on a worker beyond read/write and the sync objects: waiting for
 * children (proc.c), file locks and the open of a FIFO (offload.c), zero-copy and batched transfers
 * and stdio's refills (xfer.c). Shared by the runtime files that define them and the hook layer.
 * Every function returns a result or -errno; CH_E_PASS: not ours, the hook calls libc.
 */
#ifndef CH_EMUL_H
#define CH_EMUL_H

#include <signal.h>
#include <time.h>

#include "internal.h"

/* ---- offload.c ------------------------------------------------------------------------------------ */

/* fn(arg) (one blocking syscall, -errno style) on a helper thread while the coroutine parks; its
 * result. intr (CH_INTR_*): which handlers interrupt the wait — the helper's syscall is then ended
 * with EINTR by a tagged kick signal (offload.c explains). */
long ch_offload_call(long (*fn)(void *), void *arg, int intr);
/* si_value of the kick: the hook layer's signal wrapper runs no handler for a signal carrying it. */
extern const char ch_kick_tag[1];
#define CH_KICK_TAG ((void *)ch_kick_tag)
/* flock(), fcntl(F_SETLKW/F_OFD_SETLKW) on a worker: CH_E_PASS when not ours (non-blocking forms,
 * not a worker), else the result (the non-blocking form first, the blocking one on a helper). */
long ch_lock_flock(int fd, int op);
long ch_lock_fcntl(int fd, int cmd, void *flock_arg);
/* open()/openat() on a worker of a path that is a FIFO, with flags that wait for the other end:
 * made on a helper (its result); CH_E_PASS for every other open. ch_open_may_wait: only the test
 * (for fopen(), which opens inside libc). */
long ch_open(int dirfd, const char *path, int flags, unsigned mode);
bool ch_open_may_wait(int dirfd, const char *path, int flags);

/* ---- proc.c --------------------------------------------------------------------------------------- */

/* wait4 (waitpid, wait, wait3) and waitid without WNOHANG, on a worker: the result; CH_E_PASS: not
 * ours (WNOHANG, or not a worker: libc's blocking call is exact and blocks only its own thread). */
long ch_proc_wait4(int pid, int *status, int options, void *rusage);
long ch_proc_waitid(int idtype, int id, siginfo_t *info, int options);
/* system() on a worker (false: not ours): *status as system() returns it, *err the errno to set or 0
 * (EINTR: a cancellation request ended it, to act on). */
bool ch_proc_system(const char *line, int *status, int *err);

/* ---- worker.c ------------------------------------------------------------------------------------- */

/* The signal mask the program's threads have (its starting thread's when the pool started): what a
 * child spawned from a coroutine-thread starts with, not the worker's (which blocks everything). */
const sigset_t *ch_worker_program_mask(void);

/* ---- xfer.c --------------------------------------------------------------------------------------- */

/* sendfile/splice with a pipe or socket side that would block: CH_E_PASS when no side is ours. */
long ch_io_sendfile(int out_fd, int in_fd, int64_t *off, size_t count);
long ch_io_splice(int in_fd, int64_t *off_in, int out_fd, int64_t *off_out, size_t len, unsigned flags);
struct mmsghdr;
long ch_io_recvmmsg(int fd, struct ch_fdinfo *fi, struct mmsghdr *vec, unsigned vlen, int flags,
                    struct timespec *timeout);
long ch_io_sendmmsg(int fd, struct ch_fdinfo *fi, struct mmsghdr *vec, unsigned vlen, int flags);
/* Wait until fd can be read without blocking (stdio's refill): 0, -EAGAIN (SO_RCVTIMEO), -EINTR,
 * -EBADF; CH_E_PASS when fd is not one we wait for (a file, the program's O_NONBLOCK). */
long ch_io_wait_readable(int fd);

#endif /* CH_EMUL_H */
