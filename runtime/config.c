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
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "sys.h"

#define CH_DEFAULT_STACK (256u * 1024u)
#define CH_MIN_STACK (16u * 1024u) /* glibc's PTHREAD_STACK_MIN */
#define CH_MAX_STACK (1024u * 1024u * 1024u)

struct ch_config ch_config = {.stack_size = CH_DEFAULT_STACK, .stack_size_text = "262144 (default)"};

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
}

/* Priority 101: before the program's and other libraries' ordinary constructors, which may already
 * call into hooked functions. */
__attribute__((constructor(101))) static void ch_config_ctor(void) { ch_config_load(); }
