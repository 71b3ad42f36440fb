/* lock_wait — blocking file locks waited for by threads:
 *   - 4 threads take turns with flock(LOCK_EX) on their own open of one file, each writing a record
 *     in two halves with a short pause in between (5 records each): every record must be whole;
 *   - the same with OFD locks (fcntl F_OFD_SETLKW), which are also per open file description;
 *   - POSIX record locks (fcntl F_SETLKW, lockf F_LOCK) are per process: a child process holds the
 *     lock for 300 ms while a thread waits for it and a heartbeat thread must keep ticking;
 *   - a shared lock converted to an exclusive one while another description holds a shared lock;
 *   - signal(7): a wait for a lock ends with EINTR when a handler without SA_RESTART runs, and goes on
 *     with SA_RESTART (main thread and a created thread, signalled with pthread_kill);
 *   - the non-blocking forms (LOCK_NB, F_SETLK) answer at once.
 * stdout: record counts, booleans, results. */
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/file.h>
#include <sys/wait.h>

#include "progs_util.h"

enum { THREADS = 4, RECORDS = 5 };
static char path[64];

enum { FLOCK, OFD };

struct taker {
  int kind;
  long id;
  pthread_t th;
};

static void lock_fd(int kind, int fd, bool lock) {
  if (kind == FLOCK) {
    CHECK(flock(fd, lock ? LOCK_EX : LOCK_UN) == 0);
  } else {
    struct flock fl = {.l_type = lock ? F_WRLCK : F_UNLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    CHECK(fcntl(fd, F_OFD_SETLKW, &fl) == 0);
  }
}

static void *taker(void *p) {
  struct taker *t = p;
  int fd = open(path, O_WRONLY | O_APPEND);
  CHECK(fd >= 0);
  for (int r = 0; r < RECORDS; r++) {
    lock_fd(t->kind, fd, true);
    char half[32];
    snprintf(half, sizeof half, "<%ld:%d ", t->id, r);
    write_all(fd, half, strlen(half));
    msleep(3); /* the others queue up for the lock meanwhile */
    snprintf(half, sizeof half, "%ld:%d>\n", t->id, r);
    write_all(fd, half, strlen(half));
    lock_fd(t->kind, fd, false);
  }
  CHECK(close(fd) == 0);
  return NULL;
}

static void take_turns(int kind) {
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  CHECK(fd >= 0);
  struct taker t[THREADS];
  for (long i = 0; i < THREADS; i++) {
    t[i] = (struct taker){.kind = kind, .id = i};
    CHECK(pthread_create(&t[i].th, NULL, taker, &t[i]) == 0);
  }
  for (int i = 0; i < THREADS; i++) CHECK(pthread_join(t[i].th, NULL) == 0);
  char buf[4096];
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  CHECK(n >= 0);
  buf[n] = 0;
  int whole = 0, lines = 0;
  for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
    long a, b;
    int ra, rb;
    lines++;
    if (sscanf(line, "<%ld:%d %ld:%d>", &a, &ra, &b, &rb) == 4 && a == b && ra == rb) whole++;
  }
  printf("%s: %d threads x %d records: %d lines, %d whole\n", kind == FLOCK ? "flock" : "F_OFD_SETLKW",
         THREADS, RECORDS, lines, whole);
  CHECK(close(fd) == 0);
}

/* ---- POSIX locks against another process --------------------------------------------------------- */

static _Atomic int ticks;
static _Atomic int stop_ticking;
static void *heartbeat(void *p) {
  (void)p;
  while (!stop_ticking) {
    msleep(10);
    ticks++;
  }
  return NULL;
}

/* A child takes a POSIX write lock on the whole file, tells us, holds it hold_ms, and exits. */
static pid_t child_holding(int hold_ms) {
  int p[2];
  CHECK(pipe(p) == 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    int fd = open(path, O_RDWR);
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    if (fd < 0 || fcntl(fd, F_SETLK, &fl) != 0) _exit(1);
    if (write(p[1], "L", 1) != 1) _exit(1);
    msleep(hold_ms);
    _exit(0);
  }
  char c;
  CHECK(read(p[0], &c, 1) == 1);
  close(p[0]);
  close(p[1]);
  return pid;
}

static void *posix_waiter(void *p) {
  int how = (int)(long)p;
  int fd = open(path, O_RDWR);
  CHECK(fd >= 0);
  double t0 = now_s();
  int r;
  if (how == 0) {
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    r = fcntl(fd, F_SETLKW, &fl);
  } else {
    r = lockf(fd, F_LOCK, 0);
  }
  double took = now_s() - t0;
  int ok = r == 0 && took > 0.2;
  /* the lock is ours now: the child (gone) no longer has it, F_GETLK from here sees no conflict */
  struct flock q = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
  CHECK(fcntl(fd, F_GETLK, &q) == 0);
  ok &= q.l_type == F_UNLCK;
  CHECK(close(fd) == 0);
  return (void *)(long)ok;
}

static void posix_against_child(int how) {
  int fd = open(path, O_RDWR | O_CREAT, 0600);
  CHECK(fd >= 0);
  pid_t pid = child_holding(300);
  ticks = 0;
  stop_ticking = 0;
  pthread_t hb, w;
  CHECK(pthread_create(&hb, NULL, heartbeat, NULL) == 0);
  CHECK(pthread_create(&w, NULL, posix_waiter, (void *)(long)how) == 0);
  void *ok;
  CHECK(pthread_join(w, &ok) == 0);
  int during = ticks;
  stop_ticking = 1;
  CHECK(pthread_join(hb, NULL) == 0);
  int st;
  CHECK(waitpid(pid, &st, 0) == pid);
  /* 300 ms of 10 ms ticks: natively ~28; a worker blocked in the lock wait would show ~0 */
  printf("%s against a child holding it 300 ms: got it after it let go %s, heartbeat kept ticking %s\n",
         how == 0 ? "F_SETLKW" : "lockf F_LOCK", (long)ok ? "yes" : "no", during >= 12 ? "yes" : "no");
  fprintf(stderr, "ticks during the wait: %d\n", during);
  CHECK(close(fd) == 0);
}

/* ---- conversions, non-blocking forms -------------------------------------------------------------- */

static void *release_later(void *p) {
  msleep(100);
  CHECK(flock((int)(long)p, LOCK_UN) == 0);
  return NULL;
}

static void conversions(void) {
  int a = open(path, O_RDWR), b = open(path, O_RDWR);
  CHECK(a >= 0 && b >= 0);
  CHECK(flock(a, LOCK_SH) == 0);
  CHECK(flock(b, LOCK_SH) == 0);
  printf("LOCK_EX|LOCK_NB while another shares it: %s\n", RES(flock(a, LOCK_EX | LOCK_NB)));
  pthread_t t;
  CHECK(pthread_create(&t, NULL, release_later, (void *)(long)b) == 0);
  printf("LOCK_SH -> LOCK_EX, the other lets go after 100 ms: %s\n", RES(flock(a, LOCK_EX)));
  CHECK(pthread_join(t, NULL) == 0);
  printf("LOCK_SH on the other now: %s\n", RES(flock(b, LOCK_SH | LOCK_NB)));
  struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
  printf("OFD F_OFD_SETLK on the other while flock'ed (independent): %s\n", RES(fcntl(b, F_OFD_SETLK, &fl)));
  int c = open(path, O_RDWR);
  printf("F_OFD_SETLK from a third description: %s\n", RES(fcntl(c, F_OFD_SETLK, &fl)));
  printf("flock on a bad fd: %s\n", RES(flock(-1, LOCK_EX)));
  printf("flock with a bad operation: %s\n", RES(flock(a, 0)));
  printf("F_SETLKW with a bad type: %s\n", RES(fcntl(a, F_SETLKW, &(struct flock){.l_type = 99})));
  printf("lockf F_TLOCK (own process's lock): %s\n", RES(lockf(a, F_TLOCK, 0)));
  close(a);
  close(b);
  close(c);
}

/* ---- signal(7) -------------------------------------------------------------------------------------- */

struct unlocker {
  int kind, fd;
};
static void *unlock_later(void *p) {
  struct unlocker *u = p;
  msleep(300);
  lock_fd(u->kind, u->fd, false);
  return NULL;
}

/* This thread waits for a lock another description holds until 300 ms; a handler arrives at 60 ms. */
static const char *interrupted(bool restart, int kind) {
  struct sigaction sa = {.sa_handler = usr1_count, .sa_flags = restart ? SA_RESTART : 0};
  sigemptyset(&sa.sa_mask);
  CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
  int holder = open(path, O_RDWR), fd = open(path, O_RDWR);
  CHECK(holder >= 0 && fd >= 0);
  lock_fd(kind, holder, true);
  struct kick k = {pthread_self()};
  struct unlocker u = {kind, holder};
  pthread_t kt, ut;
  int before = usr1_handled;
  CHECK(pthread_create(&kt, NULL, kick_after_60ms, &k) == 0);
  CHECK(pthread_create(&ut, NULL, unlock_later, &u) == 0);
  int r;
  if (kind == FLOCK) {
    r = flock(fd, LOCK_EX);
  } else {
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    r = fcntl(fd, F_OFD_SETLKW, &fl);
  }
  int e = errno;
  CHECK(pthread_join(kt, NULL) == 0);
  CHECK(pthread_join(ut, NULL) == 0);
  static char out[80];
  snprintf(out, sizeof out, "%s, handler ran: %s", r == 0 ? "0 (got it)" : res(r, e), usr1_handled > before ? "yes" : "no");
  close(fd);
  close(holder);
  return out;
}

static void interrupted_cases(const char *who) {
  printf("%s: flock, handler without SA_RESTART: %s\n", who, interrupted(false, FLOCK));
  printf("%s: flock, handler with SA_RESTART: %s\n", who, interrupted(true, FLOCK));
  printf("%s: F_OFD_SETLKW, handler without SA_RESTART: %s\n", who, interrupted(false, OFD));
  printf("%s: F_OFD_SETLKW, handler with SA_RESTART: %s\n", who, interrupted(true, OFD));
}

static void *interrupted_thread(void *p) {
  (void)p;
  interrupted_cases("thread");
  return NULL;
}

int main(void) {
  snprintf(path, sizeof path, "/tmp/progs-lock-%d", (int)getpid());
  take_turns(FLOCK);
  take_turns(OFD);
  posix_against_child(0);
  posix_against_child(1);
  conversions();
  interrupted_cases("main");
  pthread_t t;
  CHECK(pthread_create(&t, NULL, interrupted_thread, NULL) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  unlink(path);
  return 0;
}
