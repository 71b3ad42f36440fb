/* fork_exec — fork() while the parent has sockets open (and a thread blocked in a read): the child
 * does a blocking read the parent satisfies after 100 ms, exits with a status the parent waitpid()s;
 * a child that execs /bin/echo; file status flags of the shared sockets unchanged in both processes
 * (no O_NONBLOCK leaks); system(); fork from a thread; a child that closes every fd it does not know
 * (as daemons do) and then blocks; accept() in parent and child on one listening socket. */
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>

#include "progs_util.h"

static const char *nb(int fd) {
  int fl = fcntl(fd, F_GETFL);
  return fl < 0 ? "error" : (fl & O_NONBLOCK) ? "O_NONBLOCK" : "blocking";
}

static int wait_status(pid_t pid) {
  int st = 0;
  CHECK(waitpid(pid, &st, 0) == pid);
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
  return -1;
}

/* A thread of the parent that sits in a blocking read the whole time. */
struct sitter {
  int fd;
  ssize_t r;
  pthread_t th;
};
static void *sitter_fn(void *p) {
  struct sitter *s = p;
  char c;
  s->r = read(s->fd, &c, 1);
  return NULL;
}

struct forker {
  int fd;
  int status;
  pthread_t th;
};
/* fork from a thread: the child reads a byte its parent thread writes after 100 ms, sleeps, exits */
static void *forker_fn(void *p) {
  struct forker *f = p;
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    char c = 0;
    ssize_t r = read(sv[1], &c, 1);
    msleep(20);
    _exit(r == 1 && c == 'T' ? 21 : 1);
  }
  msleep(100);
  CHECK(write(sv[0], "T", 1) == 1);
  f->status = wait_status(pid);
  CHECK(close(sv[0]) == 0 && close(sv[1]) == 0);
  return NULL;
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  int port, lsn = tcp_listener(&port);
  int tc = tcp_connect(port), ts = accept(lsn, NULL, NULL);
  CHECK(ts >= 0);
  /* a thread blocked in read for the whole program */
  int sp[2];
  CHECK(pipe(sp) == 0);
  struct sitter sit = {.fd = sp[0]};
  CHECK(pthread_create(&sit.th, NULL, sitter_fn, &sit) == 0);
  msleep(20);
  printf("parent before fork: socketpair %s, tcp %s, listener %s\n", nb(sv[0]), nb(tc), nb(lsn));

  /* the child reads from the socketpair; the parent writes after 100 ms */
  fflush(stdout);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    printf("child: socketpair %s, tcp %s\n", nb(sv[1]), nb(tc));
    char buf[16];
    ssize_t r = read(sv[1], buf, sizeof buf);
    printf("child read: %s '%.*s'\n", RES(r), r > 0 ? (int)r : 0, buf);
    /* the tcp connection is shared: the child writes, the parent reads */
    CHECK(write(tc, "from child", 10) == 10);
    printf("child after I/O: socketpair %s, tcp %s\n", nb(sv[1]), nb(tc));
    fflush(stdout);
    CHECK(write(sv[1], "pong", 4) == 4); /* the last thing: the parent prints once it has this */
    _exit(42);
  }
  msleep(100);
  CHECK(write(sv[0], "ping", 4) == 4);
  char buf[64];
  ssize_t r = read(sv[0], buf, sizeof buf);
  printf("parent read: %s '%.*s'\n", RES(r), r > 0 ? (int)r : 0, buf);
  r = read_full(ts, buf, 10);
  printf("parent read from tcp: %s '%.*s'\n", RES(r), r > 0 ? (int)r : 0, buf);
  printf("child exit status: %d\n", wait_status(pid));
  printf("parent after: socketpair %s, tcp %s, listener %s\n", nb(sv[0]), nb(tc), nb(lsn));

  /* the child blocks in accept() and connect() on the shared sockets; flags stay as they were */
  fflush(stdout);
  pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    int c = accept(lsn, NULL, NULL);
    int ok = c >= 0 && write(c, "A", 1) == 1;
    _exit(ok ? 5 : 1);
  }
  msleep(100);
  printf("listener while the child waits in accept: %s\n", nb(lsn));
  int c2 = tcp_connect(port);
  r = read(c2, buf, 1);
  printf("connection accepted by the child: %s '%c'\n", RES(r), r == 1 ? buf[0] : '?');
  printf("accepting child exit: %d\n", wait_status(pid));
  printf("listener after: %s\n", nb(lsn));
  CHECK(close(c2) == 0);

  /* parent and child both block in accept() on the one listener; two connections, one each */
  fflush(stdout);
  pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    int c = accept(lsn, NULL, NULL);
    int ok = c >= 0 && write(c, "C", 1) == 1;
    _exit(ok ? 6 : 1);
  }
  int cA = tcp_connect(port), cB = tcp_connect(port);
  int got_child = 0, got_parent = 0;
  /* the parent accepts whatever the child did not */
  int mine = accept(lsn, NULL, NULL);
  CHECK(mine >= 0);
  CHECK(write(mine, "P", 1) == 1);
  char x, y;
  CHECK(read(cA, &x, 1) == 1 && read(cB, &y, 1) == 1);
  got_child = (x == 'C') + (y == 'C');
  got_parent = (x == 'P') + (y == 'P');
  printf("two accepts, parent and child: child %d parent %d, child exit %d\n", got_child, got_parent,
         wait_status(pid));
  CHECK(close(mine) == 0 && close(cA) == 0 && close(cB) == 0);

  /* exec: the child becomes /bin/echo */
  fflush(stdout);
  pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    execl("/bin/echo", "echo", "hello from /bin/echo", (char *)NULL);
    _exit(127);
  }
  printf("echo exit status: %d\n", wait_status(pid));
  /* exec of a shell that checks the inherited socket's flags */
  fflush(stdout);
  pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "grep -q '^flags:.*[4-7]...$' /proc/self/fdinfo/%d && echo nonblocking || echo blocking", sv[0]);
    execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    _exit(127);
  }
  CHECK(wait_status(pid) == 0);

  /* system() */
  fflush(stdout);
  printf("system(\"true\"): %d\n", system("true"));
  int st = system("exit 3");
  printf("system(\"exit 3\"): exited %d status %d\n", WIFEXITED(st), WEXITSTATUS(st));
  printf("system(NULL): %d\n", system(NULL) != 0);

  /* fork from a thread */
  struct forker fk = {0};
  CHECK(pthread_create(&fk.th, NULL, forker_fn, &fk) == 0);
  CHECK(pthread_join(fk.th, NULL) == 0);
  printf("fork from a thread: child exit %d\n", fk.status);

  /* a child that closes every fd it does not know about, then blocks in read and sleeps */
  fflush(stdout);
  pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    for (int fd = 3; fd < 1024; fd++)
      if (fd != sv[1]) close(fd);
    char c = 0;
    ssize_t rr = read(sv[1], &c, 1);
    msleep(20);
    _exit(rr == 1 && c == 'D' ? 9 : 1);
  }
  msleep(100);
  CHECK(write(sv[0], "D", 1) == 1);
  printf("daemon-style child exit: %d\n", wait_status(pid));

  /* the parent's blocked thread is still fine */
  CHECK(write(sp[1], "s", 1) == 1);
  CHECK(pthread_join(sit.th, NULL) == 0);
  printf("parent's blocked thread read: %zd\n", sit.r);
  printf("parent at the end: socketpair %s, tcp %s, listener %s\n", nb(sv[0]), nb(tc), nb(lsn));
  return 0;
}
