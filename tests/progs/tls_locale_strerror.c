/* tls_locale_strerror — per-thread C library state kept across blocking calls.
 * Locale: 16 threads, half on a newlocale(LC_ALL_MASK, "C.UTF-8") object, half on a "C" one (each
 * installed with uselocale in that thread), all blocked in read() on their own pipe at the same time
 * (the main thread writes once all are waiting), then checking that uselocale(NULL) is still their
 * own object and that the locale-dependent calls answer for it: MB_CUR_MAX, nl_langinfo(CODESET),
 * towupper(U+00E9), mbrtowc of a two-byte UTF-8 sequence. The main thread stays on the global locale.
 * Buffers: strerror() and strsignal() of unknown numbers return text in a per-thread buffer in glibc;
 * each thread takes its own text, blocks, and checks the text is unchanged; strerror_r and strtok_r
 * with blocking calls between the tokens. Everything printed is a count of threads that saw the right
 * answer. */
#include <langinfo.h>
#include <locale.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>
#include <wchar.h>
#include <wctype.h>

#include "progs_util.h"

#define N 16

static int pipes[N][2];
static _Atomic int ready, loc_same, loc_mb, loc_codeset, loc_upper, loc_mbrtowc, loc_before, err_text, sig_text,
    err_r, tok_ok;
static locale_t utf8_loc, c_loc;

static void nap(int i, int k) { CHECK(usleep((useconds_t)(100 + (i * 37 + k * 113) % 900)) == 0); }

/* The answers for the locale a thread installed (checked against the same calls before blocking:
 * native and preloaded runs compare them too). */
static int locale_answers(int utf8, int *mb, int *cs, int *up, int *mbr) {
  *mb = utf8 ? MB_CUR_MAX == 6 : MB_CUR_MAX == 1;
  *cs = strcmp(nl_langinfo(CODESET), utf8 ? "UTF-8" : "ANSI_X3.4-1968") == 0;
  *up = utf8 ? towupper(0xe9) == 0xc9 : towupper(0xe9) == 0xe9;
  mbstate_t st;
  memset(&st, 0, sizeof st);
  wchar_t wc = 0;
  size_t n = mbrtowc(&wc, "\xc3\xa9", 2, &st);
  *mbr = utf8 ? n == 2 && wc == 0xe9 : n != 2; /* not one two-byte character in the C locale */
  return *mb && *cs && *up && *mbr;
}

static void *worker(void *arg) {
  int i = (int)(intptr_t)arg, utf8 = i % 2 == 0;
  locale_t mine = utf8 ? utf8_loc : c_loc;
  CHECK(uselocale(mine) != (locale_t)0);
  int mb, cs, up, mbr;
  if (locale_answers(utf8, &mb, &cs, &up, &mbr)) atomic_fetch_add(&loc_before, 1);
  else fprintf(stderr, "thread %d (%s) before blocking: MB_CUR_MAX %d codeset %s\n", i, utf8 ? "C.UTF-8" : "C",
               (int)MB_CUR_MAX, nl_langinfo(CODESET));

  /* strerror/strsignal of unknown numbers: text in this thread's buffer. */
  const char *es = strerror(20000 + i);
  const char *ss = strsignal(1000 + i);
  char es_want[64], ss_copy[64];
  snprintf(es_want, sizeof es_want, "Unknown error %d", 20000 + i);
  snprintf(ss_copy, sizeof ss_copy, "%s", ss);

  atomic_fetch_add(&ready, 1);
  char c;
  CHECK(read(pipes[i][0], &c, 1) == 1 && c == (char)i);

  if (uselocale((locale_t)0) == mine) atomic_fetch_add(&loc_same, 1);
  else fprintf(stderr, "thread %d: uselocale(NULL) is not its own locale after blocking\n", i);
  locale_answers(utf8, &mb, &cs, &up, &mbr);
  atomic_fetch_add(&loc_mb, mb);
  atomic_fetch_add(&loc_codeset, cs);
  atomic_fetch_add(&loc_upper, up);
  atomic_fetch_add(&loc_mbrtowc, mbr);

  if (strcmp(es, es_want) == 0) atomic_fetch_add(&err_text, 1);
  else fprintf(stderr, "thread %d: strerror text now \"%s\", was \"%s\"\n", i, es, es_want);
  if (strcmp(ss, ss_copy) == 0) atomic_fetch_add(&sig_text, 1);
  else fprintf(stderr, "thread %d: strsignal text now \"%s\", was \"%s\"\n", i, ss, ss_copy);

  /* strerror_r (GNU: may return a static string or fill buf) with a sleep between. */
  char buf[64];
  const char *a = strerror_r(EPIPE, buf, sizeof buf);
  char a_copy[64];
  snprintf(a_copy, sizeof a_copy, "%s", a);
  nap(i, 1);
  const char *b = strerror_r(30000 + i, buf, sizeof buf);
  char b_want[64];
  snprintf(b_want, sizeof b_want, "Unknown error %d", 30000 + i);
  nap(i, 2);
  if (strcmp(a_copy, "Broken pipe") == 0 && strcmp(b, b_want) == 0) atomic_fetch_add(&err_r, 1);

  /* strtok_r across sleeps. */
  char text[64];
  snprintf(text, sizeof text, "t%d,a%d;b%d,,c%d", i, i, i, i);
  char *save = NULL, *tok;
  char got[128] = "";
  for (tok = strtok_r(text, ",;", &save); tok; tok = strtok_r(NULL, ",;", &save)) {
    strcat(got, tok);
    strcat(got, "|");
    nap(i, 3);
  }
  char tok_want[128];
  snprintf(tok_want, sizeof tok_want, "t%d|a%d|b%d|c%d|", i, i, i, i);
  if (strcmp(got, tok_want) == 0) atomic_fetch_add(&tok_ok, 1);
  CHECK(uselocale(LC_GLOBAL_LOCALE) != (locale_t)0);
  return NULL;
}

int main(void) {
  utf8_loc = newlocale(LC_ALL_MASK, "C.UTF-8", (locale_t)0);
  CHECK(utf8_loc != (locale_t)0);
  c_loc = newlocale(LC_ALL_MASK, "C", (locale_t)0);
  CHECK(c_loc != (locale_t)0);
  const char *main_es = strerror(40000);
  pthread_t t[N];
  for (int i = 0; i < N; i++) CHECK(pipe(pipes[i]) == 0);
  for (int i = 0; i < N; i++) CHECK(pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i) == 0);
  release_blocked_readers(&ready, pipes, N);
  for (int i = 0; i < N; i++) CHECK(pthread_join(t[i], NULL) == 0);

  printf("locale answers before blocking %d/%d\n", atomic_load(&loc_before), N);
  printf("uselocale(NULL) still own after blocking %d/%d\n", atomic_load(&loc_same), N);
  printf("MB_CUR_MAX %d/%d, nl_langinfo(CODESET) %d/%d, towupper %d/%d, mbrtowc %d/%d\n", atomic_load(&loc_mb), N,
         atomic_load(&loc_codeset), N, atomic_load(&loc_upper), N, atomic_load(&loc_mbrtowc), N);
  printf("strerror(unknown) text intact %d/%d\n", atomic_load(&err_text), N);
  printf("strsignal(unknown) text intact %d/%d\n", atomic_load(&sig_text), N);
  printf("strerror_r %d/%d\n", atomic_load(&err_r), N);
  printf("strtok_r across sleeps %d/%d\n", atomic_load(&tok_ok), N);
  int main_loc = uselocale((locale_t)0) == LC_GLOBAL_LOCALE && MB_CUR_MAX == 1;
  printf("main: global locale %s, strerror text %s\n", main_loc ? "kept" : "CHANGED",
         strcmp(main_es, "Unknown error 40000") == 0 ? "intact" : "CHANGED");
  int ok = atomic_load(&loc_before) == N && atomic_load(&loc_same) == N && atomic_load(&loc_mb) == N &&
           atomic_load(&loc_codeset) == N && atomic_load(&loc_upper) == N && atomic_load(&loc_mbrtowc) == N &&
           atomic_load(&err_text) == N && atomic_load(&sig_text) == N && atomic_load(&err_r) == N &&
           atomic_load(&tok_ok) == N && main_loc && strcmp(main_es, "Unknown error 40000") == 0;
  freelocale(utf8_loc);
  freelocale(c_loc);
  return ok ? 0 : 1;
}
