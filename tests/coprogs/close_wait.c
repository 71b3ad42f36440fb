/* close_wait — design.md §3.5 with coroutines on one thread: close(fd) while another coroutine is
 * blocked on fd wakes it with EBADF (read, and poll reporting POLLNVAL); dup2() onto a watched fd
 * counts as a close of the target; the fd number, reused at once, works for a fresh blocking read. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cohook.h"

static int fails;
#define EXPECT(c)                                                                                    \
  do {                                                                                               \
    if (!(c)) { fprintf(stderr, "line %d: %s (errno %s)\n", __LINE__, #c, strerror(errno)); fails++; } \
  } while (0)

static void *blocked_read(void *p) {
  char c;
  ssize_t r = read(*(int *)p, &c, 1);
  return (void *)(intptr_t)(r < 0 ? -errno : r);
}

static void *blocked_poll(void *p) {
  struct pollfd pfd = {.fd = *(int *)p, .events = POLLIN};
  int r = poll(&pfd, 1, 5000);
  return (void *)(intptr_t)(r == 1 ? pfd.revents : -1000 - r);
}

static void *write_later(void *p) {
  usleep(50000);
  return (void *)(intptr_t)write(*(int *)p, "z", 1);
}

int main(void) {
  int sv[2];
  EXPECT(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  cohook_coro_t *co;
  void *r;

  EXPECT(cohook_spawn(&co, blocked_read, &sv[0]) == 0);
  usleep(20000); /* the reader is parked on sv[0] now */
  EXPECT(close(sv[0]) == 0);
  EXPECT(cohook_join(co, &r) == 0);
  EXPECT((intptr_t)r == -EBADF);
  printf("read woken by close: %s\n", (intptr_t)r == -EBADF ? "EBADF" : "WRONG");

  /* Reuse the number at once: a new socketpair gets sv[0]'s number back. */
  int old = sv[0], nv[2];
  EXPECT(socketpair(AF_UNIX, SOCK_STREAM, 0, nv) == 0);
  EXPECT(nv[0] == old);
  EXPECT(cohook_spawn(&co, write_later, &nv[1]) == 0);
  char c = 0;
  EXPECT(read(nv[0], &c, 1) == 1 && c == 'z');
  EXPECT(cohook_join(co, NULL) == 0);
  printf("reused fd number reads: %s\n", c == 'z' ? "ok" : "WRONG");

  EXPECT(cohook_spawn(&co, blocked_poll, &nv[0]) == 0);
  usleep(20000);
  EXPECT(close(nv[0]) == 0);
  EXPECT(cohook_join(co, &r) == 0);
  printf("poll woken by close: %s\n", (intptr_t)r == POLLNVAL ? "POLLNVAL" : "WRONG");

  int p[2];
  EXPECT(pipe(p) == 0);
  EXPECT(cohook_spawn(&co, blocked_read, &p[0]) == 0);
  usleep(20000);
  EXPECT(dup2(nv[1], p[0]) == p[0]); /* replaces the read end under the waiter */
  EXPECT(cohook_join(co, &r) == 0);
  printf("read woken by dup2 over it: %s\n", (intptr_t)r == -EBADF ? "EBADF" : "WRONG");
  return fails ? 1 : 0;
}
