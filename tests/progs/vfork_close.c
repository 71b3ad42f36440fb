/* vfork_close — a vfork() child closes every fd above 2 and execs, while threads of the parent are
 * blocked in read() on pipes: the child's closes are its own (it has a copy of the fd table), so every
 * reader must still get its data, not EBADF. Also posix_spawn from 50 threads at once (issue 11, acceptance 6).
 * The vforking thread is a thread of its own, as in a job runner (with the preload it shares a worker
 * with readers). stdout: what the readers got and the children's exit statuses. */
#include <pthread.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "progs.h"

enum { READERS = 4, SPAWNERS = 50 };
extern char **environ;
static int pipes[READERS][2];
static _Atomic int blocked;

static void *reader(void *p) {
  long i = (long)p;
  char c = 0;
  blocked++;
  ssize_t r = read(pipes[i][0], &c, 1);
  return (void *)(long)(r == 1 && c == 'a' + i ? 1 : r < 0 ? -errno : 0);
}

static void *spawner(void *p) {
  (void)p;
  pid_t pid;
  char *argv[] = {"/bin/sh", "-c", "exit 7", NULL};
  if (posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, environ) != 0) return (void *)-1;
  int st;
  if (waitpid(pid, &st, 0) != pid) return (void *)-2;
  return (void *)(long)(WIFEXITED(st) ? WEXITSTATUS(st) : -3);
}

static void *vforker(void *p) {
  (void)p;
  for (volatile int round = 0; round < 3; round++) {
    pid_t pid = vfork();
    if (pid == 0) {
      for (int fd = 3; fd < 256; fd++) close(fd);
      execl("/bin/true", "true", (char *)NULL);
      _exit(127);
    }
    int st;
    CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
    printf("vfork child %d: exit %d\n", round, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
  }
  return NULL;
}

int main(void) {
  pthread_t t[READERS];
  for (long i = 0; i < READERS; i++) {
    CHECK(pipe(pipes[i]) == 0);
    CHECK(pthread_create(&t[i], NULL, reader, (void *)i) == 0);
  }
  while (blocked < READERS) usleep(1000);
  usleep(20000); /* they are in read() now */
  /* vfork from a thread, as a job runner's worker thread would: on the same scheduler as readers. */
  pthread_t v;
  CHECK(pthread_create(&v, NULL, vforker, NULL) == 0);
  CHECK(pthread_join(v, NULL) == 0);
  usleep(20000);
  for (int i = 0; i < READERS; i++) CHECK(write(pipes[i][1], (char[]){(char)('a' + i)}, 1) == 1);
  for (int i = 0; i < READERS; i++) {
    void *r;
    pthread_join(t[i], &r);
    printf("reader %d: %s\n", i, (long)r == 1 ? "got its byte" : (long)r < 0 ? strerror((int)-(long)r) : "wrong byte");
  }
  pthread_t s[SPAWNERS];
  for (int i = 0; i < SPAWNERS; i++) CHECK(pthread_create(&s[i], NULL, spawner, NULL) == 0);
  int sevens = 0;
  for (int i = 0; i < SPAWNERS; i++) {
    void *r;
    pthread_join(s[i], &r);
    sevens += (long)r == 7;
  }
  printf("posix_spawn from %d threads: %d children exited 7\n", SPAWNERS, sevens);
  return 0;
}
