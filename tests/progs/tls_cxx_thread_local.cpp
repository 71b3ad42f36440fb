// tls_cxx_thread_local — C++ thread_local objects with constructors and destructors.
// 20 std::threads each touch a thread_local object (constructed on first use in that thread), put
// their own value in it and in a thread_local std::string, block (read() on their own pipe, written by
// the main thread once all are waiting; then std::this_thread::sleep_for), and check that the object
// is still theirs. The destructors must run at thread exit, in the thread that constructed the object
// (std::this_thread::get_id() and pthread_self() recorded in the constructor, compared in the
// destructor), before pthread_join/std::thread::join returns. The main thread never touches the
// object: no construction for it.
#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "progs.h" /* CHECK */

constexpr int N = 20;
constexpr unsigned MAGIC = 0x7e11c0deu;

static std::atomic<int> constructed{0}, destroyed{0}, dtor_same_thread{0}, dtor_wrong_thread{0},
    dtor_bad_state{0}, intact{0}, intact_after_sleep{0}, fresh{0}, ready{0};

struct Ctx {
  unsigned magic = MAGIC;
  int id = -1;
  std::thread::id owner;
  pthread_t self;
  const Ctx *me;
  Ctx() : owner(std::this_thread::get_id()), self(pthread_self()), me(this) { constructed++; }
  ~Ctx() {
    destroyed++;
    bool same = owner == std::this_thread::get_id() && pthread_equal(self, pthread_self());
    (same ? dtor_same_thread : dtor_wrong_thread)++;
    if (magic != MAGIC || me != this || id < 0 || id >= N) dtor_bad_state++;
    if (!same || magic != MAGIC)
      std::fprintf(stderr, "destructor of thread %d's object: same thread %d, magic %x\n", id, same, magic);
    magic = 0;
  }
};

static thread_local Ctx ctx;
static thread_local std::string name;
static thread_local int counter = 5;

static int pipes[N][2];
static const void *addr[N];

static bool check(int i) {
  bool ok = ctx.magic == MAGIC && ctx.id == i && ctx.me == &ctx && ctx.owner == std::this_thread::get_id() &&
            name == "thread-" + std::to_string(i) + "-with-a-name-too-long-for-small-string-storage" &&
            counter == 5 + i;
  if (!ok)
    std::fprintf(stderr, "thread %d: ctx.id %d, name \"%s\", counter %d\n", i, ctx.id, name.c_str(), counter);
  return ok;
}

static void body(int i) {
  if (counter == 5 && name.empty()) fresh++;
  ctx.id = i; // first use: constructs it
  addr[i] = &ctx;
  name = "thread-" + std::to_string(i) + "-with-a-name-too-long-for-small-string-storage";
  counter += i;
  ready++;
  char c;
  CHECK(read(pipes[i][0], &c, 1) == 1 && c == static_cast<char>(i));
  if (check(i)) intact++;
  std::this_thread::sleep_for(std::chrono::microseconds(300 + (i * 131) % 1500));
  if (check(i)) intact_after_sleep++;
}

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  for (auto &p : pipes) CHECK(pipe(p) == 0);
  std::vector<std::thread> threads;
  for (int i = 0; i < N; i++) threads.emplace_back(body, i);
  for (int k = 0; k < 10000 && ready.load() < N; k++) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  CHECK(ready.load() == N);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  for (int i = N - 1; i >= 0; i--) {
    char c = static_cast<char>(i);
    CHECK(write(pipes[i][1], &c, 1) == 1);
  }
  for (auto &t : threads) t.join();
  int d = destroyed.load(); // all joined: every destructor has run

  std::set<const void *> distinct(addr, addr + N);
  std::printf("constructed %d\n", constructed.load());
  std::printf("fresh %d/%d\n", fresh.load(), N);
  std::printf("intact %d/%d\n", intact.load(), N);
  std::printf("intact after sleep_for %d/%d\n", intact_after_sleep.load(), N);
  std::printf("destroyed by join %d\n", d);
  std::printf("destructors in their own thread %d, in another %d, saw a bad state %d\n",
              dtor_same_thread.load(), dtor_wrong_thread.load(), dtor_bad_state.load());
  std::printf("distinct object addresses %zu\n", distinct.size());
  bool ok = constructed.load() == N && fresh.load() == N && intact.load() == N && intact_after_sleep.load() == N &&
            d == N && dtor_same_thread.load() == N && dtor_wrong_thread.load() == 0 && dtor_bad_state.load() == 0 &&
            distinct.size() == static_cast<size_t>(N);
  std::printf("all destructors ran at thread exit in their own thread: %s\n", ok ? "true" : "false");
  std::fflush(stdout);
  return ok ? 0 : 1;
}
