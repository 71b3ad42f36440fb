/*
 * fdtab.c — what the runtime knows about each fd: its kind, the program's own view of O_NONBLOCK,
 * SO_RCVTIMEO / SO_SNDTIMEO, and a generation number.
 *
 * The table is two-level (chunks of CH_FD_CHUNK entries, allocated on first touch) so that a process
 * allowed a million fds pays only for the ranges it uses. Entries are read without locks on every
 * hooked call; fields are small atomics, and this file is their only writer: the hooks that create,
 * change or close fds call the setters here.
 *
 * The generation: every close and every creation of an fd through the hooks bumps it. A libev watcher
 * remembers the generation it was registered under (loop.c); a mismatch means the fd number now names
 * a different file — closed by a path we did not see (fclose, a library's raw close) and reused — and
 * the watcher is re-added to epoll instead of waiting on a registration the kernel already dropped.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>

#include "internal.h"
#include "sys.h"

#define CH_FD_CHUNK 1024
#define CH_FD_CHUNKS 1024 /* fds below 1 048 576 are tracked; higher ones are passed straight through */

static struct ch_fdinfo *_Atomic chunks[CH_FD_CHUNKS];

struct ch_fdinfo *ch_fd_info(int fd) {
  if (CH_UNLIKELY(fd < 0 || fd >= CH_FD_CHUNK * CH_FD_CHUNKS)) return NULL;
  struct ch_fdinfo *c = atomic_load_explicit(&chunks[fd / CH_FD_CHUNK], memory_order_acquire);
  if (CH_UNLIKELY(!c)) {
    struct ch_fdinfo *fresh = ch_alloc(CH_FD_CHUNK * sizeof *fresh);
    if (!fresh) return NULL;
    if (atomic_compare_exchange_strong_explicit(&chunks[fd / CH_FD_CHUNK], &c, fresh, memory_order_acq_rel,
                                                memory_order_acquire))
      c = fresh;
    else
      ch_free(fresh); /* another thread won the race; c now holds its chunk */
  }
  return &c[fd % CH_FD_CHUNK];
}

uint32_t ch_fd_gen(int fd) {
  struct ch_fdinfo *fi = ch_fd_info(fd);
  return fi ? atomic_load_explicit(&fi->gen, memory_order_acquire) : 0;
}

static void reset(struct ch_fdinfo *fi) {
  atomic_store_explicit(&fi->kind, CH_FD_UNKNOWN, memory_order_relaxed);
  atomic_store_explicit(&fi->user_nonblock, 0, memory_order_relaxed);
  atomic_store_explicit(&fi->nowait_bad, 0, memory_order_relaxed);
  atomic_store_explicit(&fi->drained, 0, memory_order_relaxed);
  atomic_store_explicit(&fi->stream, 0, memory_order_relaxed);
  atomic_store_explicit(&fi->shared, 0, memory_order_relaxed);
  atomic_store_explicit(&fi->rcvtimeo_ns, 0, memory_order_relaxed);
  atomic_store_explicit(&fi->sndtimeo_ns, 0, memory_order_relaxed);
  atomic_fetch_add_explicit(&fi->gen, 1, memory_order_acq_rel);
}

void ch_fd_created(int fd, int kind, bool nonblock, int flflags) {
  struct ch_fdinfo *fi = ch_fd_info(fd);
  if (!fi) return;
  reset(fi);
  atomic_store_explicit(&fi->user_nonblock, nonblock, memory_order_relaxed);
  atomic_store_explicit(&fi->fl, flflags | (nonblock ? O_NONBLOCK : 0), memory_order_relaxed);
  atomic_store_explicit(&fi->kind, (uint8_t)kind, memory_order_release);
}

void ch_fd_dup(int oldfd, int newfd) {
  struct ch_fdinfo *from = ch_fd_info(oldfd), *to = ch_fd_info(newfd);
  if (!to) return;
  reset(to);
  if (!from) return;
  /* The new fd shares the open file description: same kind, same O_NONBLOCK; socket options too. */
  atomic_store_explicit(&to->user_nonblock, atomic_load(&from->user_nonblock), memory_order_relaxed);
  atomic_store_explicit(&to->nowait_bad, atomic_load(&from->nowait_bad), memory_order_relaxed);
  atomic_store_explicit(&to->rcvtimeo_ns, atomic_load(&from->rcvtimeo_ns), memory_order_relaxed);
  atomic_store_explicit(&to->sndtimeo_ns, atomic_load(&from->sndtimeo_ns), memory_order_relaxed);
  atomic_store_explicit(&to->fl, atomic_load(&from->fl), memory_order_relaxed);
  atomic_store_explicit(&to->stream, atomic_load(&from->stream), memory_order_relaxed);
  /* Both now name one description: a change made through either must be seen through both. */
  atomic_store_explicit(&to->shared, 1, memory_order_relaxed);
  atomic_store_explicit(&from->shared, 1, memory_order_relaxed);
  int k = atomic_load(&from->kind);
  atomic_store_explicit(&to->kind, (uint8_t)(k == CH_FD_INTERNAL ? CH_FD_UNKNOWN : k), memory_order_release);
}

void ch_fd_set_stream(int fd, bool stream) {
  struct ch_fdinfo *fi = ch_fd_info(fd);
  if (fi) atomic_store_explicit(&fi->stream, stream, memory_order_relaxed);
}

static int64_t sock_timeo(int fd, int name) {
  struct timeval tv = {0, 0};
  socklen_t l = sizeof tv;
  if (ch_sys5(SYS_getsockopt, fd, SOL_SOCKET, name, &tv, &l) < 0) return 0;
  return (int64_t)tv.tv_sec * 1000000000 + (int64_t)tv.tv_usec * 1000;
}

void ch_fd_refresh(int fd, struct ch_fdinfo *fi) {
  long fl = ch_sys(SYS_fcntl, fd, F_GETFL, 0);
  if (fl >= 0 && !atomic_load_explicit(&fi->toggles, memory_order_relaxed)) {
    atomic_store_explicit(&fi->user_nonblock, (fl & O_NONBLOCK) != 0, memory_order_relaxed);
    atomic_store_explicit(&fi->fl, (int)fl, memory_order_relaxed);
  }
  if (atomic_load_explicit(&fi->kind, memory_order_relaxed) == CH_FD_SOCKET) {
    atomic_store_explicit(&fi->rcvtimeo_ns, sock_timeo(fd, SO_RCVTIMEO), memory_order_relaxed);
    atomic_store_explicit(&fi->sndtimeo_ns, sock_timeo(fd, SO_SNDTIMEO), memory_order_relaxed);
  }
}

CH_TLS int ch_tls_fd_capture = -2;

int ch_fd_make_internal(int fd) {
  if (fd < 0) return fd;
  /* High, out of the way of programs that count on getting the lowest free numbers; below the
   * soft limit, so the program's own allocations are never refused because of us. */
  struct rlimit rl;
  long base = 1024;
  if (ch_sys4(SYS_prlimit64, 0, RLIMIT_NOFILE, NULL, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur > 128)
    base = (long)rl.rlim_cur - 64 < 100000 ? (long)rl.rlim_cur - 64 : 100000;
  long hi = ch_sys(SYS_fcntl, fd, F_DUPFD_CLOEXEC, base);
  if (hi >= 0) {
    ch_sys(SYS_close, fd, 0, 0);
    fd = (int)hi;
  }
  struct ch_fdinfo *fi = ch_fd_info(fd);
  if (fi) {
    reset(fi);
    atomic_store_explicit(&fi->kind, CH_FD_INTERNAL, memory_order_release);
  }
  if (ch_tls_fd_capture == -1) ch_tls_fd_capture = fd;
  return fd;
}

bool ch_fd_is_internal(int fd) {
  struct ch_fdinfo *fi = ch_fd_info(fd);
  return fi && atomic_load_explicit(&fi->kind, memory_order_relaxed) == CH_FD_INTERNAL;
}

void ch_fd_forget(int fd) {
  struct ch_fdinfo *fi = ch_fd_info(fd);
  if (fi) reset(fi);
}

int ch_fd_classify(int fd, struct ch_fdinfo *fi) {
  int kind = atomic_load_explicit(&fi->kind, memory_order_acquire);
  if (CH_LIKELY(kind != CH_FD_UNKNOWN)) return kind;
  /* First use of an fd we did not see created (inherited, open()ed, made by a library): ask the
   * kernel once what it is and what the program set on it. */
  struct stat st;
  long r = ch_sys(SYS_fstat, fd, &st, 0);
  if (r < 0) return (int)r;
  long fl = ch_sys(SYS_fcntl, fd, F_GETFL, 0);
  if (fl < 0) return (int)fl;
  switch (st.st_mode & S_IFMT) {
    case S_IFSOCK: kind = CH_FD_SOCKET; break;
    case S_IFIFO: kind = CH_FD_PIPE; break;
    case S_IFCHR: kind = CH_FD_CHR; break;
    case 0: kind = CH_FD_ANON; break; /* eventfd, timerfd, signalfd, epoll, inotify ... */
    default: kind = CH_FD_FILE; break; /* regular files, directories, block devices: always ready */
  }
  atomic_store_explicit(&fi->user_nonblock, (fl & O_NONBLOCK) != 0, memory_order_relaxed);
  atomic_store_explicit(&fi->fl, (int)fl, memory_order_relaxed);
  /* Not created through us: inherited, or made by a path we do not see. Its description may be
   * shared with another process (a shell's pipe), so it is re-read before every wait. */
  atomic_store_explicit(&fi->shared, 1, memory_order_relaxed);
  if (kind == CH_FD_SOCKET) {
    int type = 0;
    socklen_t l = sizeof type;
    if (ch_sys5(SYS_getsockopt, fd, SOL_SOCKET, SO_TYPE, &type, &l) == 0)
      atomic_store_explicit(&fi->stream, type == SOCK_STREAM, memory_order_relaxed);
    atomic_store_explicit(&fi->rcvtimeo_ns, sock_timeo(fd, SO_RCVTIMEO), memory_order_relaxed);
    atomic_store_explicit(&fi->sndtimeo_ns, sock_timeo(fd, SO_SNDTIMEO), memory_order_relaxed);
  }
  atomic_store_explicit(&fi->kind, (uint8_t)kind, memory_order_release);
  return kind;
}

/* ---- transient O_NONBLOCK for calls that have no per-call form (accept, connect) ------------------- */

/* Several coroutines (on several threads) may be inside such a call on one fd at once: the flag is
 * set by the first and cleared by the last, under a per-fd spin lock so the two fcntl calls of
 * different threads cannot interleave wrongly. The lock is held only across one fcntl. */
static void toggle_lock(struct ch_fdinfo *fi) {
  while (atomic_exchange_explicit(&fi->toggle_lock, 1, memory_order_acquire)) ch_cpu_relax();
}

void ch_fd_nonblock_hold(int fd, struct ch_fdinfo *fi) {
  toggle_lock(fi);
  if (atomic_fetch_add_explicit(&fi->toggles, 1, memory_order_relaxed) == 0)
    ch_sys(SYS_fcntl, fd, F_SETFL, atomic_load(&fi->fl) | O_NONBLOCK);
  atomic_store_explicit(&fi->toggle_lock, 0, memory_order_release);
}

void ch_fd_nonblock_release(int fd, struct ch_fdinfo *fi) {
  toggle_lock(fi);
  if (atomic_fetch_sub_explicit(&fi->toggles, 1, memory_order_relaxed) == 1)
    ch_sys(SYS_fcntl, fd, F_SETFL, atomic_load(&fi->fl) & ~O_NONBLOCK);
  atomic_store_explicit(&fi->toggle_lock, 0, memory_order_release);
}

void ch_fd_set_flags(int fd, int flags) {
  struct ch_fdinfo *fi = ch_fd_info(fd);
  if (!fi || ch_fd_classify(fd, fi) < 0) return;
  atomic_store_explicit(&fi->fl, flags, memory_order_relaxed);
  atomic_store_explicit(&fi->user_nonblock, (flags & O_NONBLOCK) != 0, memory_order_relaxed);
}

void ch_fd_set_nonblock(int fd, bool nonblock) {
  struct ch_fdinfo *fi = ch_fd_info(fd);
  if (!fi || ch_fd_classify(fd, fi) < 0) return;
  int fl = atomic_load_explicit(&fi->fl, memory_order_relaxed);
  atomic_store_explicit(&fi->fl, nonblock ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK), memory_order_relaxed);
  atomic_store_explicit(&fi->user_nonblock, nonblock, memory_order_relaxed);
}

void ch_fd_set_timeo(int fd, bool rcv, int64_t ns) {
  struct ch_fdinfo *fi = ch_fd_info(fd);
  if (!fi) return;
  atomic_store_explicit(rcv ? &fi->rcvtimeo_ns : &fi->sndtimeo_ns, ns, memory_order_relaxed);
}

int ch_fd_user_flags(int fd, int kernel_flags) {
  struct ch_fdinfo *fi = ch_fd_info(fd);
  if (kernel_flags >= 0 && fi && atomic_load(&fi->toggles) && !atomic_load(&fi->user_nonblock))
    kernel_flags &= ~O_NONBLOCK;
  return kernel_flags;
}

void ch_fd_accepted(int lfd, int fd, int flags) {
  ch_fd_created(fd, CH_FD_SOCKET, (flags & SOCK_NONBLOCK) != 0, O_RDWR);
  struct ch_fdinfo *l = ch_fd_info(lfd), *fi = ch_fd_info(fd);
  if (!l || !fi) return;
  /* An accepted socket inherits the listener's type and its SO_RCVTIMEO/SO_SNDTIMEO (Linux copies
   * the whole socket). */
  atomic_store_explicit(&fi->stream, atomic_load(&l->stream), memory_order_relaxed);
  atomic_store_explicit(&fi->rcvtimeo_ns, atomic_load(&l->rcvtimeo_ns), memory_order_relaxed);
  atomic_store_explicit(&fi->sndtimeo_ns, atomic_load(&l->sndtimeo_ns), memory_order_relaxed);
}
