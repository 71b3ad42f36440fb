/* tls_dlopen — thread-local variables of a dlopened library (tests/progs/tlslib, general-dynamic
 * TLS: the loader allocates a thread's copy on its first use, through the thread's DTV).
 * 50 threads are started before the dlopen and wait in read(); the main thread then dlopens
 * libtlslib.so (from argv[1], or next to this executable), wakes them and starts 50 more. Each of the
 * 100 checks that its copies start with the initial values (7, an initialised array, zeros), sets
 * values of its own, blocks in read() on its own pipe until all 100 are waiting (the main thread
 * writes the pipes in reverse order), checks them, and again across a usleep. The main thread's own
 * copy (set before any thread starts) is unchanged at the end; the 100 copies had distinct addresses. */
#include <dlfcn.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>

#include "progs_util.h"

#define N 100
#define EARLY 50

static int (*get)(void);
static void (*set)(int);
static int *(*addr)(void);
static int (*initial)(void);
static void (*fill)(int);
static int (*check)(int);

static int go[N][2], pipes[N][2];
static _Atomic int ready, fresh, intact, intact2;
static uintptr_t addrs[N];

static void *worker(void *arg) {
  int i = (int)(intptr_t)arg;
  char c;
  if (i < EARLY) CHECK(read(go[i][0], &c, 1) == 1); /* started before the dlopen: wait for it */
  if (get() == 7 && initial()) atomic_fetch_add(&fresh, 1);
  else fprintf(stderr, "thread %d: first value %d, initial images %d\n", i, get(), initial());
  set(1000 + i);
  fill(3 * i);
  addrs[i] = (uintptr_t)addr();
  atomic_fetch_add(&ready, 1);
  CHECK(read(pipes[i][0], &c, 1) == 1 && c == (char)i);
  if (get() == 1000 + i && check(3 * i) && addr() == (int *)addrs[i]) atomic_fetch_add(&intact, 1);
  else fprintf(stderr, "thread %d: value %d after blocking, set %d\n", i, get(), 1000 + i);
  set(2000 + i);
  fill(5 * i);
  CHECK(usleep((useconds_t)(200 + (i * 37) % 1500)) == 0);
  if (get() == 2000 + i && check(5 * i)) atomic_fetch_add(&intact2, 1);
  else fprintf(stderr, "thread %d: value %d after usleep, set %d\n", i, get(), 2000 + i);
  return NULL;
}

static int distinct(const uintptr_t *a, int n) {
  int d = 0;
  for (int i = 0; i < n; i++) {
    int seen = 0;
    for (int j = 0; j < i && !seen; j++) seen = a[j] == a[i];
    d += !seen;
  }
  return d;
}

int main(int argc, char **argv) {
  char path[PATH_MAX];
  if (argc > 1) snprintf(path, sizeof path, "%s", argv[1]);
  else {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    CHECK(n > 0);
    exe[n] = 0;
    snprintf(path, sizeof path, "%s/libtlslib.so", dirname(exe));
  }
  pthread_t t[N];
  for (int i = 0; i < N; i++) CHECK(pipe(go[i]) == 0 && pipe(pipes[i]) == 0);
  for (int i = 0; i < EARLY; i++) CHECK(pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i) == 0);
  msleep(20);

  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
    return 2;
  }
  get = (int (*)(void))dlsym(h, "tlslib_get");
  set = (void (*)(int))dlsym(h, "tlslib_set");
  addr = (int *(*)(void))dlsym(h, "tlslib_addr");
  initial = (int (*)(void))dlsym(h, "tlslib_initial");
  fill = (void (*)(int))dlsym(h, "tlslib_fill");
  check = (int (*)(int))dlsym(h, "tlslib_check");
  CHECK(get && set && addr && initial && fill && check);
  int main_fresh = get() == 7 && initial();
  set(-1);
  fill(-100);

  for (int i = 0; i < EARLY; i++) {
    char c = 'g';
    write_all(go[i][1], &c, 1);
  }
  for (int i = EARLY; i < N; i++) CHECK(pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i) == 0);
  release_blocked_readers(&ready, pipes, N);
  for (int i = 0; i < N; i++) CHECK(pthread_join(t[i], NULL) == 0);

  int main_ok = get() == -1 && check(-100);
  int d = distinct(addrs, N);
  printf("main: fresh copy %s, own value kept %s\n", main_fresh ? "yes" : "NO", main_ok ? "yes" : "NO");
  printf("fresh copies %d/%d\n", atomic_load(&fresh), N);
  printf("intact %d/%d\n", atomic_load(&intact), N);
  printf("intact after usleep %d/%d\n", atomic_load(&intact2), N);
  printf("distinct addresses %d\n", d);
  CHECK(dlclose(h) == 0);
  return main_fresh && main_ok && atomic_load(&fresh) == N && atomic_load(&intact) == N &&
                 atomic_load(&intact2) == N && d == N
             ? 0
             : 1;
}
