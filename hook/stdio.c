/*
 * stdio.c — stdio's reads on sockets, pipes and terminals, from a coroutine on a worker.
 *
 * A FILE refills its buffer with glibc's internal read, which no hook sees: fgets() on an fdopen()ed
 * socket whose peer has not written yet blocks the worker — and deadlocks when the peer is a
 * coroutine of the same worker. No stream method can be replaced (glibc validates a FILE's vtable),
 * so the entry points that can refill are hooked, and every refill they make is preceded by a park
 * until the fd is readable (runtime/xfer.c, ch_io_wait_readable): the read inside libc then returns at
 * once. Data already in the buffer costs nothing: the hook looks at the stream's read pointers (the
 * public fields getc_unlocked() uses) and calls libc.
 *
 * Entry points that may refill several times (fgets, getline/getdelim, fread) are glibc's own
 * algorithms (2.36: libio/iogets.c _IO_getline_info, iogetdelim.c, fileops.c _IO_file_xsgetn) over
 * glibc's exported refills (__uflow, __underflow, _IO_file_read), with the wait before each one; the
 * single-refill ones (fgetc, getc, getchar and their _unlocked forms, __uflow and __underflow, which
 * the getc_unlocked macro calls) wait and call libc. The wait also does first what glibc's underflow
 * does before it reads — flush stdout when the stream is line-buffered or unbuffered, and the
 * stream's own pending output — so a prompt or a request still in a buffer is out before we wait for
 * its answer. An interrupted wait (a handler without SA_RESTART) or SO_RCVTIMEO ends as the read
 * would have: the stream's error flag, errno, EOF.
 *
 * Not covered: the scanf family and the wide-character reads (they refill inside libc), output that
 * blocks inside fflush/fputs when the peer does not read, and a refill racing with another thread
 * reading the same FILE from another worker (then the read may block that worker). Only on a worker
 * (ch_on_worker): elsewhere libc's own call blocks only its own thread, as natively.
 */
#include <limits.h>
#include <stdlib.h>
#include <wchar.h>

#include "hook.h"

#undef fread_unlocked /* <bits/stdio.h> makes it a macro in optimised builds */

/* glibc's FILE._flags bits (libio.h; part of the ABI since libio's beginning). _IO_EOF_SEEN and
 * _IO_ERR_SEEN come from the public struct_FILE.h. */
#define F_UNBUFFERED 0x0002
#define F_NO_READS 0x0004
#define F_NO_WRITES 0x0008
#define F_LINKED 0x0080
#define F_IN_BACKUP 0x0100
#define F_LINE_BUF 0x0200
#define F_USER_LOCK 0x8000

/* Exported by glibc (the old libio ABI), declared by no public header. */
void _IO_doallocbuf(FILE *);
ssize_t _IO_file_read(FILE *, void *, ssize_t);

static inline bool empty(FILE *f) { return f->_IO_read_ptr >= f->_IO_read_end; }

/* A wait ended by EINTR: a pthread_cancel request may be what ended it. Every entry point here is a
 * cancellation point natively (its read is); the request acts once the entry point has let go of the
 * stream's lock, as glibc's cleanup handler would have released it. */
static CH_TLS bool intr_seen;
static inline void act_on_cancel(void) {
  if (CH_UNLIKELY(intr_seen)) {
    intr_seen = false;
    ch_cancel_test();
  }
}

/* What glibc's _IO_new_file_underflow does before its read: flush stdout if this stream is
 * line-buffered or unbuffered, then its own pending output (_IO_switch_to_get_mode). fflush leaves
 * the stream as the underflow expects it: nothing to read, nothing to write. */
static void before_read(FILE *f) {
  if (f->_flags & (F_LINE_BUF | F_UNBUFFERED)) {
    if ((stdout->_flags & (F_LINKED | F_NO_WRITES | F_LINE_BUF)) == (F_LINKED | F_LINE_BUF)) fflush(stdout);
  }
  if (f->_IO_write_ptr > f->_IO_write_base) fflush(f);
}

/* Before a read of f's fd: park until it will not block. 0 go on (also when libc will answer without
 * reading, or the fd is not one we wait for); EOF: the read would have failed (EINTR, SO_RCVTIMEO's
 * EAGAIN), and the stream says so as after that failed read. underflow: the read is an underflow's
 * (which flushes first); else fread's direct read (which does not). */
static int wait_read(FILE *f, bool underflow) {
  if (!empty(f) || (f->_flags & (_IO_EOF_SEEN | F_NO_READS | F_IN_BACKUP)) || f->_mode > 0 || f->_fileno < 0)
    return 0;
  if (underflow) before_read(f);
  long r = ch_io_wait_readable(f->_fileno);
  if (r == 0 || r == CH_E_PASS || r == -EBADF) return 0; /* EBADF: the read itself reports it */
  f->_flags |= _IO_ERR_SEEN;
  f->_offset = -1; /* _IO_pos_BAD, as after a failed refill */
  errno = (int)-r;
  if (r == -EINTR) intr_seen = true;
  return EOF;
}

static int uflow(FILE *f) { return wait_read(f, true) == EOF ? EOF : REAL(__uflow)(f); }
static int underflow(FILE *f) { return wait_read(f, true) == EOF ? EOF : REAL(__underflow)(f); }

static void lock(FILE *f) {
  if (!(f->_flags & F_USER_LOCK)) flockfile(f);
}
static void unlock(FILE *f) {
  if (!(f->_flags & F_USER_LOCK)) funlockfile(f);
}

/* ---- one refill at most ------------------------------------------------------------------------------ */

#define ONE_REFILL(name, locked)                                                                     \
  CH_EXPORT int name(FILE *f) {                                                                      \
    if (!empty(f) || !ch_on_worker()) return REAL(name)(f);                                          \
    if (locked) lock(f);                                                                             \
    int c = wait_read(f, true) == EOF ? EOF : REAL(name)(f);                                         \
    if (locked) unlock(f);                                                                           \
    act_on_cancel();                                                                                 \
    return c;                                                                                        \
  }

ONE_REFILL(fgetc, true)
ONE_REFILL(getc, true)
ONE_REFILL(fgetc_unlocked, false)
ONE_REFILL(getc_unlocked, false)
ONE_REFILL(__uflow, false)
ONE_REFILL(__underflow, false)

CH_EXPORT int _IO_getc(FILE *f) { return getc(f); }
CH_EXPORT int getchar(void) { return getc(stdin); }
CH_EXPORT int getchar_unlocked(void) { return getc_unlocked(stdin); }

/* ---- fgets: _IO_getline_info(fp, buf, n, '\n', extract_delim 1) with the wait before each refill --- */

static size_t getline_info(FILE *fp, char *buf, size_t n) {
  char *ptr = buf;
  if (fp->_mode == 0) fwide(fp, -1);
  while (n != 0) {
    ssize_t len = fp->_IO_read_end - fp->_IO_read_ptr;
    if (len <= 0) {
      int c = uflow(fp);
      if (c == EOF) break;
      *ptr++ = (char)c;
      if (c == '\n') return (size_t)(ptr - buf);
      n--;
    } else {
      if ((size_t)len >= n) len = (ssize_t)n;
      char *t = memchr(fp->_IO_read_ptr, '\n', (size_t)len);
      if (t) {
        size_t old_len = (size_t)(ptr - buf);
        len = t - fp->_IO_read_ptr + 1;
        memcpy(ptr, fp->_IO_read_ptr, (size_t)len);
        fp->_IO_read_ptr = t + 1;
        return old_len + (size_t)len;
      }
      memcpy(ptr, fp->_IO_read_ptr, (size_t)len);
      fp->_IO_read_ptr += len;
      ptr += len;
      n -= (size_t)len;
    }
  }
  return (size_t)(ptr - buf);
}

/* glibc's fgets (chk_size 0) and __fgets_chk (the destination's size). */
static char *fgets_as(char *buf, int n, FILE *fp, bool locked, size_t chk_size) {
  if (n <= 0) return NULL;
  if (!chk_size && n == 1) {
    buf[0] = '\0';
    return buf;
  }
  if (locked) lock(fp);
  int old_error = fp->_flags & _IO_ERR_SEEN;
  fp->_flags &= ~_IO_ERR_SEEN;
  size_t limit = (size_t)n - 1;
  if (chk_size && chk_size < limit) limit = chk_size;
  size_t count = getline_info(fp, buf, limit);
  char *result;
  if (count == 0 || ((fp->_flags & _IO_ERR_SEEN) && errno != EAGAIN)) {
    result = NULL;
  } else {
    if (chk_size && count >= chk_size) __chk_fail();
    buf[count] = '\0';
    result = buf;
  }
  fp->_flags |= old_error;
  if (locked) unlock(fp);
  act_on_cancel();
  return result;
}

CH_EXPORT char *fgets(char *buf, int n, FILE *fp) {
  if (!ch_on_worker()) return REAL(fgets)(buf, n, fp);
  return fgets_as(buf, n, fp, true, 0);
}

CH_EXPORT char *fgets_unlocked(char *buf, int n, FILE *fp) {
  if (!ch_on_worker()) return REAL(fgets_unlocked)(buf, n, fp);
  return fgets_as(buf, n, fp, false, 0);
}

CH_EXPORT char *__fgets_chk(char *buf, size_t size, int n, FILE *fp) {
  if (!ch_on_worker() && (size_t)n <= size) return REAL(fgets)(buf, n, fp);
  return fgets_as(buf, n, fp, true, size);
}

CH_EXPORT char *__fgets_unlocked_chk(char *buf, size_t size, int n, FILE *fp) {
  if (!ch_on_worker() && (size_t)n <= size) return REAL(fgets_unlocked)(buf, n, fp);
  return fgets_as(buf, n, fp, false, size);
}

/* ---- getdelim / getline (libio/iogetdelim.c) ------------------------------------------------------- */

CH_EXPORT ssize_t getdelim(char **lineptr, size_t *n, int delimiter, FILE *fp) {
  if (!ch_on_worker() || !fp || fp->_fileno < 0) return REAL(getdelim)(lineptr, n, delimiter, fp);
  ssize_t result, cur_len = 0, len;
  if (lineptr == NULL || n == NULL) {
    errno = EINVAL;
    return -1;
  }
  lock(fp);
  if (fp->_flags & _IO_ERR_SEEN) {
    result = -1;
    goto unlock_return;
  }
  if (*lineptr == NULL || *n == 0) {
    *n = 120;
    *lineptr = malloc(*n);
    if (*lineptr == NULL) {
      result = -1;
      goto unlock_return;
    }
  }
  len = fp->_IO_read_end - fp->_IO_read_ptr;
  if (len <= 0) {
    if (underflow(fp) == EOF) {
      result = -1;
      goto unlock_return;
    }
    len = fp->_IO_read_end - fp->_IO_read_ptr;
  }
  for (;;) {
    char *t = memchr(fp->_IO_read_ptr, delimiter, (size_t)len);
    if (t != NULL) len = (t - fp->_IO_read_ptr) + 1;
    if (len >= SSIZE_MAX - cur_len) {
      errno = EOVERFLOW;
      result = -1;
      goto unlock_return;
    }
    size_t needed = (size_t)(cur_len + len + 1);
    if (needed > *n) {
      if (needed < 2 * *n) needed = 2 * *n;
      char *grown = realloc(*lineptr, needed);
      if (grown == NULL) {
        result = -1;
        goto unlock_return;
      }
      *lineptr = grown;
      *n = needed;
    }
    memcpy(*lineptr + cur_len, fp->_IO_read_ptr, (size_t)len);
    fp->_IO_read_ptr += len;
    cur_len += len;
    if (t != NULL || underflow(fp) == EOF) break;
    len = fp->_IO_read_end - fp->_IO_read_ptr;
  }
  (*lineptr)[cur_len] = '\0';
  result = cur_len;
unlock_return:
  unlock(fp);
  act_on_cancel();
  return result;
}

CH_EXPORT ssize_t __getdelim(char **lineptr, size_t *n, int delimiter, FILE *fp) {
  return getdelim(lineptr, n, delimiter, fp);
}

CH_EXPORT ssize_t getline(char **lineptr, size_t *n, FILE *fp) { return getdelim(lineptr, n, '\n', fp); }

/* ---- fread (libio/fileops.c _IO_file_xsgetn, one refill or direct read per step) ------------------ */

static size_t xsgetn(FILE *fp, char *s, size_t n) {
  size_t want = n;
  if (fp->_IO_buf_base == NULL && fp->_IO_save_base == NULL) _IO_doallocbuf(fp);
  while (want > 0) {
    size_t have = fp->_IO_read_ptr < fp->_IO_read_end ? (size_t)(fp->_IO_read_end - fp->_IO_read_ptr) : 0;
    if (have || (fp->_flags & F_IN_BACKUP) || fp->_IO_buf_base == NULL) {
      /* What is buffered (a copy), or the cases we leave to libc whole (a backup area from ungetc,
       * no buffer). */
      size_t k = have && have < want ? have : want;
      size_t got = REAL(fread_unlocked)(s, 1, k, fp);
      s += got;
      want -= got;
      if (got < k) break;
      continue;
    }
    size_t block = (size_t)(fp->_IO_buf_end - fp->_IO_buf_base);
    if (want < block) { /* refill the buffer, then copy */
      if (underflow(fp) == EOF) break;
      continue;
    }
    /* Read straight into the caller's memory, a whole number of blocks, as glibc does. */
    if (wait_read(fp, false) == EOF) break;
    fp->_IO_read_base = fp->_IO_read_ptr = fp->_IO_read_end = fp->_IO_buf_base;
    fp->_IO_write_base = fp->_IO_write_ptr = fp->_IO_write_end = fp->_IO_buf_base;
    size_t count = want;
    if (block >= 128) count -= want % block;
    ssize_t r = _IO_file_read(fp, s, (ssize_t)count);
    if (r <= 0) {
      fp->_flags |= r == 0 ? _IO_EOF_SEEN : _IO_ERR_SEEN;
      break;
    }
    s += r;
    want -= (size_t)r;
    if (fp->_offset != -1) fp->_offset += r;
  }
  return n - want;
}

static size_t fread_as(void *buf, size_t size, size_t count, FILE *fp, bool locked) {
  size_t bytes = size * count;
  if (bytes == 0) return 0;
  if (locked) lock(fp);
  size_t got = xsgetn(fp, buf, bytes);
  if (locked) unlock(fp);
  act_on_cancel();
  return got == bytes ? count : got / size;
}

CH_EXPORT size_t fread(void *buf, size_t size, size_t count, FILE *fp) {
  if (!ch_on_worker() || fp->_fileno < 0 || fp->_mode > 0) return REAL(fread)(buf, size, count, fp);
  return fread_as(buf, size, count, fp, true);
}

CH_EXPORT size_t fread_unlocked(void *buf, size_t size, size_t count, FILE *fp) {
  if (!ch_on_worker() || fp->_fileno < 0 || fp->_mode > 0) return REAL(fread_unlocked)(buf, size, count, fp);
  return fread_as(buf, size, count, fp, false);
}

CH_EXPORT size_t __fread_chk(void *buf, size_t buflen, size_t size, size_t count, FILE *fp) {
  size_t bytes;
  if (__builtin_mul_overflow(size, count, &bytes) || bytes > buflen) __chk_fail();
  return fread(buf, size, count, fp);
}

CH_EXPORT size_t __fread_unlocked_chk(void *buf, size_t buflen, size_t size, size_t count, FILE *fp) {
  size_t bytes;
  if (__builtin_mul_overflow(size, count, &bytes) || bytes > buflen) __chk_fail();
  return fread_unlocked(buf, size, count, fp);
}
