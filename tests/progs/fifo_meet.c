/* fifo_meet — two threads meet on a FIFO: a blocking open() for reading waits until a writer opens
 * it, and the other way round. Both orders, 10 rounds each, a message passed every time; open with
 * O_RDWR and the O_NONBLOCK forms (which never wait: ENXIO for a writer without a reader); openat();
 * signal(7): a handler without SA_RESTART ends the wait with EINTR, SA_RESTART lets it go on; and
 * fopen() of the FIFO (stdio opens it inside libc).
 * stdout: what each side got, results. */
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/stat.h>

#include "progs_util.h"

static char path[64];

struct side {
  int delay_ms;
  int use_openat;
  char got[32];
  pthread_t th;
};

static void *reader(void *p) {
  struct side *s = p;
  msleep(s->delay_ms);
  int fd = s->use_openat ? openat(AT_FDCWD, path, O_RDONLY) : open(path, O_RDONLY);
  CHECK(fd >= 0);
  size_t n = read_full(fd, s->got, sizeof s->got - 1);
  s->got[n] = 0;
  CHECK(close(fd) == 0);
  return NULL;
}

static void *writer(void *p) {
  struct side *s = p;
  msleep(s->delay_ms);
  int fd = s->use_openat ? openat(AT_FDCWD, path, O_WRONLY | O_CLOEXEC) : open(path, O_WRONLY);
  CHECK(fd >= 0);
  write_all(fd, "hello through the fifo", 22);
  CHECK(close(fd) == 0);
  strcpy(s->got, "wrote");
  return NULL;
}

static void meet(const char *what, int reader_delay, int writer_delay, int use_openat) {
  int right = 0;
  for (int round = 0; round < 10; round++) {
    struct side r = {.delay_ms = reader_delay, .use_openat = use_openat};
    struct side w = {.delay_ms = writer_delay, .use_openat = use_openat};
    CHECK(pthread_create(&r.th, NULL, reader, &r) == 0);
    CHECK(pthread_create(&w.th, NULL, writer, &w) == 0);
    CHECK(pthread_join(r.th, NULL) == 0);
    CHECK(pthread_join(w.th, NULL) == 0);
    right += strcmp(r.got, "hello through the fifo") == 0 && strcmp(w.got, "wrote") == 0;
  }
  printf("%s: %d of 10 rounds passed the message\n", what, right);
}

/* ---- signal(7) ------------------------------------------------------------------------------------ */

/* Opens the FIFO for writing at 300 ms (and closes it again): a waiting reader's open completes. */
static void *late_writer(void *p) {
  (void)p;
  msleep(300);
  int fd = open(path, O_WRONLY | O_NONBLOCK);
  if (fd >= 0) close(fd);
  return NULL;
}

static const char *interrupted(bool restart) {
  struct sigaction sa = {.sa_handler = usr1_count, .sa_flags = restart ? SA_RESTART : 0};
  sigemptyset(&sa.sa_mask);
  CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
  struct kick k = {pthread_self()};
  pthread_t kt, wt;
  int before = usr1_handled;
  CHECK(pthread_create(&kt, NULL, kick_after_60ms, &k) == 0);
  CHECK(pthread_create(&wt, NULL, late_writer, NULL) == 0);
  int fd = open(path, O_RDONLY);
  int e = errno;
  CHECK(pthread_join(kt, NULL) == 0);
  CHECK(pthread_join(wt, NULL) == 0);
  static char out[80];
  snprintf(out, sizeof out, "%s, handler ran: %s", fd >= 0 ? "an fd" : res(fd, e), usr1_handled > before ? "yes" : "no");
  if (fd >= 0) close(fd);
  return out;
}

static void *interrupted_thread(void *p) {
  (void)p;
  printf("thread: open, handler without SA_RESTART: %s\n", interrupted(false));
  printf("thread: open, handler with SA_RESTART: %s\n", interrupted(true));
  return NULL;
}

/* ---- stdio ------------------------------------------------------------------------------------------ */

static void *fopen_writer(void *p) {
  (void)p;
  msleep(50);
  FILE *f = fopen(path, "w");
  CHECK(f != NULL);
  fputs("a line through fopen\n", f);
  CHECK(fclose(f) == 0);
  return NULL;
}

static void *fopen_reader(void *p) {
  char *line = p;
  FILE *f = fopen(path, "r");
  CHECK(f != NULL);
  if (!fgets(line, 64, f)) strcpy(line, "(nothing)\n");
  CHECK(fclose(f) == 0);
  return NULL;
}

int main(void) {
  snprintf(path, sizeof path, "/tmp/progs-fifo-%d", (int)getpid());
  CHECK(mkfifo(path, 0600) == 0);
  meet("reader first", 0, 30, 0);
  meet("writer first", 30, 0, 0);
  meet("openat, reader first", 0, 30, 1);
  meet("openat, writer first", 30, 0, 1);
  meet("together", 0, 0, 0);

  printf("O_WRONLY|O_NONBLOCK without a reader: %s\n", RES(open(path, O_WRONLY | O_NONBLOCK)));
  int r = open(path, O_RDONLY | O_NONBLOCK);
  printf("O_RDONLY|O_NONBLOCK: %s\n", r >= 0 ? "an fd" : RES(r));
  int w = open(path, O_WRONLY | O_NONBLOCK);
  printf("O_WRONLY|O_NONBLOCK with a reader: %s\n", w >= 0 ? "an fd" : RES(w));
  printf("reader's flags keep O_NONBLOCK: %s; writer's: %s\n", (fcntl(r, F_GETFL) & O_NONBLOCK) ? "yes" : "no",
         (fcntl(w, F_GETFL) & O_NONBLOCK) ? "yes" : "no");
  close(r);
  close(w);
  int rw = open(path, O_RDWR);
  printf("O_RDWR: %s, blocking: %s\n", rw >= 0 ? "an fd" : RES(rw), (fcntl(rw, F_GETFL) & O_NONBLOCK) ? "no" : "yes");
  close(rw);
  printf("open of a missing path: %s\n", RES(open("/tmp/progs-fifo-missing/x", O_RDONLY)));

  /* A blocking open's fd is blocking: the program's view of the flags */
  pthread_t t;
  struct side wside = {.delay_ms = 30};
  CHECK(pthread_create(&t, NULL, writer, &wside) == 0);
  int fd = open(path, O_RDONLY);
  printf("blocking open's fd: O_NONBLOCK %s\n", (fcntl(fd, F_GETFL) & O_NONBLOCK) ? "set" : "clear");
  char buf[32];
  size_t n = read_full(fd, buf, sizeof buf - 1);
  buf[n] = 0;
  printf("read: %s\n", buf);
  close(fd);
  CHECK(pthread_join(t, NULL) == 0);

  /* a thread's fopen for reading meets another thread's fopen for writing */
  pthread_t t2;
  static char line[64];
  CHECK(pthread_create(&t, NULL, fopen_writer, NULL) == 0);
  CHECK(pthread_create(&t2, NULL, fopen_reader, line) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  CHECK(pthread_join(t2, NULL) == 0);
  printf("fopen: %s", line);

  printf("main: open, handler without SA_RESTART: %s\n", interrupted(false));
  printf("main: open, handler with SA_RESTART: %s\n", interrupted(true));
  CHECK(pthread_create(&t, NULL, interrupted_thread, NULL) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  unlink(path);
  return 0;
}
