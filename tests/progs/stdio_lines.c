/* stdio_lines — a line protocol between two threads over fdopen()ed sockets: a client sends 100
 * requests with fputs+fflush and reads each answer with fgets; the server reads requests with
 * getline and answers. stdio's reads happen inside libc. Then the other read entry points on a
 * socket whose data comes later: fgetc/getc, getc_unlocked, fread of a record sent in two parts,
 * getdelim with its own delimiter, a line longer than stdio's buffer, fgets after an ungetc, EOF,
 * and fgets on a pipe. The answering side always waits a little first, so the reader is blocked.
 * stdout: counts and what was read. */
#include <fcntl.h>
#include <stdbool.h>

#include "progs_util.h"

enum { LINES = 100 };

static void *server(void *p) {
  int fd = (int)(long)p;
  FILE *in = fdopen(fd, "r"), *out = fdopen(dup(fd), "w");
  CHECK(in && out);
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  int served = 0;
  while ((n = getline(&line, &cap, in)) > 0) {
    if (served % 10 == 0) msleep(1); /* the client is blocked in fgets by now */
    line[n - 1] = 0;
    fprintf(out, "answer to %s\n", line);
    CHECK(fflush(out) == 0);
    served++;
  }
  free(line);
  fclose(out);
  fclose(in);
  return (void *)(long)served;
}

static void line_protocol(void) {
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, server, (void *)(long)sv[1]) == 0);
  FILE *in = fdopen(sv[0], "r"), *out = fdopen(dup(sv[0]), "w");
  CHECK(in && out);
  int right = 0;
  char want[64], got[64];
  for (int i = 0; i < LINES; i++) {
    fprintf(out, "request %d\n", i);
    CHECK(fflush(out) == 0);
    snprintf(want, sizeof want, "answer to request %d\n", i);
    if (fgets(got, sizeof got, in) && strcmp(got, want) == 0) right++;
  }
  fclose(out);
  shutdown(sv[0], SHUT_WR);
  void *served;
  CHECK(pthread_join(t, &served) == 0);
  printf("line protocol: %d requests served, %d right answers; then EOF: %s\n", (int)(long)served, right,
         fgets(got, sizeof got, in) == NULL && feof(in) ? "yes" : "no");
  fclose(in);
}

/* ---- the other entry points: a thread writes the pieces with pauses ------------------------------ */

struct piece {
  const char *data;
  size_t len;
  int pause_ms;
};
struct script {
  int fd;
  const struct piece *pieces;
  pthread_t th;
};
static void *play(void *p) {
  struct script *s = p;
  for (const struct piece *pc = s->pieces; pc->data; pc++) {
    msleep(pc->pause_ms);
    write_all(s->fd, pc->data, pc->len);
  }
  CHECK(close(s->fd) == 0);
  return NULL;
}

static FILE *scripted(const struct piece *pieces, struct script *s, bool use_pipe) {
  int sv[2];
  if (use_pipe) CHECK(pipe(sv) == 0);
  else CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  *s = (struct script){.fd = sv[1], .pieces = pieces};
  CHECK(pthread_create(&s->th, NULL, play, s) == 0);
  FILE *f = fdopen(sv[0], "r");
  CHECK(f != NULL);
  return f;
}

static void entry_points(void) {
  struct script s;
  static const struct piece chars[] = {{"ab", 2, 20}, {"c", 1, 20}, {"d", 1, 20}, {NULL, 0, 0}};
  FILE *f = scripted(chars, &s, false);
  int a = fgetc(f), b = getc(f), c = getc_unlocked(f), d = fgetc(f), e = fgetc(f);
  printf("fgetc/getc/getc_unlocked: %c %c %c %c, then %s\n", a, b, c, d, e == EOF && feof(f) ? "EOF" : "more");
  CHECK(pthread_join(s.th, NULL) == 0);
  fclose(f);

  /* fread of a 12-byte record that comes in two parts: fread waits for all of it */
  static const struct piece rec[] = {{"HEAD", 4, 20}, {"ER+BODY!", 8, 30}, {"tail", 4, 20}, {NULL, 0, 0}};
  f = scripted(rec, &s, false);
  char buf[16] = {0};
  size_t n = fread(buf, 4, 3, f);
  printf("fread 3 items of 4: %zu items: %.12s\n", n, buf);
  memset(buf, 0, sizeof buf);
  n = fread(buf, 1, sizeof buf, f); /* only 4 more come, then EOF */
  printf("fread to EOF: %zu bytes: %.4s, EOF %s\n", n, buf, feof(f) ? "yes" : "no");
  CHECK(pthread_join(s.th, NULL) == 0);
  fclose(f);

  /* getdelim with ';', a record split across writes */
  static const struct piece semi[] = {{"one;tw", 6, 20}, {"o;thr", 5, 20}, {"ee", 2, 20}, {NULL, 0, 0}};
  f = scripted(semi, &s, false);
  char *line = NULL;
  size_t cap = 0;
  printf("getdelim:");
  ssize_t k;
  while ((k = getdelim(&line, &cap, ';', f)) > 0) printf(" [%s]%zd", line, k);
  printf(" then %zd, EOF %s\n", k, feof(f) ? "yes" : "no");
  free(line);
  CHECK(pthread_join(s.th, NULL) == 0);
  fclose(f);

  /* a line longer than the stream's buffer, in three writes; fgets in pieces of 1000 */
  static char big[10001];
  memset(big, 'x', 9999);
  big[9999] = '\n';
  static const struct piece bigp[] = {{big, 3000, 20}, {big + 3000, 3000, 20}, {big + 6000, 4000, 20}, {NULL, 0, 0}};
  f = scripted(bigp, &s, false);
  char chunk[1000];
  size_t total = 0;
  int calls = 0;
  while (fgets(chunk, sizeof chunk, f)) {
    total += strlen(chunk);
    calls++;
  }
  printf("long line: %zu bytes in %d fgets calls\n", total, calls);
  CHECK(pthread_join(s.th, NULL) == 0);
  fclose(f);

  /* ungetc, then fgets: the pushed-back char comes first, the rest waits for the writer */
  static const struct piece ung[] = {{"Xrest of it\n", 12, 20}, {NULL, 0, 0}};
  f = scripted(ung, &s, false);
  int x = fgetc(f);
  ungetc('Y', f);
  char l2[64];
  printf("ungetc: %c, then fgets: %s", x, fgets(l2, sizeof l2, f) ? l2 : "(null)\n");
  CHECK(pthread_join(s.th, NULL) == 0);
  fclose(f);

  /* a pipe instead of a socket, line by line */
  static const struct piece lines[] = {{"first\nsec", 9, 20}, {"ond\n", 4, 20}, {"third\n", 6, 20}, {NULL, 0, 0}};
  f = scripted(lines, &s, true);
  printf("pipe:");
  while (fgets(l2, sizeof l2, f)) {
    l2[strcspn(l2, "\n")] = 0;
    printf(" [%s]", l2);
  }
  printf("\n");
  CHECK(pthread_join(s.th, NULL) == 0);
  fclose(f);
}

/* The client of line_protocol on a thread of its own too (its peer, the server, on another). */
static void *client_thread(void *p) {
  (void)p;
  line_protocol();
  entry_points();
  return NULL;
}

int main(void) {
  pthread_t t;
  CHECK(pthread_create(&t, NULL, client_thread, NULL) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  return 0;
}
