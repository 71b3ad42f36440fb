/*
 * cohook.h — public API of the cohook coroutine runtime.
 *
 * The same runtime drives programs run under LD_PRELOAD=libhook.so; this header is for C code that
 * wants to use it explicitly, for example to run many legacy blocking calls concurrently.
 *
 * Conventions (libuv style): functions that can fail return 0 or a positive result on success and a
 * negative errno value (-EAGAIN, -EINVAL, ...) on failure; they never touch errno.
 *
 * Threading model: every OS thread that calls into cohook gets its own scheduler the first time it
 * does, and the thread's own stack becomes that scheduler's "main coroutine". A coroutine runs on the
 * thread that spawned it and never moves to another thread. Coroutines are cooperative: one runs until
 * it blocks in a cohook call (join, sleep, wait_fd, yield); then the next ready one runs.
 */
#ifndef COHOOK_H
#define COHOOK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define COHOOK_API __attribute__((visibility("default")))
#else
#define COHOOK_API
#endif

/* Opaque coroutine handle. */
typedef struct cohook_coro cohook_coro_t;

/* A coroutine body: the same shape as a pthread start routine. */
typedef void *(*cohook_fn)(void *arg);

/* Readiness bits for cohook_wait_fd(); the same values as POLLIN / POLLOUT. */
#define COHOOK_READABLE 0x001
#define COHOOK_WRITABLE 0x004

/* Pass as a timeout to wait without limit. */
#define COHOOK_FOREVER (-1)

typedef struct cohook_spawn_opts {
  size_t stack_size; /* 0: the default (COHOOK_STACK_SIZE, 256 KiB unless set) */
  int detached;      /* non-zero: resources are released when fn returns; cannot be joined */
} cohook_spawn_opts_t;

/*
 * Create a coroutine running fn(arg) on the calling thread's scheduler. It becomes ready at once and
 * first runs when the caller blocks or yields. *out receives the handle (may be NULL when detached).
 * Returns 0, -EAGAIN when no stack can be had (memory or vm.max_map_count exhausted), -EINVAL.
 */
COHOOK_API int cohook_spawn(cohook_coro_t **out, cohook_fn fn, void *arg);
COHOOK_API int cohook_spawn_ex(cohook_coro_t **out, cohook_fn fn, void *arg,
                               const cohook_spawn_opts_t *opts);

/*
 * Wait for co to finish and release it; *retval (if non-NULL) receives fn's return value.
 * Works from any thread. Returns 0, -EDEADLK (joining yourself), -EINVAL (detached or already joined).
 */
COHOOK_API int cohook_join(cohook_coro_t *co, void **retval);

/* Let co release its resources by itself when it finishes. Returns 0 or -EINVAL. */
COHOOK_API int cohook_detach(cohook_coro_t *co);

/* Put the caller at the back of its scheduler's run queue and run the others that are ready. */
COHOOK_API void cohook_yield(void);

/* Sleep for ns nanoseconds without blocking the thread's other coroutines. Returns 0. */
COHOOK_API int cohook_sleep_ns(uint64_t ns);

/*
 * Wait until fd is ready for `events` (COHOOK_READABLE and/or COHOOK_WRITABLE), for at most
 * timeout_ns nanoseconds (COHOOK_FOREVER: no limit). Returns the ready bits (> 0; errors and hang-ups
 * are reported as both bits so that the following I/O call sees the error), -ETIMEDOUT, -EBADF when the
 * fd is closed through cohook while waiting, or -EINVAL.
 */
COHOOK_API int cohook_wait_fd(int fd, int events, int64_t timeout_ns);

/*
 * Close fd after waking every coroutine of this thread that waits on it (their cohook_wait_fd returns
 * -EBADF) and dropping its watcher. Use it instead of close() for fds given to cohook_wait_fd when
 * libhook.so is not preloaded (the preloaded close() does this itself): a watcher left on a closed fd
 * number would miss the events of the next file that gets that number. Returns 0 or -errno.
 */
COHOOK_API int cohook_close(int fd);

/* The calling coroutine (a thread's main coroutine counts as one). NULL only when this thread has no
 * scheduler and none can be made (out of file descriptors or memory) — then no cohook_* call that
 * waits can serve this thread either. */
COHOOK_API cohook_coro_t *cohook_self(void);

/*
 * Run fn(items[i]) for every i < n, at most `concurrency` at a time (0: all at once), each in its own
 * coroutine, and wait for all of them. results[i] (if results is non-NULL) receives each return value.
 * This is the "wrap a legacy blocking call" helper: with libhook.so preloaded, every blocking call
 * inside fn yields to the other coroutines instead of blocking the thread.
 * Returns 0 once every call has returned; -EAGAIN only if not even one coroutine could be started
 * (when fewer than `concurrency` can be started, the ones that could run all the calls).
 */
COHOOK_API int cohook_map(cohook_fn fn, void **items, void **results, size_t n, size_t concurrency);

#ifdef __cplusplus
}
#endif

#endif /* COHOOK_H */
