// tls_cxx_exceptions — C++ exception state is per thread (the C++ runtime keeps it in
// __cxa_get_globals(): a thread-local list of caught exceptions and the uncaught count).
// 32 threads each, at the same time:
//   - throw through a frame whose destructor blocks (sleep) during unwinding and, there, throws and
//     catches another exception: std::uncaught_exceptions() is 1 throughout, in that thread only;
//   - throw, catch, and inside the catch block block in read() on their own pipe until all 32 are
//     inside their catch blocks (the main thread then writes the pipes in reverse order), then check
//     the caught value, std::current_exception() and std::uncaught_exceptions();
//   - rethrow (throw;) and catch again: the same object; a nested throw/catch of another type inside
//     that, with blocking calls at every level; after each inner handler the outer exception is
//     current again; after the last handler none is;
//   - std::throw_with_nested / std::rethrow_if_nested across a blocking call.
// Prints, per check, how many of the 32 threads saw the right state.
#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "progs.h" /* CHECK */

constexpr int N = 32;

struct Err {
  int v;
};
struct Other {
  int v;
};

enum {
  C_UNWIND_UNCAUGHT,      // uncaught_exceptions() == 1 in a destructor during unwinding
  C_UNWIND_AFTER_BLOCK,   // ... still 1 after a sleep there
  C_UNWIND_INNER_CATCH,   // a throw/catch inside that destructor: value, and uncaught still 1
  C_UNWIND_CAUGHT,        // the exception that unwound through it arrives with its value
  C_CAUGHT,               // throw Err{i}; catch: value
  C_UNCAUGHT_ZERO,        // uncaught_exceptions() == 0 in the handler
  C_CURRENT,              // current_exception() non-null in the handler
  C_AFTER_READ,           // value, current_exception() and uncaught == 0 after blocking in read()
  C_RETHROW_SAME,         // throw; caught again: the same object, the same current_exception()
  C_RETHROW_AFTER_SLEEP,  // ... after a sleep
  C_NESTED,               // throw Other inside: its value, a different current_exception()
  C_NESTED_AFTER_SLEEP,   // ... after a sleep
  C_RESTORED_INNER,       // after the nested handler: current_exception() is the rethrown one again
  C_RESTORED_OUTER,       // after the rethrow handler: still the first one (same object), after a sleep
  C_NONE_AFTER,           // after all handlers: current_exception() null, uncaught 0
  C_WITH_NESTED,          // throw_with_nested, sleep, rethrow_if_nested: both values
  C_COUNT
};
static const char *const names[C_COUNT] = {
    "unwind: uncaught_exceptions()==1 in destructor",
    "unwind: still 1 after blocking",
    "unwind: throw/catch inside the destructor",
    "unwind: exception caught with its value",
    "caught own value",
    "uncaught_exceptions()==0 in handler",
    "current_exception() set in handler",
    "handler state intact after blocking read",
    "rethrow caught: same object",
    "rethrow handler intact after sleep",
    "nested throw/catch: own value, other exception current",
    "nested handler intact after sleep",
    "after nested handler: rethrown exception current again",
    "after rethrow handler: first exception current again",
    "after all handlers: no current exception",
    "throw_with_nested/rethrow_if_nested across sleep",
};
static std::atomic<int> counts[C_COUNT];
static std::atomic<int> ready{0};
static int pipes[N][2];

static void ok(int c, bool cond, int i) {
  if (cond) counts[c]++;
  else std::fprintf(stderr, "thread %d: %s: wrong\n", i, names[c]);
}

static void nap(int i, int k) { std::this_thread::sleep_for(std::chrono::microseconds(200 + (i * 37 + k * 113) % 900)); }

struct Unwinder {
  int i;
  ~Unwinder() {
    ok(C_UNWIND_UNCAUGHT, std::uncaught_exceptions() == 1, i);
    nap(i, 1);
    ok(C_UNWIND_AFTER_BLOCK, std::uncaught_exceptions() == 1, i);
    try {
      nap(i, 2);
      throw Other{i + 5000};
    } catch (const Other &o) {
      nap(i, 3);
      ok(C_UNWIND_INNER_CATCH, o.v == i + 5000 && std::uncaught_exceptions() == 1, i);
    }
  }
};

static void unwind_through(int i) {
  Unwinder u{i};
  throw Err{i + 1000};
}

static void body(int i) {
  try {
    unwind_through(i);
  } catch (const Err &e) {
    ok(C_UNWIND_CAUGHT, e.v == i + 1000 && std::uncaught_exceptions() == 0, i);
  }

  try {
    throw Err{i};
  } catch (Err &e) {
    ok(C_CAUGHT, e.v == i, i);
    ok(C_UNCAUGHT_ZERO, std::uncaught_exceptions() == 0, i);
    std::exception_ptr p = std::current_exception();
    ok(C_CURRENT, p != nullptr, i);
    ready++;
    char c;
    CHECK(read(pipes[i][0], &c, 1) == 1 && c == static_cast<char>(i));
    ok(C_AFTER_READ, e.v == i && std::current_exception() == p && std::uncaught_exceptions() == 0, i);
    try {
      throw;
    } catch (Err &e2) {
      ok(C_RETHROW_SAME, &e2 == &e && e2.v == i && std::current_exception() == p, i);
      nap(i, 4);
      ok(C_RETHROW_AFTER_SLEEP, &e2 == &e && e2.v == i && std::current_exception() == p &&
                                    std::uncaught_exceptions() == 0, i);
      try {
        nap(i, 5);
        throw Other{i * 10};
      } catch (const Other &o) {
        std::exception_ptr q = std::current_exception();
        ok(C_NESTED, o.v == i * 10 && q != nullptr && q != p, i);
        nap(i, 6);
        ok(C_NESTED_AFTER_SLEEP, o.v == i * 10 && std::current_exception() == q && std::uncaught_exceptions() == 0, i);
      }
      ok(C_RESTORED_INNER, std::current_exception() == p && e2.v == i, i);
      nap(i, 7);
    }
    nap(i, 8);
    ok(C_RESTORED_OUTER, std::current_exception() == p && e.v == i, i);
  }
  ok(C_NONE_AFTER, std::current_exception() == nullptr && std::uncaught_exceptions() == 0, i);

  try {
    try {
      throw std::runtime_error("inner " + std::to_string(i));
    } catch (...) {
      nap(i, 9);
      std::throw_with_nested(std::logic_error("outer " + std::to_string(i)));
    }
  } catch (const std::logic_error &outer) {
    nap(i, 10);
    bool good = std::string(outer.what()) == "outer " + std::to_string(i);
    try {
      std::rethrow_if_nested(outer);
      good = false;
    } catch (const std::runtime_error &inner) {
      nap(i, 11);
      good = good && std::string(inner.what()) == "inner " + std::to_string(i);
    }
    ok(C_WITH_NESTED, good, i);
  }
}

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  for (auto &p : pipes) CHECK(pipe(p) == 0);
  std::vector<std::thread> threads;
  for (int i = 0; i < N; i++) threads.emplace_back(body, i);
  for (int k = 0; k < 10000 && ready.load() < N; k++) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  CHECK(ready.load() == N);
  std::this_thread::sleep_for(std::chrono::milliseconds(50)); // all 32 inside their handlers, in read()
  for (int i = N - 1; i >= 0; i--) {
    char c = static_cast<char>(i);
    CHECK(write(pipes[i][1], &c, 1) == 1);
  }
  for (auto &t : threads) t.join();
  bool all = true;
  for (int c = 0; c < C_COUNT; c++) {
    std::printf("%s: %d/%d\n", names[c], counts[c].load(), N);
    all = all && counts[c].load() == N;
  }
  std::printf("main: no current exception: %s\n", std::current_exception() == nullptr ? "true" : "false");
  std::printf("all checks: %s\n", all ? "true" : "false");
  return all ? 0 : 1;
}
