/* fsync_calls — threads that write and fsync/fdatasync files while another thread keeps ticking
 * (a database's commit path): every call succeeds, the data is there, the ticker keeps its pace;
 * and the calls' errors: a bad fd (EBADF), a pipe (EINVAL). */
#include <fcntl.h>
#include <stdatomic.h>
#include <sys/mman.h>

#include "progs_util.h"

enum { WRITERS = 4, ROUNDS = 20 };
static char dir[] = "/tmp/fsync_calls.XXXXXX";
static _Atomic int ticking = 1;
static double max_gap;

static void *ticker(void *arg) {
  (void)arg;
  double last = now_s();
  while (atomic_load(&ticking)) {
    msleep(5);
    double t = now_s();
    if (t - last > max_gap) max_gap = t - last;
    last = t;
  }
  return NULL;
}

static void *writer(void *arg) {
  long id = (long)arg;
  char path[64], buf[64];
  snprintf(path, sizeof path, "%s/w%ld", dir, id);
  int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
  CHECK(fd >= 0);
  for (int i = 0; i < ROUNDS; i++) {
    int n = snprintf(buf, sizeof buf, "%ld:%d\n", id, i);
    CHECK(write(fd, buf, (size_t)n) == n);
    CHECK((i & 1 ? fdatasync(fd) : fsync(fd)) == 0);
  }
  CHECK(sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER) == 0);
  CHECK(syncfs(fd) == 0);
  CHECK(close(fd) == 0);
  return NULL;
}

int main(void) {
  CHECK(mkdtemp(dir) != NULL);
  pthread_t tk, w[WRITERS];
  CHECK(pthread_create(&tk, NULL, ticker, NULL) == 0);
  for (long i = 0; i < WRITERS; i++) CHECK(pthread_create(&w[i], NULL, writer, (void *)i) == 0);
  for (int i = 0; i < WRITERS; i++) pthread_join(w[i], NULL);
  atomic_store(&ticking, 0);
  pthread_join(tk, NULL);
  long lines = 0;
  for (int i = 0; i < WRITERS; i++) {
    char path[64], line[64];
    snprintf(path, sizeof path, "%s/w%d", dir, i);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    while (fgets(line, sizeof line, f)) lines++;
    fclose(f);
    unlink(path);
  }
  rmdir(dir);
  printf("lines written and synced: %ld of %d\n", lines, WRITERS * ROUNDS);
  printf("ticker kept going (largest gap under 1 s): %s\n", max_gap < 1.0 ? "yes" : "no");
  int p[2];
  CHECK(pipe(p) == 0);
  errno = 0;
  int r = fsync(-1);
  printf("fsync(-1): %d %s\n", r, errname(errno));
  errno = 0;
  r = fdatasync(p[0]);
  printf("fdatasync(pipe): %d %s\n", r, errname(errno));
  void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(m != MAP_FAILED);
  printf("msync(anonymous, MS_SYNC): %d\n", msync(m, 4096, MS_SYNC));
  return 0;
}
