// thr_cancel_cxx — C++ threads ended by pthread_cancel and by pthread_exit unwind as in glibc
// (issue 11): destructors of locals run, innermost first, in the thread itself; a catch (...) that
// rethrows sees the forced unwind and lets it go on; thread_local destructors run after.
#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <string>

static std::atomic<int> started{0};
static int pipefd[2];

struct Noisy {
  std::string name;
  pthread_t owner;
  explicit Noisy(std::string n) : name(std::move(n)), owner(pthread_self()) {}
  ~Noisy() { std::printf("destroyed %s (in its thread: %s)\n", name.c_str(), pthread_equal(owner, pthread_self()) ? "yes" : "no"); }
};

struct TL {
  ~TL() { std::printf("thread_local destroyed\n"); }
  int touched = 0;
};
static thread_local TL tl;

static void *cancelled_in_read(void *) {
  Noisy outer("outer of the read thread");
  tl.touched = 1;
  try {
    Noisy inner("inner of the read thread");
    started++;
    char c;
    (void)!read(pipefd[0], &c, 1);
    std::printf("read returned (wrong)\n");
  } catch (...) {
    std::printf("catch (...) saw the unwind, rethrows\n");
    throw;
  }
  return nullptr;
}

static void deep(int n);
static void (*volatile recurse)(int) = deep; // (gcc cannot see that pthread_exit ends the recursion)
static void deep(int n) {
  Noisy frame("frame " + std::to_string(n));
  if (n > 0) recurse(n - 1);
  else pthread_exit(reinterpret_cast<void *>(7));
}

static void *exits_deep(void *) {
  tl.touched = 1;
  deep(3);
  return nullptr;
}

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  if (pipe(pipefd) != 0) return 2;
  pthread_t t;
  void *r = nullptr;
  if (pthread_create(&t, nullptr, cancelled_in_read, nullptr) != 0) return 2;
  while (started.load() < 1) usleep(1000);
  usleep(20000);
  if (pthread_cancel(t) != 0) return 3;
  pthread_join(t, &r);
  std::printf("join: %s\n", r == PTHREAD_CANCELED ? "PTHREAD_CANCELED" : "a value");
  if (pthread_create(&t, nullptr, exits_deep, nullptr) != 0) return 2;
  pthread_join(t, &r);
  std::printf("join: %ld\n", reinterpret_cast<long>(r));
  return 0;
}
