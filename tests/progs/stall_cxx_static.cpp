// stall_cxx_static — a function-local C++ static whose constructor blocks: it reads its
// configuration from a pipe that another thread fills after 100 ms. Two more threads call the
// function meanwhile, and wait in libstdc++'s initialisation guard (__cxa_guard_acquire), which
// sleeps in a raw futex system call, not in anything a preload can interpose.
//
// Natively the writer runs while the callers sleep in the kernel. A runtime that runs threads as
// coroutines on a few OS threads must not let a caller's guard wait hold up the writer (or the
// constructing thread, parked in its read), or this deadlocks. Two waiting callers, so that with two
// workers one can sit on each.
//
// A guard wait has no timeout, so a watchdog (alarm, 15 s; natively this takes 0.1 s) ends a stuck
// run with SIGALRM rather than leaving it to the harness's timeout.
//
// stdout: what each caller saw.
#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <string>

#include "progs.h"

namespace {

void msleep(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

int feed[2];
std::atomic<int> constructing{0}, constructed{0};

struct Config {
  int value = 0;
  std::string name;
  Config() {
    constructing = 1;
    char line[64] = {0};
    size_t n = 0;
    while (n < sizeof line - 1) {  // one line, byte by byte: the constructor blocks in read()
      ssize_t r = read(feed[0], line + n, 1);
      if (r < 0 && errno == EINTR) continue;
      CHECK(r == 1);
      if (line[n++] == '\n') break;
    }
    char word[32];
    CHECK(sscanf(line, "%d %31s", &value, word) == 2);
    name = word;
    constructed++;
  }
};

const Config &config() {
  static Config c;  // thread-safe initialisation: later callers wait in the guard
  return c;
}

struct Seen {
  int value;
  std::string name;
};

void *caller(void *arg) {
  Seen *s = static_cast<Seen *>(arg);
  const Config &c = config();
  s->value = c.value;
  s->name = c.name;
  return nullptr;
}

void *writer(void *) {
  msleep(100);
  CHECK(write(feed[1], "42 answer\n", 10) == 10);
  return nullptr;
}

}  // namespace

int main() {
  setvbuf(stdout, nullptr, _IOLBF, 0);
  alarm(15);
  CHECK(pipe(feed) == 0);
  enum { CALLERS = 3 };
  static Seen seen[CALLERS];
  pthread_t t[CALLERS], w;
  double t0 = now_s();
  CHECK(pthread_create(&t[0], nullptr, caller, &seen[0]) == 0);
  for (int k = 0; k < 5000 && !constructing; k++) msleep(1);  // caller 0 is inside the constructor
  CHECK(constructing);
  for (int i = 1; i < CALLERS; i++) CHECK(pthread_create(&t[i], nullptr, caller, &seen[i]) == 0);
  CHECK(pthread_create(&w, nullptr, writer, nullptr) == 0);
  for (int i = 0; i < CALLERS; i++) CHECK(pthread_join(t[i], nullptr) == 0);
  CHECK(pthread_join(w, nullptr) == 0);
  double took = now_s() - t0;
  for (int i = 0; i < CALLERS; i++)
    printf("caller %d saw value %d, name %s\n", i, seen[i].value, seen[i].name.c_str());
  printf("constructed %d time(s)\n", constructed.load());
  fprintf(stderr, "took %.3f s\n", took);
  printf("done in under 4 s: %s\n", took < 4 ? "yes" : "no");
  return 0;
}
