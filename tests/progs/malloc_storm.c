/* malloc_storm — the allocator under threads: 8 threads malloc/calloc/posix_memalign/realloc/free
 * blocks of 1 byte to 1 MiB (past the mmap threshold), hand blocks to each other through a
 * mutex-protected queue (freed by another thread than the one that made them), and check every
 * byte they sampled; fork from main while the storm runs and fork from one of its threads (each child
 * mallocs, frees, creates and joins 2 threads, and exits with a status the parent checks); then a
 * pthread_create storm: 2000 short threads in batches of 100, each mallocing and freeing. A child
 * that has not exited after 10 s is killed (its status shows as -1).
 * stdout: counts and checksums of the data written (deterministic: every block is checked exactly
 * once, by whichever thread frees it). */
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>

#include "progs_util.h"

enum { NTHREADS = 8, NSLOTS = 128, OPS = 20000, QCAP = 512, CREATE_TOTAL = 2000, CREATE_BATCH = 100 };

/* ---- blocks: a few sampled bytes (head, tail, one per page) written from a seed, and checked ------ */

struct blk {
  unsigned char *p;
  size_t n;
  uint64_t seed;
};

static inline uint64_t rnd(uint64_t *s) { /* xorshift64* */
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * 2685821657736338717ull;
}

/* The sampled positions of a block of n bytes: 0..63, every 4096th, and the last 64. */
static inline size_t next_sample(size_t i, size_t n) {
  size_t j = i + 1;
  if (j < 64 || n <= 128 || j >= n - 64) return j;
  size_t page = (j + 4095) / 4096 * 4096;
  return page < n - 64 ? page : n - 64;
}
#define FOR_SAMPLES(n, i) for (size_t i = 0, end_ = (n); i < end_; i = next_sample(i, end_))

static inline unsigned char byte_at(uint64_t seed, size_t i) { return pattern(seed * 1000003u + i); }

static void fill(struct blk *b) {
  FOR_SAMPLES(b->n, i) b->p[i] = byte_at(b->seed, i);
}

/* checksum of what is in the block at the sampled positions below limit; counts the bytes that are
 * not what the seed wrote */
static uint64_t check(const struct blk *b, size_t limit, long *bad) {
  uint64_t sum = 0;
  FOR_SAMPLES(b->n, i) {
    if (i >= limit) break;
    unsigned char c = b->p[i];
    if (c != byte_at(b->seed, i)) ++*bad;
    sum += (uint64_t)c * (i % 251 + 1);
  }
  return sum;
}

static long zero_bad(const unsigned char *p, size_t n) {
  long bad = 0;
  FOR_SAMPLES(n, i) bad += p[i] != 0;
  return bad;
}

/* 70% up to 256 B, 20% up to 8 KiB, 8% up to 128 KiB, 2% up to 1 MiB */
static size_t pick_size(uint64_t *s) {
  uint64_t r = rnd(s), k = r % 100, v = r >> 8;
  if (k < 70) return 1 + v % 256;
  if (k < 90) return 257 + v % 8000;
  if (k < 98) return 8193 + v % (120 * 1024);
  return 128 * 1024 + v % (896 * 1024);
}

/* ---- the storm ------------------------------------------------------------------------------------ */

static pthread_mutex_t qmu = PTHREAD_MUTEX_INITIALIZER;
static struct blk queue[QCAP];
static int qhead, qlen;

static _Atomic long total_ops;

struct worker {
  int id;
  pthread_t th;
  uint64_t sum; /* checksums of every block this thread checked */
  long bad, allocs, reallocs, frees, handed;
  int fork_status; /* thread 0 forks */
};

static void release(struct worker *w, struct blk *b) {
  w->sum += check(b, b->n, &w->bad);
  free(b->p);
  b->p = NULL;
  w->frees++;
}

static int child_work(void);

/* The child's exit status (128 + signal if killed); a child not done after 10 s is killed: -1. */
static int wait_child(pid_t pid) {
  int st = 0;
  pid_t r = 0;
  for (int i = 0; i < 1000 && (r = waitpid(pid, &st, WNOHANG)) == 0; i++) msleep(10);
  if (r == 0) {
    fprintf(stderr, "child %d still running after 10 s: killed\n", (int)pid);
    CHECK(kill(pid, SIGKILL) == 0);
    CHECK(waitpid(pid, &st, 0) == pid);
    return -1;
  }
  CHECK(r == pid);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void *storm(void *arg) {
  struct worker *w = arg;
  uint64_t s = 0x9E3779B97F4A7C15ull * (uint64_t)(w->id + 1);
  struct blk slot[NSLOTS] = {{0}};
  for (int op = 0; op < OPS; op++) {
    if (op % 256 == 255) sched_yield(); /* let the other threads in, one worker or several */
    if (w->id == 0 && op == OPS / 2) {  /* fork from a thread while the others storm on */
      fflush(stdout);
      pid_t pid = fork();
      CHECK(pid >= 0);
      if (pid == 0) exit(child_work());
      w->fork_status = wait_child(pid);
    }
    uint64_t r = rnd(&s);
    struct blk *b = &slot[r % NSLOTS];
    unsigned k = (unsigned)(r >> 32) % 100;
    if (!b->p) {
      b->n = pick_size(&s);
      b->seed = rnd(&s);
      if (k < 60) {
        b->p = malloc(b->n);
      } else if (k < 80) {
        b->p = calloc(1, b->n);
        CHECK(b->p);
        w->bad += zero_bad(b->p, b->n);
      } else {
        size_t al = (size_t)16 << (k % 9); /* 16 .. 4096 */
        /* Debian 12's mimalloc 2.0.9 misaligns size == alignment for 256..1024 (its issue #700):
         * not ours to test. */
        if (b->n == al) b->n++;
        void *p = NULL;
        CHECK(posix_memalign(&p, al, b->n) == 0);
        if ((uintptr_t)p % al) w->bad++;
        b->p = p;
      }
      CHECK(b->p);
      fill(b);
      w->allocs++;
    } else if (k < 40) {
      release(w, b);
    } else if (k < 70) { /* realloc: the kept prefix must survive, then new contents */
      size_t n = pick_size(&s);
      unsigned char *p = realloc(b->p, n);
      CHECK(p);
      struct blk old = *b;
      old.p = p;
      w->sum += check(&old, n, &w->bad);
      b->p = p;
      b->n = n;
      b->seed = rnd(&s);
      fill(b);
      w->reallocs++;
    } else { /* hand it to whichever thread takes the queue next; take one back */
      struct blk give = *b, take = {0};
      b->p = NULL;
      CHECK(pthread_mutex_lock(&qmu) == 0);
      if (qlen < QCAP) queue[(qhead + qlen++) % QCAP] = give, give.p = NULL;
      if (qlen > 0 && (k & 1)) take = queue[qhead], qhead = (qhead + 1) % QCAP, qlen--;
      CHECK(pthread_mutex_unlock(&qmu) == 0);
      w->handed++;
      if (give.p) release(w, &give); /* queue full */
      if (take.p) release(w, &take);
    }
    atomic_fetch_add(&total_ops, 1);
  }
  for (int i = 0; i < NSLOTS; i++)
    if (slot[i].p) release(w, &slot[i]);
  return NULL;
}

/* ---- the children --------------------------------------------------------------------------------- */

/* a small storm of its own, same seed same checksum */
static void *mini_storm(void *arg) {
  uint64_t s = (uint64_t)(uintptr_t)arg, sum = 0;
  long bad = 0;
  struct blk slot[16] = {{0}};
  for (int op = 0; op < 3000; op++) {
    struct blk *b = &slot[rnd(&s) % 16];
    if (b->p) {
      sum += check(b, b->n, &bad);
      free(b->p);
      b->p = NULL;
    } else {
      b->n = pick_size(&s);
      b->seed = rnd(&s);
      b->p = malloc(b->n);
      CHECK(b->p);
      fill(b);
    }
  }
  for (int i = 0; i < 16; i++)
    if (slot[i].p) sum += check(&slot[i], slot[i].n, &bad), free(slot[i].p);
  uint64_t *res = malloc(sizeof *res);
  CHECK(res);
  *res = bad ? 0 : sum;
  return res;
}

/* in the child: mallocs and frees, creates and joins 2 threads that do the same; 42 if all agree */
static int child_work(void) {
  uint64_t *mine = mini_storm((void *)77);
  pthread_t t[2];
  uint64_t *theirs[2];
  for (int i = 0; i < 2; i++) CHECK(pthread_create(&t[i], NULL, mini_storm, (void *)77) == 0);
  for (int i = 0; i < 2; i++) CHECK(pthread_join(t[i], (void **)&theirs[i]) == 0);
  int ok = *mine != 0 && *mine == *theirs[0] && *mine == *theirs[1];
  if (!ok) fprintf(stderr, "child: checksums %llx %llx %llx\n", (unsigned long long)*mine,
                   (unsigned long long)*theirs[0], (unsigned long long)*theirs[1]);
  free(mine);
  free(theirs[0]);
  free(theirs[1]);
  return ok ? 42 : 1;
}

/* ---- the pthread_create storm --------------------------------------------------------------------- */

static void *short_thread(void *arg) {
  uint64_t s = (uint64_t)(uintptr_t)arg * 0x2545F4914F6CDD1Dull + 1, sum = 0;
  long bad = 0;
  struct blk b[4];
  for (int i = 0; i < 4; i++) {
    b[i].n = pick_size(&s);
    b[i].seed = rnd(&s);
    b[i].p = malloc(b[i].n);
    CHECK(b[i].p);
    fill(&b[i]);
  }
  for (int i = 0; i < 4; i++) sum += check(&b[i], b[i].n, &bad), free(b[i].p);
  return (void *)(uintptr_t)(bad ? 0 : (sum | 1));
}

int main(void) {
  struct worker w[NTHREADS];
  memset(w, 0, sizeof w);
  for (int i = 0; i < NTHREADS; i++) {
    w[i].id = i;
    CHECK(pthread_create(&w[i].th, NULL, storm, &w[i]) == 0);
  }
  /* fork from main once the storm is under way (bounded wait) */
  for (int i = 0; i < 5000 && atomic_load(&total_ops) < NTHREADS * OPS / 4; i++) msleep(1);
  fflush(stdout);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) exit(child_work());
  int main_fork = wait_child(pid);

  for (int i = 0; i < NTHREADS; i++) CHECK(pthread_join(w[i].th, NULL) == 0);
  uint64_t sum = 0;
  long bad = 0, allocs = 0, reallocs = 0, frees = 0, handed = 0;
  struct worker rest = {.id = -1};
  for (int i = 0; i < qlen; i++) release(&rest, &queue[(qhead + i) % QCAP]);
  for (int i = 0; i < NTHREADS; i++) {
    sum += w[i].sum, bad += w[i].bad, allocs += w[i].allocs, reallocs += w[i].reallocs;
    frees += w[i].frees, handed += w[i].handed;
  }
  sum += rest.sum, bad += rest.bad, frees += rest.frees;
  printf("storm: %d threads x %d ops: allocs %ld reallocs %ld handed over %ld frees %ld\n", NTHREADS, OPS,
         allocs, reallocs, handed, frees);
  printf("storm: every block freed once: %s\n", allocs == frees ? "yes" : "NO");
  printf("storm: checksum %016llx, bad bytes %ld\n", (unsigned long long)sum, bad);
  printf("fork from main during the storm: child exit %d\n", main_fork);
  printf("fork from a thread during the storm: child exit %d\n", w[0].fork_status);

  /* pthread_create storm */
  uint64_t csum = 0;
  long zero = 0, created = 0;
  pthread_t t[CREATE_BATCH];
  for (int base = 0; base < CREATE_TOTAL; base += CREATE_BATCH) {
    for (int i = 0; i < CREATE_BATCH; i++)
      CHECK(pthread_create(&t[i], NULL, short_thread, (void *)(uintptr_t)(base + i)) == 0);
    for (int i = 0; i < CREATE_BATCH; i++) {
      void *r;
      CHECK(pthread_join(t[i], &r) == 0);
      if (!r) zero++;
      csum += (uint64_t)(uintptr_t)r;
      created++;
    }
  }
  printf("create storm: %ld threads joined, checksum %016llx, bad %ld\n", created, (unsigned long long)csum,
         zero);

  int ok = bad == 0 && allocs == frees && main_fork == 42 && w[0].fork_status == 42 && zero == 0;
  printf("result: %s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
