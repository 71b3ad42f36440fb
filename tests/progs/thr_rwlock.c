/* thr_rwlock — readers and writers on a pthread_rwlock: 8 readers check that an array is consistent
 * (all elements equal) while 2 writers increment every element under the write lock; the counts are
 * exact at the end. Then the error cases as glibc defines them: tryrdlock while a writer holds, trywrlock
 * while a reader holds, wrlock/rdlock/try*lock by the writer itself, timed locks that time out, and
 * the writer-preferring kind refusing new readers while a writer waits. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>

#include "progs.h"
#include "thr_util.h"

#define NREADERS 8
#define NWRITERS 2
#define READS 100000
#define WRITES 20000
#define ARRAY 64



static pthread_rwlock_t rw = PTHREAD_RWLOCK_INITIALIZER;
static long array[ARRAY];
static _Atomic long reads_done, writes_done, inconsistent, readers_inside, max_readers_inside;
static _Atomic int writer_inside, writer_overlap;

static void *reader(void *arg) {
  (void)arg;
  for (int i = 0; i < READS; i++) {
    CHECK(pthread_rwlock_rdlock(&rw) == 0);
    long in = atomic_fetch_add(&readers_inside, 1) + 1;
    long m = atomic_load(&max_readers_inside);
    while (in > m && !atomic_compare_exchange_weak(&max_readers_inside, &m, in)) {}
    if (atomic_load(&writer_inside)) atomic_fetch_add(&writer_overlap, 1);
    long first = array[0];
    for (int k = 1; k < ARRAY; k++)
      if (array[k] != first) {
        atomic_fetch_add(&inconsistent, 1);
        break;
      }
    if ((i & 1023) == 0) CHECK(sched_yield() == 0); /* sometimes hold it across a yield */
    atomic_fetch_sub(&readers_inside, 1);
    CHECK(pthread_rwlock_unlock(&rw) == 0);
    atomic_fetch_add(&reads_done, 1);
  }
  return NULL;
}

static void *writer(void *arg) {
  (void)arg;
  for (int i = 0; i < WRITES; i++) {
    CHECK(pthread_rwlock_wrlock(&rw) == 0);
    if (atomic_exchange(&writer_inside, 1)) atomic_fetch_add(&writer_overlap, 1);
    if (atomic_load(&readers_inside)) atomic_fetch_add(&writer_overlap, 1);
    for (int k = 0; k < ARRAY; k++) {
      array[k]++;
      if ((i & 255) == 0 && k == ARRAY / 2) CHECK(sched_yield() == 0); /* half-written, and yield */
    }
    atomic_store(&writer_inside, 0);
    CHECK(pthread_rwlock_unlock(&rw) == 0);
    atomic_fetch_add(&writes_done, 1);
  }
  return NULL;
}

/* ---- a thread that holds the lock (read or write) until released ---------------------------------- */

struct holder {
  pthread_rwlock_t *rw;
  int write;
  _Atomic int held, release;
  pthread_t t;
};

static void *holder_thread(void *p) {
  struct holder *h = p;
  CHECK((h->write ? pthread_rwlock_wrlock(h->rw) : pthread_rwlock_rdlock(h->rw)) == 0);
  atomic_store(&h->held, 1);
  for (int i = 0; i < 10000 && !atomic_load(&h->release); i++) CHECK(usleep(1000) == 0);
  CHECK(atomic_load(&h->release));
  CHECK(pthread_rwlock_unlock(h->rw) == 0);
  return NULL;
}

static void hold(struct holder *h, pthread_rwlock_t *l, int write) {
  h->rw = l;
  h->write = write;
  atomic_store(&h->held, 0);
  atomic_store(&h->release, 0);
  CHECK(pthread_create(&h->t, NULL, holder_thread, h) == 0);
  for (int i = 0; i < 10000 && !atomic_load(&h->held); i++) CHECK(usleep(1000) == 0);
  CHECK(atomic_load(&h->held));
}

static void release(struct holder *h) {
  atomic_store(&h->release, 1);
  CHECK(pthread_join(h->t, NULL) == 0);
}

static struct timespec in_ms(clockid_t clk, long ms) {
  struct timespec ts;
  CHECK(clock_gettime(clk, &ts) == 0);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
  return ts;
}

static void timed_case(const char *what, int (*fn)(pthread_rwlock_t *, const struct timespec *), pthread_rwlock_t *l) {
  struct timespec ts = in_ms(CLOCK_REALTIME, 100);
  double t0 = now_s();
  expect(what, fn(l, &ts), ETIMEDOUT);
  double took = now_s() - t0;
  int ok = took >= 0.099 && took < 0.5;
  printf("%s waited ~100ms: %s\n", what, ok ? "yes" : "NO");
  if (!ok) failures++, fprintf(stderr, "%s took %.6f s\n", what, took);
}

/* A writer thread that waits for the lock and records when it got it. */
static _Atomic int waiting_writer_got;
static void *waiting_writer(void *l) {
  CHECK(pthread_rwlock_wrlock(l) == 0);
  atomic_store(&waiting_writer_got, 1);
  CHECK(pthread_rwlock_unlock(l) == 0);
  return NULL;
}

static void errors(void) {
  pthread_rwlock_t l;
  CHECK(pthread_rwlock_init(&l, NULL) == 0);
  struct holder h;

  hold(&h, &l, 1);
  expect("tryrdlock while a writer holds", pthread_rwlock_tryrdlock(&l), EBUSY);
  expect("trywrlock while a writer holds", pthread_rwlock_trywrlock(&l), EBUSY);
  timed_case("timedrdlock while a writer holds", pthread_rwlock_timedrdlock, &l);
  timed_case("timedwrlock while a writer holds", pthread_rwlock_timedwrlock, &l);
  release(&h);

  hold(&h, &l, 0);
  expect("tryrdlock while a reader holds", pthread_rwlock_tryrdlock(&l), 0);
  expect("unlock that read lock", pthread_rwlock_unlock(&l), 0);
  expect("trywrlock while a reader holds", pthread_rwlock_trywrlock(&l), EBUSY);
  timed_case("timedwrlock while a reader holds", pthread_rwlock_timedwrlock, &l);
  struct timespec ts = in_ms(CLOCK_REALTIME, -1000);
  expect("timedwrlock in the past while a reader holds", pthread_rwlock_timedwrlock(&l, &ts), ETIMEDOUT);
  struct timespec bad = {0, 2000000000L};
  expect("timedwrlock bad nsec while a reader holds", pthread_rwlock_timedwrlock(&l, &bad), EINVAL);
  ts = in_ms(CLOCK_MONOTONIC, 100);
  double t0 = now_s();
  expect("clockwrlock monotonic while a reader holds", pthread_rwlock_clockwrlock(&l, CLOCK_MONOTONIC, &ts), ETIMEDOUT);
  double took = now_s() - t0;
  int ok = took >= 0.099 && took < 0.5;
  printf("clockwrlock waited ~100ms: %s\n", ok ? "yes" : "NO");
  if (!ok) failures++, fprintf(stderr, "clockwrlock took %.6f s\n", took);
  release(&h);

  /* glibc checks the timespec before it looks at the lock. */
  int r = pthread_rwlock_timedwrlock(&l, &bad);
  expect("timedwrlock free bad nsec", r, EINVAL);
  if (r == 0) CHECK(pthread_rwlock_unlock(&l) == 0);
  r = pthread_rwlock_timedrdlock(&l, &bad);
  expect("timedrdlock free bad nsec", r, EINVAL);
  if (r == 0) CHECK(pthread_rwlock_unlock(&l) == 0);
  ts = in_ms(CLOCK_MONOTONIC, 100);
  r = pthread_rwlock_clockrdlock(&l, CLOCK_PROCESS_CPUTIME_ID, &ts);
  expect("clockrdlock free with CLOCK_PROCESS_CPUTIME_ID", r, EINVAL);
  if (r == 0) CHECK(pthread_rwlock_unlock(&l) == 0);

  /* The writer itself. */
  expect("wrlock", pthread_rwlock_wrlock(&l), 0);
  expect("wrlock again by the writer", pthread_rwlock_wrlock(&l), EDEADLK);
  expect("rdlock by the writer", pthread_rwlock_rdlock(&l), EDEADLK);
  expect("trywrlock by the writer", pthread_rwlock_trywrlock(&l), EBUSY);
  expect("tryrdlock by the writer", pthread_rwlock_tryrdlock(&l), EBUSY);
  ts = in_ms(CLOCK_REALTIME, 50);
  expect("timedwrlock by the writer", pthread_rwlock_timedwrlock(&l, &ts), EDEADLK);
  expect("unlock the write lock", pthread_rwlock_unlock(&l), 0);

  /* A reader may read-lock again (default kind). */
  expect("rdlock", pthread_rwlock_rdlock(&l), 0);
  expect("rdlock again by the reader", pthread_rwlock_rdlock(&l), 0);
  expect("unlock 1", pthread_rwlock_unlock(&l), 0);
  expect("unlock 2", pthread_rwlock_unlock(&l), 0);
  expect("destroy", pthread_rwlock_destroy(&l), 0);

  /* Writer-preferring kind: while a writer waits, no new reader gets in. */
  pthread_rwlockattr_t a;
  CHECK(pthread_rwlockattr_init(&a) == 0);
  CHECK(pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP) == 0);
  CHECK(pthread_rwlock_init(&l, &a) == 0);
  hold(&h, &l, 0);
  pthread_t w;
  atomic_store(&waiting_writer_got, 0);
  CHECK(pthread_create(&w, NULL, waiting_writer, &l) == 0);
  /* Once the writer has queued up, new readers are refused: try for up to 2 s (the writer thread
   * may be slow to start on a loaded machine). */
  for (int i = 0; i < 200; i++) {
    CHECK(usleep(10000) == 0);
    r = pthread_rwlock_tryrdlock(&l);
    if (r != 0) break;
    CHECK(pthread_rwlock_unlock(&l) == 0);
  }
  printf("writer got it while a reader holds: %s\n", atomic_load(&waiting_writer_got) ? "yes" : "no");
  expect("prefer-writer: tryrdlock while a writer waits", r, EBUSY);
  release(&h);
  CHECK(pthread_join(w, NULL) == 0);
  printf("writer got it after the reader left: %s\n", atomic_load(&waiting_writer_got) ? "yes" : "no");
  CHECK(pthread_rwlock_destroy(&l) == 0);

  /* Default kind (prefer readers): a new reader gets in while a writer waits. */
  CHECK(pthread_rwlock_init(&l, NULL) == 0);
  hold(&h, &l, 0);
  atomic_store(&waiting_writer_got, 0);
  CHECK(pthread_create(&w, NULL, waiting_writer, &l) == 0);
  CHECK(usleep(200000) == 0);
  r = pthread_rwlock_tryrdlock(&l);
  expect("prefer-reader: tryrdlock while a writer waits", r, 0);
  if (r == 0) CHECK(pthread_rwlock_unlock(&l) == 0);
  release(&h);
  CHECK(pthread_join(w, NULL) == 0);
  printf("writer got it after the reader left: %s\n", atomic_load(&waiting_writer_got) ? "yes" : "no");
  CHECK(pthread_rwlock_destroy(&l) == 0);
  CHECK(pthread_rwlockattr_destroy(&a) == 0);
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  pthread_t r[NREADERS], w[NWRITERS];
  double t0 = now_s();
  for (int i = 0; i < NREADERS; i++) CHECK(pthread_create(&r[i], NULL, reader, NULL) == 0);
  for (int i = 0; i < NWRITERS; i++) CHECK(pthread_create(&w[i], NULL, writer, NULL) == 0);
  for (int i = 0; i < NREADERS; i++) CHECK(pthread_join(r[i], NULL) == 0);
  for (int i = 0; i < NWRITERS; i++) CHECK(pthread_join(w[i], NULL) == 0);
  fprintf(stderr, "readers/writers: %.3f s, at most %ld readers inside at once\n", now_s() - t0,
          atomic_load(&max_readers_inside));
  long minv = array[0], maxv = array[0];
  for (int k = 1; k < ARRAY; k++) {
    if (array[k] < minv) minv = array[k];
    if (array[k] > maxv) maxv = array[k];
  }
  printf("reads %ld writes %ld\n", atomic_load(&reads_done), atomic_load(&writes_done));
  printf("array elements min %ld max %ld\n", minv, maxv);
  printf("inconsistent reads %ld, writer overlaps %d\n", atomic_load(&inconsistent), atomic_load(&writer_overlap));
  if (atomic_load(&reads_done) != (long)NREADERS * READS || atomic_load(&writes_done) != (long)NWRITERS * WRITES ||
      minv != (long)NWRITERS * WRITES || maxv != minv || atomic_load(&inconsistent) || atomic_load(&writer_overlap))
    failures++;

  errors();
  printf("failures: %d\n", failures);
  return failures ? 1 : 0;
}
