/*
 * config.c — COHOOK_* environment knobs, read once at load and validated.
 *
 * A bad value stops the program before main() with one line naming the variable, the value, what is
 * wrong and what would be right, and exit status 1: running half-configured would be worse than not
 * running at all.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/auxv.h>

#include "internal.h"
#include "sys.h"

#define CH_DEFAULT_STACK (256u * 1024u)
#define CH_MIN_STACK (16u * 1024u) /* glibc's PTHREAD_STACK_MIN */
#define CH_MAX_STACK (1024u * 1024u * 1024u)

struct ch_config ch_config = {.stack_size = CH_DEFAULT_STACK,
                              .stack_size_text = "unset: 256K, threads the pthread default",
                              .handoff_ns = 5000u * 1000u,
                              .max_threads = 10000};
bool ch_stats_on;

/* Every knob there is: an unknown COHOOK_* variable is named with the closest of these. */
static const char *const knobs[] = {"COHOOK_WORKERS", "COHOOK_THREADS",    "COHOOK_STACK_SIZE",
                                    "COHOOK_TLS",     "COHOOK_STATS",      "COHOOK_LOG",
                                    "COHOOK_TRACE",   "COHOOK_HANDOFF_US", "COHOOK_MAX_THREADS",
                                    "COHOOK_HANDOFF", "COHOOK_STEAL"};

#ifdef CH_DEBUG_ASSERT
void ch_assert_fail(const char *cond, const char *file, int line) {
  char buf[320];
  int n = snprintf(buf, sizeof buf, "cohook: internal invariant broken at %s:%d: %s\n", file, line, cond);
  ch_write_err(buf, n > 0 && (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
  abort();
}
#endif

void ch_die(const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
  va_end(ap);
  if (n < 0) n = 0;
  if ((size_t)n > sizeof buf - 2) n = sizeof buf - 2;
  buf[n++] = '\n';
  /* Straight to the kernel: stdio may not be usable this early, a hooked write() could park, and
   * this must reach the user. */
  ch_write_err(buf, (size_t)n);
  _exit(1);
}

int ch_parse_size(const char *text, size_t *out) {
  if (!text || !*text) return -EINVAL;
  const char *p = text;
  unsigned long long v = 0;
  if (*p < '0' || *p > '9') return -EINVAL;
  while (*p >= '0' && *p <= '9') {
    unsigned d = (unsigned)(*p++ - '0');
    if (v > (~0ull - d) / 10) return -ERANGE;
    v = v * 10 + d;
  }
  unsigned shift = 0;
  switch (*p) {
    case 'k': case 'K': shift = 10; p++; break;
    case 'm': case 'M': shift = 20; p++; break;
    case 'g': case 'G': shift = 30; p++; break;
    default: break;
  }
  if (*p == 'i' && shift) p++;            /* accept KiB-style "Ki"/"Mi" */
  if ((*p == 'b' || *p == 'B') && shift) p++;
  if (*p) return -EINVAL;
  if (shift && v > (~0ull >> shift)) return -ERANGE;
  v <<= shift;
  if (v > (size_t)-1) return -ERANGE;
  *out = (size_t)v;
  return 0;
}

/* A knob with two values: false for the default one (or unset), true for the other; anything else
 * stops the program with one line naming the knob and both values. */
static bool two_modes(const char *name, const char *dflt, const char *other, const char *help) {
  const char *v = secure_getenv(name);
  if (!v || strcmp(v, dflt) == 0) return false;
  if (strcmp(v, other) == 0) return true;
  ch_die("cohook: %s=%s: unknown mode; use %s", name, v, help);
}

/* A whole number knob within [lo, hi]; dflt when unset. */
static long whole(const char *name, long lo, long hi, long dflt, const char *what) {
  const char *v = secure_getenv(name);
  if (!v) return dflt;
  char *end;
  errno = 0;
  long n = strtol(v, &end, 10);
  if (!*v || *end || errno || n < lo || n > hi)
    ch_die("cohook: %s=%s: not a whole number from %ld to %ld; use %s", name, v, lo, hi, what);
  return n;
}

/* COHOOK_STATS, COHOOK_LOG, COHOOK_TRACE: what the program says about itself on stderr (stats.c,
 * monitor.c). A stats file is checked here, at start, by opening it for appending: a typo in its
 * directory must not cost the user a whole run's numbers at exit. A relative path is made absolute
 * now, because the program may change directory before it exits. */
static void load_observability(void) {
  static char path[4096];
  const char *v = secure_getenv("COHOOK_STATS");
  if (v && strcmp(v, "0") != 0) {
    if (strcmp(v, "1") == 0) {
      ch_config.stats = CH_STATS_STDERR;
    } else if (!*v) {
      ch_die("cohook: COHOOK_STATS=: empty; use 1 (stats on stderr at exit), a file path to append "
             "them to, or 0 (off)");
    } else {
      size_t at = 0;
      if (v[0] != '/') {
        long r = ch_sys(SYS_getcwd, path, sizeof path - 2, 0);
        if (r <= 0) ch_die("cohook: COHOOK_STATS=%s: cannot tell the current directory; use an absolute path", v);
        at = strlen(path);
        path[at++] = '/';
      }
      if (at + strlen(v) >= sizeof path) ch_die("cohook: COHOOK_STATS=%s: path too long; use a shorter one", v);
      memcpy(path + at, v, strlen(v) + 1);
      long fd = ch_sys4(SYS_openat, AT_FDCWD, path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
      if (fd < 0)
        ch_die("cohook: COHOOK_STATS=%s: cannot open it for appending (%s); use a writable file path, "
               "or 1 for stderr", v, strerror((int)-fd));
      ch_sys(SYS_close, fd, 0, 0);
      ch_config.stats = CH_STATS_FILE;
      ch_config.stats_path = path;
    }
    ch_stats_on = true;
  }
  v = secure_getenv("COHOOK_LOG");
  if (v) {
    if (strcmp(v, "off") == 0) ch_config.log = CH_LOG_OFF;
    else if (strcmp(v, "warn") == 0) ch_config.log = CH_LOG_WARN;
    else if (strcmp(v, "debug") == 0) ch_config.log = CH_LOG_DEBUG;
    else
      ch_die("cohook: COHOOK_LOG=%s: unknown level; use off (default), warn (one line per stall of a "
             "worker) or debug (every stall, with more frames)", v);
  }
  v = secure_getenv("COHOOK_TRACE");
  if (v && strcmp(v, "0") != 0)
    ch_config.trace_ms = (unsigned)whole("COHOOK_TRACE", 1, 3600000, 0,
                                         "milliseconds between scheduler trace lines, 1 to 3600000 "
                                         "(0: off)");
}

/* Levenshtein distance, for the "did you mean" of an unknown knob (names are short). */
static size_t distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b), row[64];
  if (la > 63 || lb > 63) return (size_t)-1;
  for (size_t j = 0; j <= lb; j++) row[j] = j;
  for (size_t i = 1; i <= la; i++) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= lb; j++) {
      size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
      if (up + 1 < best) best = up + 1;
      if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
      diag = up;
      row[j] = best;
    }
  }
  return row[lb];
}

/* A COHOOK_* variable that is no knob is a typo, most likely (COHOOK_WORKER=4): say so once, naming
 * the closest knob, and run on. Not in secure mode: there every knob is ignored anyway. */
static void warn_unknown(void) {
  extern char **environ;
  if (getauxval(AT_SECURE) || !environ) return;
  for (char **e = environ; *e; e++) {
    if (strncmp(*e, "COHOOK_", 7) != 0) continue;
    char name[64];
    size_t n = strcspn(*e, "=");
    if (n >= sizeof name) n = sizeof name - 1;
    memcpy(name, *e, n);
    name[n] = 0;
    const char *best = knobs[0];
    size_t best_d = (size_t)-1;
    bool known = false;
    for (size_t k = 0; k < sizeof knobs / sizeof *knobs && !known; k++) {
      size_t d = distance(name, knobs[k]);
      if (d == 0) known = true;
      if (d < best_d) best_d = d, best = knobs[k];
    }
    if (known) continue;
    char buf[192];
    int len = snprintf(buf, sizeof buf, "cohook: %s is not a cohook setting (did you mean %s?); it is ignored\n",
                       name, best);
    ch_write_err(buf, len > 0 && (size_t)len < sizeof buf ? (size_t)len : sizeof buf - 1);
  }
}

void ch_config_load(void) {
  static int loaded;
  if (loaded) return;
  loaded = 1;
  /* secure_getenv: a setuid program must not be steerable through our knobs. */
  const char *v = secure_getenv("COHOOK_STACK_SIZE");
  if (v) {
    size_t n = 0;
    int rc = ch_parse_size(v, &n);
    if (rc == -EINVAL)
      ch_die("cohook: COHOOK_STACK_SIZE=%s: not a byte count; use e.g. 262144, 256K or 8M "
             "(between 16K and 1G)", v);
    if (rc < 0 || n < CH_MIN_STACK || n > CH_MAX_STACK)
      ch_die("cohook: COHOOK_STACK_SIZE=%s: out of range; use a size between 16K and 1G", v);
    long pg = sysconf(_SC_PAGESIZE);
    n = (n + (size_t)pg - 1) & ~((size_t)pg - 1);
    ch_config.stack_size = n;
    ch_config.stack_size_set = true;
    ch_config.stack_size_text = v;
  }
  v = secure_getenv("COHOOK_WORKERS");
  if (v) {
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (!*v || *end || errno || n < 1 || n > 1024)
      ch_die("cohook: COHOOK_WORKERS=%s: not a worker count; use a whole number from 1 to 1024 "
             "(unset: one per CPU)", v);
    ch_config.workers = (int)n;
  }
  ch_config.tls_worker = two_modes("COHOOK_TLS", "coroutine", "worker",
                                   "coroutine (default: each coroutine-thread has its own thread-local "
                                   "storage) or worker (they share their worker's)");
  ch_config.native_threads = two_modes("COHOOK_THREADS", "coroutine", "native",
                                       "coroutine (default: pthreads run as coroutines) or native "
                                       "(pthreads stay OS threads, I/O still hooked)");
  load_observability();
  ch_config.handoff_ns = (uint64_t)whole("COHOOK_HANDOFF_US", 100, 10000000, 5000,
                                         "microseconds a coroutine may keep its worker before it counts "
                                         "as a stall and its scheduler moves to another OS thread "
                                         "(default 5000)") * 1000u;
  ch_config.handoff_off = two_modes("COHOOK_HANDOFF", "on", "off",
                                    "on (default: a stuck worker's scheduler moves to another OS thread) "
                                    "or off (it stays: for comparisons)");
  ch_config.steal_off = two_modes("COHOOK_STEAL", "on", "off",
                                  "on (default: an idle worker takes runnable coroutine-threads from a "
                                  "busy one) or off (they stay where they were placed: for comparisons)");
  ch_config.max_threads = whole("COHOOK_MAX_THREADS", 1, 1000000, 10000,
                                "the most OS threads running schedulers (default 10000)");
  warn_unknown();
  if (ch_config.log >= CH_LOG_WARN) ch_monitor_init_probe();
}

/* Priority 101: before the program's and other libraries' ordinary constructors, which may already
 * call into hooked functions. */
__attribute__((constructor(101))) static void ch_config_ctor(void) {
  ch_config_load();
  ch_handoff_early();
}
