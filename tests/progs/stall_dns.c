/* stall_dns — getaddrinfo() of a name that resolves slowly, while another thread must keep ticking.
 *
 * A tiny DNS server thread inside this program (UDP on 127.0.0.1, an ephemeral port) answers every
 * query after 300 ms with an A record (10.1.2.3). The lookup thread points its resolver at it
 * (res_init(), then _res.nsaddr_list[0], nscount = 1, one try with a 3 s timeout: _res is per thread)
 * and calls getaddrinfo(). Meanwhile a heartbeat thread ticks every 20 ms.
 *
 * glibc's resolver waits for the answer inside libc (its own poll and recvfrom, which no preload can
 * interpose), so a runtime that runs threads as coroutines on a few OS threads must not let the lookup
 * hold up the heartbeat, or the server thread that will answer it: natively the lookup takes 300 ms
 * and the heartbeat never misses more than a tick or two.
 *
 * stdout: the resolved address (or the error) and whether the heartbeat's largest gap during the
 * lookup stayed under 250 ms. Loopback only; the server stops on a "stop" datagram. */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <resolv.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include "progs_util.h"

#define NAME "slow.cohook.test"
enum { ANSWER_DELAY_MS = 300, TICK_MS = 20 };

static int srv;                   /* the server's UDP socket */
static struct sockaddr_in srv_addr;
static _Atomic int queries;       /* queries the server answered */
static _Atomic int ticks, stop_ticking;
static _Atomic double lookup_t0, lookup_t1; /* the lookup's start and end (0: not yet) */
static double max_gap;            /* the heartbeat's largest gap between ticks around the lookup */

/* The answer to one query: its header and question, plus an A record if it asked for one. */
static size_t dns_answer(const unsigned char *q, size_t n, unsigned char *out, size_t cap) {
  if (n < 12 || cap < n + 16) return 0;
  size_t i = 12;
  while (i < n && q[i] != 0) i += (size_t)q[i] + 1; /* QNAME: labels up to the root */
  if (i + 5 > n) return 0;
  size_t qend = i + 5; /* the root label, QTYPE, QCLASS */
  int is_a = q[i + 1] == 0 && q[i + 2] == 1;
  memcpy(out, q, qend);
  out[2] = 0x81, out[3] = 0x80;                       /* response, recursion desired and available */
  out[4] = 0, out[5] = 1;                             /* one question */
  out[6] = 0, out[7] = (unsigned char)is_a;           /* one answer if it asked for an A record */
  out[8] = out[9] = out[10] = out[11] = 0;            /* no authority, no additional records */
  size_t k = qend;
  if (is_a) {
    static const unsigned char rr[] = {0xc0, 12,  0, 1,  0, 1,  0, 0, 0, 60,  0, 4,  10, 1, 2, 3};
    memcpy(out + k, rr, sizeof rr); /* the name by pointer to the question, A, IN, TTL 60, 10.1.2.3 */
    k += sizeof rr;
  }
  return k;
}

static void *server(void *arg) {
  (void)arg;
  for (;;) {
    unsigned char q[512], a[600];
    struct sockaddr_in from;
    socklen_t fl = sizeof from;
    ssize_t n = recvfrom(srv, q, sizeof q, 0, (struct sockaddr *)&from, &fl);
    if (n < 0 && errno == EINTR) continue;
    CHECK(n >= 0);
    if (n == 4 && memcmp(q, "stop", 4) == 0) return NULL;
    msleep(ANSWER_DELAY_MS);
    size_t len = dns_answer(q, (size_t)n, a, sizeof a);
    if (!len) continue;
    fprintf(stderr, "server: answering query %d (type %d)\n", queries + 1, q[n - 3]);
    CHECK(sendto(srv, a, len, 0, (struct sockaddr *)&from, fl) == (ssize_t)len);
    queries++;
  }
}

static void *heartbeat(void *arg) {
  (void)arg;
  double last = now_s();
  while (!stop_ticking) {
    msleep(TICK_MS);
    double t = now_s();
    /* Count the gaps that overlap the lookup (one that started before it or ended after it too). */
    double s0 = lookup_t0, s1 = lookup_t1;
    if (s0 > 0 && t >= s0 && (s1 == 0 || last <= s1) && t - last > max_gap) max_gap = t - last;
    last = t;
    ticks++;
  }
  return NULL;
}

static void *lookup(void *arg) {
  char *out = arg;
  CHECK(res_init() == 0);
  _res.nsaddr_list[0] = srv_addr;
  _res.nscount = 1;
  _res.retrans = 3; /* seconds: natively the answer comes after 0.3 */
  _res.retry = 1;
  _res.options &= ~(unsigned long)(RES_DNSRCH | RES_DEFNAMES); /* the name as given, no search list */
  struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai;
  lookup_t0 = now_s();
  int r = getaddrinfo(NAME, "80", &hints, &ai);
  lookup_t1 = now_s();
  fprintf(stderr, "getaddrinfo: %d after %.3f s\n", r, lookup_t1 - lookup_t0);
  if (r != 0) {
    snprintf(out, 64, "error %s", gai_strerror(r));
    return NULL;
  }
  char txt[INET_ADDRSTRLEN];
  CHECK(inet_ntop(AF_INET, &((struct sockaddr_in *)ai->ai_addr)->sin_addr, txt, sizeof txt));
  snprintf(out, 64, "%s", txt);
  freeaddrinfo(ai);
  return NULL;
}

int main(void) {
  srv = socket(AF_INET, SOCK_DGRAM, 0);
  CHECK(srv >= 0);
  srv_addr = loopback(0);
  CHECK(bind(srv, (struct sockaddr *)&srv_addr, sizeof srv_addr) == 0);
  socklen_t l = sizeof srv_addr;
  CHECK(getsockname(srv, (struct sockaddr *)&srv_addr, &l) == 0);

  pthread_t ts, th, tl;
  CHECK(pthread_create(&ts, NULL, server, NULL) == 0);
  CHECK(pthread_create(&th, NULL, heartbeat, NULL) == 0);
  for (int k = 0; k < 5000 && ticks < 3; k++) msleep(1); /* the heartbeat is ticking */
  static char result[64];
  CHECK(pthread_create(&tl, NULL, lookup, result) == 0);
  CHECK(pthread_join(tl, NULL) == 0);
  msleep(2 * TICK_MS); /* a stalled heartbeat gets its gap measured across the lookup's end */
  stop_ticking = 1;
  CHECK(pthread_join(th, NULL) == 0);

  int c = socket(AF_INET, SOCK_DGRAM, 0);
  CHECK(c >= 0);
  CHECK(sendto(c, "stop", 4, 0, (struct sockaddr *)&srv_addr, sizeof srv_addr) == 4);
  CHECK(pthread_join(ts, NULL) == 0);
  CHECK(close(c) == 0 && close(srv) == 0);

  fprintf(stderr, "heartbeat: %d ticks, largest gap around the lookup %.3f s; server answered %d\n",
          (int)ticks, max_gap, (int)queries);
  printf("%s resolved to: %s\n", NAME, result);
  printf("heartbeat kept ticking during the lookup (largest gap < 250 ms): %s\n",
         max_gap < 0.25 ? "yes" : "no");
  return 0;
}
