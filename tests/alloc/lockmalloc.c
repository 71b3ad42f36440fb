/* lockmalloc.so — a test allocator that takes a pthread mutex around every call, as jemalloc,
 * tcmalloc and many application allocators do, and otherwise forwards to glibc's malloc
 * (__libc_malloc and friends, so that blocks from it and from glibc's internal callers mix freely).
 *
 * Preloaded after libhook.so, its pthread_mutex_* calls go through the normal dynamic lookup and so
 * reach libhook's hooks: a preload whose hooks allocate would come back into this malloc from inside
 * the lock call. Such a re-entry (a call arriving on an OS thread that is already inside one of
 * lockmalloc's non-parking windows: the trylock, the forwarded call, the unlock) is forwarded without
 * locking (no deadlock, no endless recursion) and counted.
 *
 * A contended lock is taken with pthread_mutex_lock outside those windows: under a preload that parks
 * the caller there, other coroutine-threads of the same OS thread run in the meantime, and their
 * calls are theirs, not re-entries (a __thread counter is per OS thread, not per program thread).
 *
 * Environment: LOCKMALLOC_REPORT set: "lockmalloc: reentered N" on stderr at exit;
 * LOCKMALLOC_STRICT set and N > 0: _exit(3) at exit, so that the run fails. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

/* glibc's own entry points (exported by libc.so.6) */
extern void *__libc_malloc(size_t);
extern void __libc_free(void *);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void *__libc_valloc(size_t);
extern void *__libc_pvalloc(size_t);

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static __thread int depth; /* > 0: this OS thread is inside a non-parking window of ours */
static _Atomic unsigned long reentered;
static _Atomic unsigned long calls;

static void die(const char *what, int err) {
  char buf[128];
  const char *name = strerrorname_np(err);
  int len = snprintf(buf, sizeof buf, "lockmalloc: %s failed: error %d (%s)\n", what, err, name ? name : "?");
  if (len > 0) (void)!write(2, buf, (size_t)len);
  abort();
}

/* true: we hold mu (call unlock() after the forwarded call); false: a re-entry, forward unlocked */
static int lock(void) {
  atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed);
  if (depth > 0) {
    atomic_fetch_add_explicit(&reentered, 1, memory_order_relaxed);
    return 0;
  }
  depth++;
  int r = pthread_mutex_trylock(&mu);
  depth--;
  if (r == EBUSY) r = pthread_mutex_lock(&mu); /* may park: not a window of ours */
  if (r != 0) die("pthread_mutex_lock", r);
  depth++;
  return 1;
}

static void unlock(void) {
  int r = pthread_mutex_unlock(&mu);
  depth--;
  if (r != 0) die("pthread_mutex_unlock", r);
}

#define LOCKED(type, call)                                                                           \
  do {                                                                                               \
    int held_ = lock();                                                                              \
    type r_ = call;                                                                                  \
    int e_ = errno;                                                                                  \
    if (held_) unlock();                                                                             \
    errno = e_;                                                                                      \
    return r_;                                                                                       \
  } while (0)

EXPORT void *malloc(size_t n) { LOCKED(void *, __libc_malloc(n)); }
EXPORT void *calloc(size_t k, size_t n) { LOCKED(void *, __libc_calloc(k, n)); }
EXPORT void *realloc(void *p, size_t n) { LOCKED(void *, __libc_realloc(p, n)); }
EXPORT void *memalign(size_t al, size_t n) { LOCKED(void *, __libc_memalign(al, n)); }
EXPORT void *aligned_alloc(size_t al, size_t n) { LOCKED(void *, __libc_memalign(al, n)); }
EXPORT void *valloc(size_t n) { LOCKED(void *, __libc_valloc(n)); }
EXPORT void *pvalloc(size_t n) { LOCKED(void *, __libc_pvalloc(n)); }

EXPORT void free(void *p) {
  if (!p) return;
  int e = errno;
  int held = lock();
  __libc_free(p);
  if (held) unlock();
  errno = e;
}

EXPORT int posix_memalign(void **out, size_t al, size_t n) {
  if (al < sizeof(void *) || (al & (al - 1)) != 0) return EINVAL;
  int e = errno;
  int held = lock();
  void *p = __libc_memalign(al, n);
  if (held) unlock();
  errno = e;
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}

/* glibc exports no __libc_ name for it: the next definition (glibc's), looked up once, outside the
 * lock (dlsym may allocate) */
EXPORT size_t malloc_usable_size(void *p) {
  static size_t (*_Atomic next)(void *);
  size_t (*f)(void *) = atomic_load(&next);
  if (!f) {
    f = (size_t(*)(void *))dlsym(RTLD_NEXT, "malloc_usable_size");
    if (!f) abort();
    atomic_store(&next, f);
  }
  LOCKED(size_t, f(p));
}

/* fork while another thread is inside a call: the child must not inherit mu locked */
static int fork_held;
static void before_fork(void) { fork_held = lock(); }
static void after_fork_parent(void) {
  if (fork_held) unlock();
}
static void after_fork_child(void) {
  pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
  memcpy(&mu, &fresh, sizeof mu);
  depth = 0;
}

/* the report goes to a copy of stderr: programs may close fd 2 before the destructors run
 * (coreutils' close_stdout does) */
static int report_fd = 2;

__attribute__((constructor)) static void lockmalloc_init(void) {
  pthread_atfork(before_fork, after_fork_parent, after_fork_child);
  if (getenv("LOCKMALLOC_REPORT")) {
    int fd = fcntl(2, F_DUPFD_CLOEXEC, 200);
    if (fd >= 0) report_fd = fd;
  }
}

__attribute__((destructor)) static void lockmalloc_report(void) {
  unsigned long n = atomic_load(&reentered);
  if (getenv("LOCKMALLOC_REPORT")) {
    char buf[128];
    int len = snprintf(buf, sizeof buf, "lockmalloc: reentered %lu (of %lu calls)\n", n, atomic_load(&calls));
    if (len > 0) (void)!write(report_fd, buf, (size_t)len);
  }
  if (n > 0 && getenv("LOCKMALLOC_STRICT")) _exit(3);
}
