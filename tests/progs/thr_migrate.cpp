// thr_migrate.cpp — threads that compute in short bursts and meet on a mutex and condition variables,
// each holding thread-local state (a thread_local object, errno, an exception being handled) across
// every wait, and each talking to an echo thread over a socket pair between waits. Under the preload with two workers, a thread woken from a wait may resume on another
// worker (work stealing): whatever it kept in thread-local storage must still be its own, its fd
// waits must work on whichever worker it runs on now, and the shared counts must come out exact. Prints only what must match natively.
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cerrno>
#include <cstdio>
#include <stdexcept>
#include <string>

namespace {

constexpr int kThreads = 8;
constexpr int kRounds = 400;

pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
pthread_cond_t turn_cv = PTHREAD_COND_INITIALIZER;
long shared_total = 0;
int turn = 0; // whose turn it is among the pair members (round robin over all threads)
int mismatches = 0;

struct Mine {
  std::string name;
  long sum = 0;
};
thread_local Mine mine;

void burst(unsigned n) {
  volatile unsigned x = 0;
  for (unsigned i = 0; i < n; i++) x += i;
}

int sv[kThreads][2]; // each thread's socket pair: it talks through [0], its echo thread serves [1]

// Echoes every byte back, until its peer closes.
void *echo(void *arg) {
  int fd = sv[reinterpret_cast<long>(arg)][1];
  char c;
  while (read(fd, &c, 1) == 1) {
    c = static_cast<char>(c + 1);
    if (write(fd, &c, 1) != 1) break;
  }
  return nullptr;
}

void *run(void *arg) {
  int id = static_cast<int>(reinterpret_cast<long>(arg));
  mine.name = "thread-" + std::to_string(id);
  for (int r = 0; r < kRounds; r++) {
    // An fd wait wherever the thread runs now (after a steal: on another worker than last time).
    char out = static_cast<char>('a' + (r + id) % 20), in = 0;
    if (write(sv[id][0], &out, 1) != 1 || read(sv[id][0], &in, 1) != 1 || in != out + 1) {
      std::fprintf(stderr, "thread %d round %d: sent %d, got %d back (errno %d)\n", id, r, out, in, errno);
      pthread_mutex_lock(&mu);
      mismatches++;
      pthread_mutex_unlock(&mu);
    }
    burst(2000 + 500 * static_cast<unsigned>(id));
    errno = 100 + id;
    try {
      throw std::runtime_error(mine.name);
    } catch (const std::exception &e) {
      // Wait for our turn while the exception is being handled: its state is per thread.
      pthread_mutex_lock(&mu);
      while (turn != id) pthread_cond_wait(&turn_cv, &mu);
      turn = (turn + 1) % kThreads;
      shared_total += r;
      pthread_cond_broadcast(&turn_cv);
      pthread_mutex_unlock(&mu);
      if (std::string(e.what()) != mine.name || errno != 100 + id) {
        std::fprintf(stderr, "thread %d round %d: what() %s, name %s, errno %d\n", id, r, e.what(), mine.name.c_str(), errno);
        pthread_mutex_lock(&mu);
        mismatches++;
        pthread_mutex_unlock(&mu);
      }
    }
    mine.sum += r;
  }
  return reinterpret_cast<void *>(mine.sum);
}

} // namespace

int main() {
  pthread_t t[kThreads], e[kThreads];
  for (long i = 0; i < kThreads; i++) {
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]) != 0) return 1;
    pthread_create(&e[i], nullptr, echo, reinterpret_cast<void *>(i));
  }
  for (long i = 0; i < kThreads; i++) pthread_create(&t[i], nullptr, run, reinterpret_cast<void *>(i));
  long sums = 0;
  bool each_ok = true;
  for (int i = 0; i < kThreads; i++) {
    void *ret = nullptr;
    pthread_join(t[i], &ret);
    long s = reinterpret_cast<long>(ret);
    each_ok = each_ok && s == static_cast<long>(kRounds) * (kRounds - 1) / 2;
    sums += s;
  }
  for (int i = 0; i < kThreads; i++) {
    close(sv[i][0]);
    pthread_join(e[i], nullptr);
    close(sv[i][1]);
  }
  std::printf("total %ld\nsums %ld\neach thread's own sum: %s\nmismatches %d\n", shared_total, sums,
              each_ok ? "yes" : "no", mismatches);
  return 0;
}
