/* thr_mutex_kinds — what each kind of pthread mutex returns, as glibc defines it: normal, recursive
 * and error-checking (static initialisers and attributes), timed locking, process-shared, priority
 * inheritance and robust mutexes. One line per result, e.g. "errorcheck relock: EDEADLK". Operations
 * "from another thread" run in a fresh thread while the owner holds the mutex. */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "progs.h"
#include "thr_util.h"



/* ---- run one operation in another thread ---------------------------------------------------------- */

enum op { OP_LOCK, OP_TRYLOCK, OP_UNLOCK, OP_TRYLOCK_UNLOCK };

struct opcall {
  pthread_mutex_t *m;
  enum op op;
  int r;
};

static void *op_thread(void *p) {
  struct opcall *c = p;
  switch (c->op) {
  case OP_LOCK: c->r = pthread_mutex_lock(c->m); break;
  case OP_TRYLOCK: c->r = pthread_mutex_trylock(c->m); break;
  case OP_UNLOCK: c->r = pthread_mutex_unlock(c->m); break;
  case OP_TRYLOCK_UNLOCK:
    c->r = pthread_mutex_trylock(c->m);
    if (c->r == 0) CHECK(pthread_mutex_unlock(c->m) == 0);
    break;
  }
  return NULL;
}

static int other(pthread_mutex_t *m, enum op op) {
  struct opcall c = {m, op, -1};
  pthread_t t;
  CHECK(pthread_create(&t, NULL, op_thread, &c) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  return c.r;
}

/* A thread that locks m, says so, holds it until told (or for hold_ms), then unlocks. */
struct holder {
  pthread_mutex_t *m;
  int hold_ms;
  _Atomic int held, release;
  int unlock_r;
  pthread_t t;
};

static void *holder_thread(void *p) {
  struct holder *h = p;
  int r = pthread_mutex_lock(h->m);
  if (r != 0) { /* reported as the holder's unlock result; the mutex is not held */
    fprintf(stderr, "holder: lock returned %s\n", en(r));
    h->unlock_r = r;
    atomic_store(&h->held, 1);
    return NULL;
  }
  atomic_store(&h->held, 1);
  if (h->hold_ms) {
    CHECK(usleep((useconds_t)h->hold_ms * 1000) == 0);
  } else {
    for (int i = 0; i < 10000 && !atomic_load(&h->release); i++) CHECK(usleep(1000) == 0);
    CHECK(atomic_load(&h->release));
  }
  h->unlock_r = pthread_mutex_unlock(h->m);
  return NULL;
}

static void hold_start(struct holder *h, pthread_mutex_t *m, int hold_ms) {
  h->m = m;
  h->hold_ms = hold_ms;
  atomic_store(&h->held, 0);
  atomic_store(&h->release, 0);
  h->unlock_r = -1;
  CHECK(pthread_create(&h->t, NULL, holder_thread, h) == 0);
  for (int i = 0; i < 10000 && !atomic_load(&h->held); i++) CHECK(usleep(1000) == 0);
  CHECK(atomic_load(&h->held));
}

static void hold_end(struct holder *h) {
  atomic_store(&h->release, 1);
  CHECK(pthread_join(h->t, NULL) == 0);
  CHECK(h->unlock_r == 0);
}

static struct timespec in_ms(clockid_t clk, long ms) {
  struct timespec ts;
  CHECK(clock_gettime(clk, &ts) == 0);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
  return ts;
}

static void init_kind(pthread_mutex_t *m, int type) {
  pthread_mutexattr_t a;
  CHECK(pthread_mutexattr_init(&a) == 0);
  CHECK(pthread_mutexattr_settype(&a, type) == 0);
  CHECK(pthread_mutex_init(m, &a) == 0);
  CHECK(pthread_mutexattr_destroy(&a) == 0);
}

/* ---- the kinds ------------------------------------------------------------------------------------ */

static void normal(const char *name, pthread_mutex_t *m) {
  char w[96];
#define W(s) (snprintf(w, sizeof w, "%s %s", name, s), w)
  expect(W("lock"), pthread_mutex_lock(m), 0);
  expect(W("trylock by owner"), pthread_mutex_trylock(m), EBUSY);
  expect(W("trylock by other"), other(m, OP_TRYLOCK), EBUSY);
  expect(W("unlock"), pthread_mutex_unlock(m), 0);
  expect(W("trylock+unlock by other"), other(m, OP_TRYLOCK_UNLOCK), 0);
  expect(W("trylock"), pthread_mutex_trylock(m), 0);
  expect(W("unlock again"), pthread_mutex_unlock(m), 0);
  expect(W("destroy"), pthread_mutex_destroy(m), 0);
#undef W
}

static void recursive(const char *name, pthread_mutex_t *m) {
  char w[96];
#define W(s) (snprintf(w, sizeof w, "%s %s", name, s), w)
  expect(W("lock 1"), pthread_mutex_lock(m), 0);
  expect(W("lock 2"), pthread_mutex_lock(m), 0);
  expect(W("lock 3"), pthread_mutex_lock(m), 0);
  expect(W("trylock by owner"), pthread_mutex_trylock(m), 0);
  expect(W("trylock by other"), other(m, OP_TRYLOCK), EBUSY);
  expect(W("unlock by other"), other(m, OP_UNLOCK), EPERM);
  expect(W("unlock 1"), pthread_mutex_unlock(m), 0);
  expect(W("unlock 2"), pthread_mutex_unlock(m), 0);
  expect(W("unlock 3"), pthread_mutex_unlock(m), 0);
  expect(W("trylock by other while owned once"), other(m, OP_TRYLOCK), EBUSY);
  expect(W("unlock 4"), pthread_mutex_unlock(m), 0);
  expect(W("unlock 5 (not locked)"), pthread_mutex_unlock(m), EPERM);
  expect(W("trylock+unlock by other"), other(m, OP_TRYLOCK_UNLOCK), 0);
  struct holder h;
  hold_start(&h, m, 0);
  expect(W("unlock by non-owner"), pthread_mutex_unlock(m), EPERM);
  expect(W("trylock while other holds"), pthread_mutex_trylock(m), EBUSY);
  hold_end(&h);
  expect(W("destroy"), pthread_mutex_destroy(m), 0);
#undef W
}

static void errorcheck(const char *name, pthread_mutex_t *m) {
  char w[96];
#define W(s) (snprintf(w, sizeof w, "%s %s", name, s), w)
  expect(W("unlock when unlocked"), pthread_mutex_unlock(m), EPERM);
  expect(W("lock"), pthread_mutex_lock(m), 0);
  expect(W("relock"), pthread_mutex_lock(m), EDEADLK);
  expect(W("trylock by owner"), pthread_mutex_trylock(m), EBUSY);
  struct timespec ts = in_ms(CLOCK_REALTIME, 50);
  expect(W("timedlock by owner"), pthread_mutex_timedlock(m, &ts), EDEADLK);
  expect(W("trylock by other"), other(m, OP_TRYLOCK), EBUSY);
  expect(W("unlock by other"), other(m, OP_UNLOCK), EPERM);
  expect(W("unlock"), pthread_mutex_unlock(m), 0);
  expect(W("unlock twice"), pthread_mutex_unlock(m), EPERM);
  struct holder h;
  hold_start(&h, m, 0);
  expect(W("unlock by non-owner"), pthread_mutex_unlock(m), EPERM);
  hold_end(&h);
  expect(W("destroy"), pthread_mutex_destroy(m), 0);
#undef W
}

static void timed(void) {
  pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
  struct timespec ts = in_ms(CLOCK_REALTIME, 100);
  expect("timedlock free", pthread_mutex_timedlock(&m, &ts), 0);
  expect("timedlock free unlock", pthread_mutex_unlock(&m), 0);
  struct timespec bad = {0, 2000000000L};
  expect("timedlock free bad nsec", pthread_mutex_timedlock(&m, &bad), 0);
  expect("timedlock free bad nsec unlock", pthread_mutex_unlock(&m), 0);
  ts = in_ms(CLOCK_MONOTONIC, 100);
  int r = pthread_mutex_clocklock(&m, CLOCK_PROCESS_CPUTIME_ID, &ts);
  expect("clocklock free with CLOCK_PROCESS_CPUTIME_ID", r, EINVAL);
  if (r == 0) CHECK(pthread_mutex_unlock(&m) == 0);

  struct holder h;
  hold_start(&h, &m, 0);
  double t0 = now_s();
  ts = in_ms(CLOCK_REALTIME, 100);
  expect("timedlock held", pthread_mutex_timedlock(&m, &ts), ETIMEDOUT);
  double took = now_s() - t0;
  int ok = took >= 0.099 && took < 0.5;
  printf("timedlock held waited ~100ms: %s\n", ok ? "yes" : "NO");
  if (!ok) failures++, fprintf(stderr, "timedlock took %.6f s\n", took);
  ts = in_ms(CLOCK_MONOTONIC, 100);
  t0 = now_s();
  expect("clocklock monotonic held", pthread_mutex_clocklock(&m, CLOCK_MONOTONIC, &ts), ETIMEDOUT);
  took = now_s() - t0;
  ok = took >= 0.099 && took < 0.5;
  printf("clocklock held waited ~100ms: %s\n", ok ? "yes" : "NO");
  if (!ok) failures++, fprintf(stderr, "clocklock took %.6f s\n", took);
  ts = in_ms(CLOCK_REALTIME, -1000);
  expect("timedlock held past", pthread_mutex_timedlock(&m, &ts), ETIMEDOUT);
  struct timespec neg = {-1, 0};
  expect("timedlock held negative", pthread_mutex_timedlock(&m, &neg), ETIMEDOUT);
  expect("timedlock held bad nsec", pthread_mutex_timedlock(&m, &bad), EINVAL);
  hold_end(&h);

  /* A holder that lets go after 200 ms: the timed lock gets the mutex then, not at its deadline. */
  hold_start(&h, &m, 200);
  t0 = now_s();
  ts = in_ms(CLOCK_REALTIME, 5000);
  expect("timedlock until released", pthread_mutex_timedlock(&m, &ts), 0);
  took = now_s() - t0;
  ok = took > 0.05 && took < 2.0;
  printf("timedlock until released in time: %s\n", ok ? "yes" : "NO");
  if (!ok) failures++, fprintf(stderr, "timedlock until released took %.6f s\n", took);
  expect("timedlock until released unlock", pthread_mutex_unlock(&m), 0);
  CHECK(pthread_join(h.t, NULL) == 0);
  CHECK(h.unlock_r == 0);
}

/* Process-shared mutexes are still mutexes inside one process: contention with sleeps while held. */
static pthread_mutex_t ps_m;
static long ps_counter;
static void *ps_worker(void *arg) {
  (void)arg;
  for (int i = 0; i < 25; i++) {
    CHECK(pthread_mutex_lock(&ps_m) == 0);
    long v = ps_counter;
    CHECK(usleep(500) == 0);
    ps_counter = v + 1;
    CHECK(pthread_mutex_unlock(&ps_m) == 0);
  }
  return NULL;
}

/* Thread A locks and holds; thread B (a different thread, created second) does `op`; then A unlocks.
 * Both results are reported: an operation that wrongly succeeded shows in A's unlock too. */
static void between_threads(const char *what, pthread_mutex_t *m, enum op op, int want) {
  char w[320];
  struct holder h;
  hold_start(&h, m, 0);
  expect(what, other(m, op), want);
  atomic_store(&h.release, 1);
  CHECK(pthread_join(h.t, NULL) == 0);
  snprintf(w, sizeof w, "%s, then the holder's unlock", what);
  expect(w, h.unlock_r, 0);
}

/* Thread A holds the mutex for 200 ms; thread B's lock must wait for it. */
struct timed_lock {
  pthread_mutex_t *m;
  int r;
  double waited;
};
static void *timed_lock_thread(void *p) {
  struct timed_lock *t = p;
  double t0 = now_s();
  t->r = pthread_mutex_lock(t->m);
  t->waited = now_s() - t0;
  if (t->r == 0 || t->r == EOWNERDEAD) CHECK(pthread_mutex_unlock(t->m) == 0);
  return NULL;
}
static void lock_waits_for_holder(const char *what, pthread_mutex_t *m) {
  char w[320];
  struct holder h;
  hold_start(&h, m, 200);
  struct timed_lock t = {m, -1, 0};
  pthread_t th;
  CHECK(pthread_create(&th, NULL, timed_lock_thread, &t) == 0);
  CHECK(pthread_join(th, NULL) == 0);
  CHECK(pthread_join(h.t, NULL) == 0);
  snprintf(w, sizeof w, "%s: lock by a thread while another holds it", what);
  expect(w, t.r, 0);
  int ok = t.waited > 0.05;
  printf("%s: that lock waited for the holder: %s\n", what, ok ? "yes" : "NO");
  if (!ok) failures++, fprintf(stderr, "%s: lock waited %.6f s\n", what, t.waited);
  snprintf(w, sizeof w, "%s: the holder's unlock", what);
  expect(w, h.unlock_r, 0);
}

/* Mutexes glibc keeps to itself (process-shared, priority-inheriting, robust) that identify their
 * owner: error-checking and recursive ones, between two threads. */
static void glibc_owner_kinds(const char *name, int (*setup)(pthread_mutexattr_t *)) {
  int types[] = {PTHREAD_MUTEX_ERRORCHECK, PTHREAD_MUTEX_RECURSIVE, PTHREAD_MUTEX_NORMAL};
  const char *tnames[] = {"errorcheck", "recursive", "normal"};
  for (int i = 0; i < 3; i++) {
    char w[128];
    pthread_mutexattr_t a;
    CHECK(pthread_mutexattr_init(&a) == 0);
    CHECK(setup(&a) == 0);
    CHECK(pthread_mutexattr_settype(&a, types[i]) == 0);
    pthread_mutex_t m;
    CHECK(pthread_mutex_init(&m, &a) == 0);
    CHECK(pthread_mutexattr_destroy(&a) == 0);
    snprintf(w, sizeof w, "%s %s: trylock+unlock by a thread while another holds it", name, tnames[i]);
    between_threads(w, &m, OP_TRYLOCK_UNLOCK, EBUSY);
    if (types[i] != PTHREAD_MUTEX_NORMAL) {
      snprintf(w, sizeof w, "%s %s: unlock by a thread while another holds it", name, tnames[i]);
      between_threads(w, &m, OP_UNLOCK, EPERM);
    }
    snprintf(w, sizeof w, "%s %s", name, tnames[i]);
    lock_waits_for_holder(w, &m);
    snprintf(w, sizeof w, "%s %s: destroy", name, tnames[i]);
    expect(w, pthread_mutex_destroy(&m), 0);
  }
}

/* The same with many threads at once: 8 holders, then 8 others, each trying its holder's mutex. */
#define PAIRS 8
struct pair_slot {
  pthread_mutex_t m;
  struct holder h;
  int try_r, unlock_r;
};
static void *pair_other(void *p) {
  struct pair_slot *ps = p;
  ps->try_r = pthread_mutex_trylock(&ps->m);
  if (ps->try_r == 0) CHECK(pthread_mutex_unlock(&ps->m) == 0);
  ps->unlock_r = pthread_mutex_unlock(&ps->m);
  return NULL;
}
static void many_pairs(const char *name, int (*setup)(pthread_mutexattr_t *)) {
  int types[] = {PTHREAD_MUTEX_ERRORCHECK, PTHREAD_MUTEX_RECURSIVE};
  const char *tnames[] = {"errorcheck", "recursive"};
  for (int k = 0; k < 2; k++) {
    static struct pair_slot ps[PAIRS];
    pthread_t others[PAIRS];
    for (int i = 0; i < PAIRS; i++) {
      pthread_mutexattr_t a;
      CHECK(pthread_mutexattr_init(&a) == 0);
      CHECK(setup(&a) == 0);
      CHECK(pthread_mutexattr_settype(&a, types[k]) == 0);
      CHECK(pthread_mutex_init(&ps[i].m, &a) == 0);
      CHECK(pthread_mutexattr_destroy(&a) == 0);
    }
    for (int i = 0; i < PAIRS; i++) hold_start(&ps[i].h, &ps[i].m, 0);
    for (int i = 0; i < PAIRS; i++) CHECK(pthread_create(&others[i], NULL, pair_other, &ps[i]) == 0);
    for (int i = 0; i < PAIRS; i++) CHECK(pthread_join(others[i], NULL) == 0);
    for (int i = 0; i < PAIRS; i++) {
      atomic_store(&ps[i].h.release, 1);
      CHECK(pthread_join(ps[i].h.t, NULL) == 0);
    }
    int try_busy = 0, unlock_perm = 0, holder_ok = 0;
    for (int i = 0; i < PAIRS; i++) {
      try_busy += ps[i].try_r == EBUSY;
      unlock_perm += ps[i].unlock_r == EPERM;
      holder_ok += ps[i].h.unlock_r == 0;
      if (ps[i].try_r != EBUSY || ps[i].unlock_r != EPERM || ps[i].h.unlock_r != 0)
        fprintf(stderr, "%s %s pair %d: trylock %s, unlock %s, holder's unlock %s\n", name, tnames[k], i,
                en(ps[i].try_r), en(ps[i].unlock_r), en(ps[i].h.unlock_r));
    }
    printf("%s %s, %d pairs at once: trylock EBUSY %d, unlock EPERM %d, holder's unlock OK %d\n", name, tnames[k],
           PAIRS, try_busy, unlock_perm, holder_ok);
    if (try_busy != PAIRS || unlock_perm != PAIRS || holder_ok != PAIRS) failures++;
    for (int i = 0; i < PAIRS; i++) {
      int r = pthread_mutex_destroy(&ps[i].m);
      if (r) fprintf(stderr, "%s %s pair %d: destroy %s\n", name, tnames[k], i, en(r));
    }
  }
}

static int setup_pshared(pthread_mutexattr_t *a) { return pthread_mutexattr_setpshared(a, PTHREAD_PROCESS_SHARED); }
static int setup_pi(pthread_mutexattr_t *a) { return pthread_mutexattr_setprotocol(a, PTHREAD_PRIO_INHERIT); }
static int setup_robust(pthread_mutexattr_t *a) { return pthread_mutexattr_setrobust(a, PTHREAD_MUTEX_ROBUST); }

static void pshared(void) {
  pthread_mutexattr_t a;
  CHECK(pthread_mutexattr_init(&a) == 0);
  CHECK(pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED) == 0);
  int v = -1;
  CHECK(pthread_mutexattr_getpshared(&a, &v) == 0);
  printf("pshared attr: %s\n", v == PTHREAD_PROCESS_SHARED ? "PTHREAD_PROCESS_SHARED" : "?");
  CHECK(pthread_mutex_init(&ps_m, &a) == 0);
  expect("pshared lock", pthread_mutex_lock(&ps_m), 0);
  expect("pshared trylock by other", other(&ps_m, OP_TRYLOCK), EBUSY);
  expect("pshared unlock", pthread_mutex_unlock(&ps_m), 0);
  expect("pshared trylock+unlock by other", other(&ps_m, OP_TRYLOCK_UNLOCK), 0);
  between_threads("pshared trylock+unlock by thread while thread holds", &ps_m, OP_TRYLOCK_UNLOCK, EBUSY);

  pthread_t t[4];
  ps_counter = 0;
  for (int i = 0; i < 4; i++) CHECK(pthread_create(&t[i], NULL, ps_worker, NULL) == 0);
  for (int i = 0; i < 4; i++) CHECK(pthread_join(t[i], NULL) == 0);
  printf("pshared contended counter: %ld\n", ps_counter);
  if (ps_counter != 100) failures++;
  expect("pshared destroy", pthread_mutex_destroy(&ps_m), 0);

  /* Error checking with a process-shared mutex, between two threads. */
  CHECK(pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK) == 0);
  pthread_mutex_t m;
  CHECK(pthread_mutex_init(&m, &a) == 0);
  expect("pshared errorcheck lock", pthread_mutex_lock(&m), 0);
  expect("pshared errorcheck relock", pthread_mutex_lock(&m), EDEADLK);
  expect("pshared errorcheck unlock", pthread_mutex_unlock(&m), 0);
  expect("pshared errorcheck destroy", pthread_mutex_destroy(&m), 0);
  CHECK(pthread_mutexattr_destroy(&a) == 0);
}

static void prio_inherit(void) {
  pthread_mutexattr_t a;
  CHECK(pthread_mutexattr_init(&a) == 0);
  CHECK(pthread_mutexattr_setprotocol(&a, PTHREAD_PRIO_INHERIT) == 0);
  pthread_mutex_t m;
  CHECK(pthread_mutex_init(&m, &a) == 0);
  expect("prio-inherit lock", pthread_mutex_lock(&m), 0);
  expect("prio-inherit trylock by other", other(&m, OP_TRYLOCK), EBUSY);
  expect("prio-inherit unlock", pthread_mutex_unlock(&m), 0);
  between_threads("prio-inherit trylock+unlock by thread while thread holds", &m, OP_TRYLOCK_UNLOCK, EBUSY);
  expect("prio-inherit destroy", pthread_mutex_destroy(&m), 0);
  CHECK(pthread_mutexattr_destroy(&a) == 0);
}

/* glibc refuses to destroy a locked mutex (it counts users). On mutexes of their own: a destroy that
 * wrongly succeeds leaves the mutex unusable (glibc marks it invalid). */
static void destroy_locked(void) {
  pthread_mutex_t n = PTHREAD_MUTEX_INITIALIZER, r = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP,
                  e = PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP, a;
  init_kind(&a, PTHREAD_MUTEX_DEFAULT);
  pthread_mutex_t *ms[] = {&n, &r, &e, &a};
  const char *names[] = {"normal", "recursive", "errorcheck", "default(attr)"};
  for (int i = 0; i < 4; i++) {
    char w[96];
    CHECK(pthread_mutex_lock(ms[i]) == 0);
    snprintf(w, sizeof w, "%s destroy while locked", names[i]);
    expect(w, pthread_mutex_destroy(ms[i]), EBUSY);
    snprintf(w, sizeof w, "%s unlock after refused destroy", names[i]);
    expect(w, pthread_mutex_unlock(ms[i]), 0);
    snprintf(w, sizeof w, "%s destroy", names[i]);
    expect(w, pthread_mutex_destroy(ms[i]), 0);
  }
}

/* ---- robust: the owner ends while holding the mutex ----------------------------------------------- */

static void *lock_and_exit(void *m) {
  CHECK(pthread_mutex_lock(m) == 0);
  return NULL; /* still holding it */
}

static void robust(void) {
  pthread_mutexattr_t a;
  CHECK(pthread_mutexattr_init(&a) == 0);
  CHECK(pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST) == 0);
  int v = -1;
  CHECK(pthread_mutexattr_getrobust(&a, &v) == 0);
  printf("robust attr: %s\n", v == PTHREAD_MUTEX_ROBUST ? "PTHREAD_MUTEX_ROBUST" : "?");
  pthread_mutex_t m, m2;
  CHECK(pthread_mutex_init(&m, &a) == 0);
  CHECK(pthread_mutex_init(&m2, &a) == 0);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, lock_and_exit, &m) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  expect("robust lock after owner died", pthread_mutex_lock(&m), EOWNERDEAD);
  expect("robust consistent", pthread_mutex_consistent(&m), 0);
  expect("robust unlock", pthread_mutex_unlock(&m), 0);
  expect("robust lock again", pthread_mutex_lock(&m), 0);
  expect("robust unlock again", pthread_mutex_unlock(&m), 0);
  expect("robust destroy", pthread_mutex_destroy(&m), 0);

  /* Not made consistent: unusable afterwards. */
  CHECK(pthread_create(&t, NULL, lock_and_exit, &m2) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  expect("robust2 trylock after owner died", pthread_mutex_trylock(&m2), EOWNERDEAD);
  expect("robust2 unlock without consistent", pthread_mutex_unlock(&m2), 0);
  expect("robust2 lock", pthread_mutex_lock(&m2), ENOTRECOVERABLE);
  CHECK(pthread_mutexattr_destroy(&a) == 0);
}

/* After robust mutexes on the stack had owners that died (robust() above, whose frame is gone now),
 * more robust locking by other threads must not write into the memory those mutexes occupied. */
static pthread_mutex_t robust_g;
static void *robust_lock_unlock(void *arg) {
  (void)arg;
  for (int i = 0; i < 10; i++) {
    CHECK(pthread_mutex_lock(&robust_g) == 0);
    CHECK(pthread_mutex_unlock(&robust_g) == 0);
  }
  return NULL;
}
__attribute__((noinline)) static void robust_stack_intact(void) {
  volatile unsigned char buf[8192];
  for (size_t i = 0; i < sizeof buf; i++) buf[i] = 0xA5;
  pthread_t t[8];
  for (int i = 0; i < 8; i++) CHECK(pthread_create(&t[i], NULL, robust_lock_unlock, NULL) == 0);
  for (int i = 0; i < 8; i++) CHECK(pthread_join(t[i], NULL) == 0);
  int changed = 0;
  for (size_t i = 0; i < sizeof buf; i++) changed += buf[i] != 0xA5;
  printf("robust: bytes of an unrelated stack buffer changed by other threads' locking: %d\n", changed);
  if (changed) failures++;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  pthread_mutex_t n1 = PTHREAD_MUTEX_INITIALIZER, n2, n3;
  normal("normal(static)", &n1);
  init_kind(&n2, PTHREAD_MUTEX_NORMAL);
  normal("normal(attr)", &n2);
  init_kind(&n3, PTHREAD_MUTEX_DEFAULT);
  normal("default(attr)", &n3);
  pthread_mutex_t n4 = PTHREAD_MUTEX_INITIALIZER;
  expect("normal unlock when unlocked", pthread_mutex_unlock(&n4), 0);

  pthread_mutex_t r1 = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP, r2;
  recursive("recursive(static)", &r1);
  init_kind(&r2, PTHREAD_MUTEX_RECURSIVE);
  recursive("recursive(attr)", &r2);

  pthread_mutex_t e1 = PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP, e2;
  errorcheck("errorcheck(static)", &e1);
  init_kind(&e2, PTHREAD_MUTEX_ERRORCHECK);
  errorcheck("errorcheck(attr)", &e2);

  /* A condition wait on an error-checking mutex the caller does not hold. */
  pthread_mutex_t e3 = PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP;
  pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
  expect("cond_wait on errorcheck mutex not held", pthread_cond_wait(&cv, &e3), EPERM);

  timed();
  destroy_locked();
  pshared();
  prio_inherit();
  glibc_owner_kinds("pshared", setup_pshared);
  glibc_owner_kinds("prio-inherit", setup_pi);
  glibc_owner_kinds("robust", setup_robust);
  many_pairs("pshared", setup_pshared);
  many_pairs("prio-inherit", setup_pi);
  many_pairs("robust", setup_robust);
  robust();
  pthread_mutexattr_t ra;
  CHECK(pthread_mutexattr_init(&ra) == 0);
  CHECK(pthread_mutexattr_setrobust(&ra, PTHREAD_MUTEX_ROBUST) == 0);
  CHECK(pthread_mutex_init(&robust_g, &ra) == 0);
  CHECK(pthread_mutexattr_destroy(&ra) == 0);
  robust_stack_intact();
  printf("failures: %d\n", failures);
  return failures ? 1 : 0;
}
