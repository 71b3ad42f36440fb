/* tls_request_ctx — per-thread request context in __thread variables, kept across a blocking call.
 * 50 threads each keep a request id in a __thread int and a __thread char * pointing to a buffer on
 * their own stack, set errno to a value of their own, then block in read() on their own pipe; the
 * main thread writes to the pipes (in reverse order) once all of them are waiting. Each thread then
 * checks that its id, its pointer, the text behind it and errno are still its own, and does it once
 * more across a usleep. Natively each thread has its own TLS; a runtime that runs threads as
 * coroutines sharing one TLS would mix them up. Also counted: fresh threads start with the
 * variables' initial values, and the addresses of the __thread variables and of errno differ between
 * the 50 threads alive at once. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>

#include "progs_util.h"

#define N 50

static __thread int req_id;
static __thread char *req_name;

static int pipes[N][2];
static _Atomic int ready, fresh, intact, intact2, errno_intact, errno_intact2;
static uintptr_t id_addr[N], name_addr[N], errno_addr[N];

static int check(int i, const char *buf) {
  char want[32];
  snprintf(want, sizeof want, "request-%d", 1000 + i);
  int ok = req_id == 1000 + i && req_name == buf && strcmp(req_name, want) == 0;
  if (!ok)
    fprintf(stderr, "thread %d: req_id %d, req_name %p (own buffer %p) \"%.20s\"\n", i, req_id,
            (void *)req_name, (const void *)buf, req_name ? req_name : "(null)");
  return ok;
}

static void *worker(void *arg) {
  int i = (int)(intptr_t)arg;
  char buf[32];
  if (req_id == 0 && req_name == NULL) atomic_fetch_add(&fresh, 1);
  req_id = 1000 + i;
  snprintf(buf, sizeof buf, "request-%d", req_id);
  req_name = buf;
  id_addr[i] = (uintptr_t)&req_id;
  name_addr[i] = (uintptr_t)&req_name;
  errno_addr[i] = (uintptr_t)&errno;

  atomic_fetch_add(&ready, 1);
  char c;
  errno = 20000 + i; /* a value no call sets: still ours after the read (which succeeds) */
  ssize_t r = read(pipes[i][0], &c, 1);
  int e = errno;
  CHECK(r == 1 && c == (char)i);
  if (e == 20000 + i) atomic_fetch_add(&errno_intact, 1);
  else fprintf(stderr, "thread %d: errno %d after the read, set %d\n", i, e, 20000 + i);
  if (check(i, buf)) atomic_fetch_add(&intact, 1);

  /* Change both, block again (a sleep this time), check again. */
  req_id = 1000 + i;
  snprintf(buf, sizeof buf, "request-%d", req_id);
  errno = 30000 + i;
  CHECK(usleep((useconds_t)(500 + (i * 97) % 2000)) == 0);
  e = errno;
  if (e == 30000 + i) atomic_fetch_add(&errno_intact2, 1);
  else fprintf(stderr, "thread %d: errno %d after the sleep, set %d\n", i, e, 30000 + i);
  if (check(i, buf)) atomic_fetch_add(&intact2, 1);
  return NULL;
}

static int distinct(const uintptr_t *a) {
  int n = 0;
  for (int i = 0; i < N; i++) {
    int seen = 0;
    for (int j = 0; j < i && !seen; j++) seen = a[j] == a[i];
    n += !seen;
  }
  return n;
}

int main(void) {
  pthread_t t[N];
  req_id = -1;
  req_name = "main";
  for (int i = 0; i < N; i++) CHECK(pipe(pipes[i]) == 0);
  for (int i = 0; i < N; i++) CHECK(pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i) == 0);
  release_blocked_readers(&ready, pipes, N);
  for (int i = 0; i < N; i++) CHECK(pthread_join(t[i], NULL) == 0);

  printf("fresh %d/%d\n", atomic_load(&fresh), N);
  printf("intact %d/%d\n", atomic_load(&intact), N);
  printf("errno intact across read %d/%d\n", atomic_load(&errno_intact), N);
  printf("intact after sleep %d/%d\n", atomic_load(&intact2), N);
  printf("errno intact across sleep %d/%d\n", atomic_load(&errno_intact2), N);
  int di = distinct(id_addr), dn = distinct(name_addr), de = distinct(errno_addr);
  printf("distinct addresses: req_id %d, req_name %d, errno %d\n", di, dn, de);
  int main_ok = req_id == -1 && strcmp(req_name, "main") == 0;
  printf("main thread's context %s\n", main_ok ? "intact" : "CHANGED");
  int ok = atomic_load(&fresh) == N && atomic_load(&intact) == N && atomic_load(&intact2) == N &&
           atomic_load(&errno_intact) == N && atomic_load(&errno_intact2) == N && di == N && dn == N &&
           de == N && main_ok;
  return ok ? 0 : 1;
}
