/* poll_cases — poll() and ppoll() corner cases: negative fds are ignored, nfds 0 sleeps, timeout 0
 * only looks, a closed fd gives POLLNVAL, hang-ups and errors are reported without being asked for,
 * POLLOUT, POLLPRI for out-of-band data, POLLRDHUP, 200 pipes of which a thread makes one ready,
 * ppoll with and without a timeout and with a signal mask. */
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/select.h>

#include "progs_util.h"

static void show(const char *what, int n, int e, struct pollfd *p, int cnt) {
  printf("%s: %s", what, res(n, e));
  for (int i = 0; i < cnt; i++) printf(" [%d]=%#x", i, (unsigned)p[i].revents);
  printf("\n");
}

static void *oob_fn(void *arg) {
  int fd = *(int *)arg;
  msleep(100);
  CHECK(send(fd, "!", 1, MSG_OOB) == 1);
  return NULL;
}

struct closer {
  int fd;
  pthread_t th;
};
static void *close_fn(void *arg) {
  struct closer *c = arg;
  msleep(100);
  CHECK(close(c->fd) == 0);
  return NULL;
}

#define NPIPES 200

int main(void) {
  int p[2], n, e;
  double t0;
  char c;
  struct delayed_write d;
  struct pollfd pf[4];
  CHECK(pipe(p) == 0);

  /* a negative fd is ignored: revents 0, and the timeout runs out */
  pf[0] = (struct pollfd){.fd = -1, .events = POLLIN};
  pf[1] = (struct pollfd){.fd = p[0], .events = POLLIN};
  pf[0].revents = pf[1].revents = 0x55;
  t0 = now_s();
  n = poll(pf, 2, 150);
  e = errno;
  show("negative fd and empty pipe", n, e, pf, 2);
  in_range("poll timeout 150", now_s() - t0, 0.15, 100);
  pf[0] = (struct pollfd){.fd = -5, .events = POLLIN};
  t0 = now_s();
  n = poll(pf, 1, 100);
  e = errno;
  show("only a negative fd", n, e, pf, 1);
  in_range("poll with only a negative fd slept", now_s() - t0, 0.1, 100);

  /* nfds 0 is a sleep */
  t0 = now_s();
  printf("poll nfds 0: %s\n", RES(poll(NULL, 0, 100)));
  in_range("poll nfds 0 slept", now_s() - t0, 0.1, 100);

  /* timeout 0 only looks */
  pf[0] = (struct pollfd){.fd = p[0], .events = POLLIN};
  t0 = now_s();
  n = poll(pf, 1, 0);
  e = errno;
  show("timeout 0 on empty pipe", n, e, pf, 1);
  CHECK(write(p[1], "x", 1) == 1);
  n = poll(pf, 1, 0);
  e = errno;
  show("timeout 0 on pipe with data", n, e, pf, 1);
  CHECK(now_s() - t0 < 0.5);
  /* the same fd twice, asking for different things */
  pf[0] = (struct pollfd){.fd = p[0], .events = POLLIN};
  pf[1] = (struct pollfd){.fd = p[0], .events = POLLOUT};
  pf[2] = (struct pollfd){.fd = p[1], .events = POLLOUT | POLLIN};
  n = poll(pf, 3, 1000);
  e = errno;
  show("same fd twice, and the write end", n, e, pf, 3);
  CHECK(read(p[0], &c, 1) == 1);

  /* an fd that is not open: POLLNVAL at once, even with an infinite timeout */
  int q[2];
  CHECK(pipe(q) == 0);
  CHECK(close(q[0]) == 0 && close(q[1]) == 0);
  pf[0] = (struct pollfd){.fd = q[0], .events = POLLIN};
  pf[1] = (struct pollfd){.fd = p[0], .events = POLLIN};
  t0 = now_s();
  n = poll(pf, 2, -1);
  e = errno;
  show("closed fd", n, e, pf, 2);
  CHECK(now_s() - t0 < 0.5);
  pf[0].events = 0;
  n = poll(pf, 1, 1000);
  e = errno;
  show("closed fd, events 0", n, e, pf, 1);

  /* readiness made by a thread after 100 ms, timeout -1 */
  pf[0] = (struct pollfd){.fd = p[0], .events = POLLIN};
  t0 = now_s();
  delayed_write_start(&d, p[1], 100, "y", 1);
  n = poll(pf, 1, -1);
  e = errno;
  show("readable after 100 ms", n, e, pf, 1);
  in_range("poll -1 woke for the writer", now_s() - t0, 0.1, 150);
  delayed_write_join(&d);
  CHECK(read(p[0], &c, 1) == 1);

  /* events 0 on a readable pipe: nothing to report, the timeout runs out, without burning CPU */
  CHECK(write(p[1], "z", 1) == 1);
  pf[0] = (struct pollfd){.fd = p[0], .events = 0};
  t0 = now_s();
  double c0 = cpu_s();
  n = poll(pf, 1, 300);
  e = errno;
  double cpu = cpu_s() - c0;
  show("events 0 on readable pipe", n, e, pf, 1);
  in_range("poll events 0 timed out", now_s() - t0, 0.3, 100);
  printf("poll events 0 used little CPU: %s\n", cpu < 0.03 ? "yes" : "NO");
  fprintf(stderr, "cpu %.3f s\n", cpu);
  /* POLLPRI on a pipe with data: never set */
  pf[0].events = POLLPRI;
  c0 = cpu_s();
  n = poll(pf, 1, 300);
  e = errno;
  cpu = cpu_s() - c0;
  show("POLLPRI on readable pipe", n, e, pf, 1);
  printf("poll POLLPRI on pipe used little CPU: %s\n", cpu < 0.03 ? "yes" : "NO");
  fprintf(stderr, "cpu %.3f s\n", cpu);
  CHECK(read(p[0], &c, 1) == 1);

  /* POLLHUP: the writer closes while we wait, and after */
  struct closer cl = {.fd = p[1]};
  t0 = now_s();
  CHECK(pthread_create(&cl.th, NULL, close_fn, &cl) == 0);
  pf[0] = (struct pollfd){.fd = p[0], .events = POLLIN};
  n = poll(pf, 1, 2000);
  e = errno;
  show("writer closed while waiting", n, e, pf, 1);
  in_range("poll woke for the hang-up", now_s() - t0, 0.1, 150);
  CHECK(pthread_join(cl.th, NULL) == 0);
  pf[0].events = 0;
  n = poll(pf, 1, 1000);
  e = errno;
  show("hung-up pipe, events 0", n, e, pf, 1);
  CHECK(close(p[0]) == 0);
  /* POLLERR: the reader is gone */
  CHECK(pipe(p) == 0);
  CHECK(close(p[0]) == 0);
  pf[0] = (struct pollfd){.fd = p[1], .events = POLLOUT};
  n = poll(pf, 1, 1000);
  e = errno;
  show("write end without reader", n, e, pf, 1);
  pf[0].events = 0;
  n = poll(pf, 1, 1000);
  e = errno;
  show("write end without reader, events 0", n, e, pf, 1);
  CHECK(close(p[1]) == 0);

  /* POLLOUT: full pipe, drained by a thread */
  CHECK(pipe(p) == 0);
  static char chunk[4096];
  pf[0] = (struct pollfd){.fd = p[1], .events = POLLOUT};
  long total = 0;
  while (poll(pf, 1, 0) == 1 && total < (1 << 24)) {
    CHECK(write(p[1], chunk, sizeof chunk) == sizeof chunk);
    total += sizeof chunk;
  }
  printf("pipe filled to %ld bytes\n", total);
  t0 = now_s();
  n = poll(pf, 1, 150);
  e = errno;
  show("full pipe POLLOUT", n, e, pf, 1);
  in_range("full pipe poll timed out", now_s() - t0, 0.15, 100);
  struct drain dr = {.fd = p[0], .n = total};
  t0 = now_s();
  CHECK(pthread_create(&dr.th, NULL, drain_fn, &dr) == 0);
  n = poll(pf, 1, 2000);
  e = errno;
  show("POLLOUT after a thread drained the pipe", n, e, pf, 1);
  in_range("poll woke for the drain", now_s() - t0, 0.1, 150);
  CHECK(pthread_join(dr.th, NULL) == 0);
  CHECK(close(p[0]) == 0 && close(p[1]) == 0);

  /* TCP: POLLPRI for out-of-band data, POLLRDHUP for the peer's shutdown */
  int a, b;
  tcp_pair(&a, &b);
  pthread_t oth;
  t0 = now_s();
  CHECK(pthread_create(&oth, NULL, oob_fn, &b) == 0);
  pf[0] = (struct pollfd){.fd = a, .events = POLLPRI};
  n = poll(pf, 1, 2000);
  e = errno;
  show("POLLPRI with OOB data", n, e, pf, 1);
  in_range("poll woke for OOB data", now_s() - t0, 0.1, 150);
  CHECK(pthread_join(oth, NULL) == 0);
  CHECK(recv(a, &c, 1, MSG_OOB) == 1);
  /* What database servers wait with for the next statement: POLLIN | POLLPRI. Urgent data alone
   * (the kernel reports no POLLIN for it) must end the wait too; so must ordinary data. */
  t0 = now_s();
  CHECK(pthread_create(&oth, NULL, oob_fn, &b) == 0);
  pf[0] = (struct pollfd){.fd = a, .events = POLLIN | POLLPRI};
  n = poll(pf, 1, 2000);
  e = errno;
  show("POLLIN|POLLPRI with OOB data alone", n, e, pf, 1);
  in_range("poll woke for OOB data alone", now_s() - t0, 0.1, 150);
  CHECK(pthread_join(oth, NULL) == 0);
  CHECK(recv(a, &c, 1, MSG_OOB) == 1);
  t0 = now_s();
  delayed_write_start(&d, b, 100, "x", 1);
  pf[0] = (struct pollfd){.fd = a, .events = POLLIN | POLLPRI};
  n = poll(pf, 1, 2000);
  e = errno;
  show("POLLIN|POLLPRI with data", n, e, pf, 1);
  in_range("poll woke for data", now_s() - t0, 0.1, 150);
  delayed_write_join(&d);
  CHECK(read(a, &c, 1) == 1);
  /* select's exception set is urgent data */
  t0 = now_s();
  CHECK(pthread_create(&oth, NULL, oob_fn, &b) == 0);
  fd_set exs, rds;
  FD_ZERO(&exs);
  FD_ZERO(&rds);
  FD_SET(a, &exs);
  FD_SET(a, &rds);
  struct timeval tv = {2, 0};
  n = select(a + 1, &rds, NULL, &exs, &tv);
  e = errno;
  printf("select exceptfds with OOB data: %s, in exceptfds %d, in readfds %d\n", res(n, e), FD_ISSET(a, &exs) ? 1 : 0,
         FD_ISSET(a, &rds) ? 1 : 0);
  in_range("select woke for OOB data", now_s() - t0, 0.1, 150);
  CHECK(pthread_join(oth, NULL) == 0);
  CHECK(recv(a, &c, 1, MSG_OOB) == 1);
  pf[0] = (struct pollfd){.fd = a, .events = POLLRDHUP};
  delayed_write_start(&d, b, 100, NULL, 0); /* just a delay */
  delayed_write_join(&d);
  CHECK(shutdown(b, SHUT_WR) == 0);
  n = poll(pf, 1, 1000);
  e = errno;
  show("POLLRDHUP after peer shutdown", n, e, pf, 1);
  CHECK(close(a) == 0 && close(b) == 0);

  /* a listening socket is readable when a connection is pending */
  int port, l = tcp_listener(&port);
  pf[0] = (struct pollfd){.fd = l, .events = POLLIN};
  n = poll(pf, 1, 50);
  e = errno;
  show("listener, nobody connecting", n, e, pf, 1);
  a = tcp_connect(port);
  n = poll(pf, 1, 1000);
  e = errno;
  show("listener, connection pending", n, e, pf, 1);
  CHECK(close(a) == 0 && close(l) == 0);

  /* 200 pipes; a thread writes into number 137 after 50 ms */
  static int rfd[NPIPES], wfd[NPIPES];
  static struct pollfd many[NPIPES];
  for (int i = 0; i < NPIPES; i++) {
    int pp[2];
    CHECK(pipe(pp) == 0);
    rfd[i] = pp[0];
    wfd[i] = pp[1];
    many[i] = (struct pollfd){.fd = rfd[i], .events = POLLIN};
  }
  t0 = now_s();
  delayed_write_start(&d, wfd[137], 50, "!", 1);
  n = poll(many, NPIPES, 2000);
  e = errno;
  int which = -1, count = 0;
  for (int i = 0; i < NPIPES; i++)
    if (many[i].revents) which = i, count++;
  printf("200 pipes: %s, %d with revents, index %d revents %#x\n", res(n, e), count, which,
         which >= 0 ? (unsigned)many[which].revents : 0u);
  in_range("200 pipes poll woke", now_s() - t0, 0.05, 150);
  delayed_write_join(&d);
  for (int i = 0; i < NPIPES; i++) CHECK(close(rfd[i]) == 0 && close(wfd[i]) == 0);

  /* ppoll: with a timeout, without, with a signal mask, and a bad timeout */
  CHECK(pipe(p) == 0);
  pf[0] = (struct pollfd){.fd = p[0], .events = POLLIN};
  struct timespec ts = {0, 120000000};
  t0 = now_s();
  n = ppoll(pf, 1, &ts, NULL);
  e = errno;
  show("ppoll timeout", n, e, pf, 1);
  in_range("ppoll timed out", now_s() - t0, 0.12, 100);
  printf("ppoll left its timeout alone: %ld.%09ld\n", (long)ts.tv_sec, ts.tv_nsec);
  t0 = now_s();
  delayed_write_start(&d, p[1], 100, "p", 1);
  n = ppoll(pf, 1, NULL, NULL);
  e = errno;
  show("ppoll no timeout", n, e, pf, 1);
  in_range("ppoll woke", now_s() - t0, 0.1, 150);
  delayed_write_join(&d);
  CHECK(read(p[0], &c, 1) == 1);
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGUSR2);
  t0 = now_s();
  n = ppoll(pf, 1, &ts, &mask);
  e = errno;
  show("ppoll with mask, timeout", n, e, pf, 1);
  in_range("ppoll with mask timed out", now_s() - t0, 0.12, 100);
  t0 = now_s();
  delayed_write_start(&d, p[1], 100, "m", 1);
  n = ppoll(pf, 1, NULL, &mask);
  e = errno;
  show("ppoll with mask, no timeout", n, e, pf, 1);
  in_range("ppoll with mask woke", now_s() - t0, 0.1, 150);
  delayed_write_join(&d);
  CHECK(read(p[0], &c, 1) == 1);
  ts = (struct timespec){0, 1000000000};
  printf("ppoll bad nsec: %s\n", RES(ppoll(pf, 1, &ts, NULL)));
  ts = (struct timespec){0, 0};
  t0 = now_s();
  n = ppoll(pf, 1, &ts, NULL);
  e = errno;
  show("ppoll zero timeout", n, e, pf, 1);
  CHECK(now_s() - t0 < 0.5);
  CHECK(close(p[0]) == 0 && close(p[1]) == 0);

  /* more fds than RLIMIT_NOFILE: EINVAL */
  struct rlimit rl, low;
  CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
  low = rl;
  low.rlim_cur = 64;
  CHECK(setrlimit(RLIMIT_NOFILE, &low) == 0);
  static struct pollfd over[65];
  for (int i = 0; i < 65; i++) over[i] = (struct pollfd){.fd = -1};
  printf("poll nfds > RLIMIT_NOFILE: %s\n", RES(poll(over, 65, 100)));
  CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
  return 0;
}
