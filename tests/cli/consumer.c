/* consumer.c — a program built against an installed cohook with `pkg-config --cflags --libs cohook`
 * (tests/cli/check_install.sh): spawns coroutines that sleep and wait on a pipe through the public
 * API, and checks the results. Prints "consumer ok" and exits 0, or names what failed and exits 1. */
#include <cohook.h>
#include <stdio.h>
#include <unistd.h>

static int pipefd[2];

static void *sleeper(void *arg) {
  cohook_sleep_ns(2000000); /* 2 ms */
  return (char *)arg + 1;
}

static void *reader(void *arg) {
  (void)arg;
  char c = 0;
  if (cohook_wait_fd(pipefd[0], COHOOK_READABLE, 2000000000LL) <= 0) return NULL;
  return read(pipefd[0], &c, 1) == 1 && c == 'x' ? (void *)1 : NULL;
}

static void *writer(void *arg) {
  (void)arg;
  cohook_sleep_ns(5000000); /* the reader must really wait */
  return write(pipefd[1], "x", 1) == 1 ? (void *)1 : NULL;
}

int main(void) {
  char base[8];
  void *items[8], *results[8];
  for (int i = 0; i < 8; i++) items[i] = base + i;
  if (cohook_map(sleeper, items, results, 8, 4) != 0) { fprintf(stderr, "consumer: cohook_map failed\n"); return 1; }
  for (int i = 0; i < 8; i++)
    if (results[i] != base + i + 1) { fprintf(stderr, "consumer: result %d wrong\n", i); return 1; }
  if (pipe(pipefd) != 0) return 1;
  cohook_coro_t *r, *w;
  void *rv = NULL, *wv = NULL;
  if (cohook_spawn(&r, reader, NULL) != 0 || cohook_spawn(&w, writer, NULL) != 0) {
    fprintf(stderr, "consumer: cohook_spawn failed\n");
    return 1;
  }
  if (cohook_join(r, &rv) != 0 || cohook_join(w, &wv) != 0 || !rv || !wv) {
    fprintf(stderr, "consumer: pipe hand-off between coroutines failed\n");
    return 1;
  }
  puts("consumer ok");
  return 0;
}
