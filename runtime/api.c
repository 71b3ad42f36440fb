/*
 * api.c — the exported cohook_* functions: argument checks, then the runtime. Nothing else here.
 */
#include <stdlib.h>

#include "internal.h"
#include "sys.h"

/* The public API speaks errno values only: "no scheduler can serve this here" is EAGAIN, as for
 * pthread_create out of resources. */
static int api_ret(int r) { return r == CH_E_NOSCHED ? -EAGAIN : r; }

CH_EXPORT int cohook_spawn_ex(cohook_coro_t **out, cohook_fn fn, void *arg,
                              const cohook_spawn_opts_t *opts) {
  if (!fn) return -EINVAL;
  size_t stack = opts ? opts->stack_size : 0;
  bool detached = opts && opts->detached;
  if (!detached && !out) return -EINVAL; /* a joinable coroutine nobody can join would leak */
  return api_ret(ch_spawn(out, fn, arg, stack, detached));
}

CH_EXPORT int cohook_spawn(cohook_coro_t **out, cohook_fn fn, void *arg) {
  return cohook_spawn_ex(out, fn, arg, NULL);
}

CH_EXPORT int cohook_join(cohook_coro_t *co, void **retval) {
  if (!co) return -EINVAL;
  return api_ret(ch_join(co, retval));
}

CH_EXPORT int cohook_detach(cohook_coro_t *co) {
  if (!co) return -EINVAL;
  return ch_detach(co);
}

CH_EXPORT void cohook_yield(void) { ch_yield(); }

CH_EXPORT int cohook_sleep_ns(uint64_t ns) {
  return api_ret(ch_sleep_until(ch_deadline_after(ns > INT64_MAX ? INT64_MAX : (int64_t)ns)));
}

CH_EXPORT int cohook_wait_fd(int fd, int events, int64_t timeout_ns) {
  if (events & ~(COHOOK_READABLE | COHOOK_WRITABLE) || !events) return -EINVAL;
  return api_ret(ch_fd_wait(fd, events, ch_deadline_after(timeout_ns)));
}

CH_EXPORT int cohook_close(int fd) {
  ch_fd_closed(fd);
  /* The raw syscall: with libhook.so preloaded, close() would do the bookkeeping a second time. */
  return (int)ch_sys(SYS_close, fd, 0, 0);
}

CH_EXPORT cohook_coro_t *cohook_self(void) {
  struct ch_sched *s = ch_sched_get();
  return s ? ch_self() : NULL;
}

struct map_job {
  cohook_fn fn;
  void **items, **results;
  size_t n, next;
};

/* Each worker coroutine pulls the next index: coroutines of one thread never run at the same time,
 * so the shared counter needs no atomics, and an early spawn failure only means fewer workers. */
static void *map_worker(void *p) {
  struct map_job *job = p;
  for (size_t i; (i = job->next++) < job->n;) {
    void *r = job->fn(job->items ? job->items[i] : NULL);
    if (job->results) job->results[i] = r;
  }
  return NULL;
}

CH_EXPORT int cohook_map(cohook_fn fn, void **items, void **results, size_t n, size_t concurrency) {
  if (!fn) return -EINVAL;
  if (n == 0) return 0;
  size_t k = concurrency && concurrency < n ? concurrency : n;
  cohook_coro_t **workers = ch_alloc(k * sizeof *workers);
  if (!workers) return -ENOMEM;
  struct map_job job = {.fn = fn, .items = items, .results = results, .n = n};
  size_t started = 0;
  int rc = 0;
  for (; started < k; started++) {
    rc = ch_spawn(&workers[started], map_worker, &job, 0, false);
    if (rc < 0) break;
  }
  for (size_t i = 0; i < started; i++) ch_join(workers[i], NULL);
  ch_free(workers);
  return started ? 0 : api_ret(rc);
}
