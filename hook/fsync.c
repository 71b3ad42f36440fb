/*
 * fsync.c — the calls that wait for a device to write the data out (fsync, fdatasync, syncfs,
 * sync_file_range with SYNC_FILE_RANGE_WAIT_*, msync with MS_SYNC). Databases make them on every
 * commit, and each takes milliseconds. A coroutine on a worker gives its scheduler to a spare OS
 * thread first (runtime/handoff.c, ch_handoff_release), so the others run during the wait; the call
 * itself is libc's, on the caller's OS thread, with its result and errno unchanged.
 */
#include <fcntl.h>
#include <sys/mman.h>

#include "hook.h"

static inline void before_device_wait(void) {
  if (ch_on_worker()) ch_handoff_release();
}

CH_EXPORT int fsync(int fd) {
  before_device_wait();
  return REAL(fsync)(fd);
}

CH_EXPORT int fdatasync(int fd) {
  before_device_wait();
  return REAL(fdatasync)(fd);
}

CH_EXPORT int syncfs(int fd) {
  before_device_wait();
  return REAL(syncfs)(fd);
}

CH_EXPORT int sync_file_range(int fd, off64_t off, off64_t n, unsigned int flags) {
  if (flags & (SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WAIT_AFTER)) before_device_wait();
  return REAL(sync_file_range)(fd, off, n, flags);
}

CH_EXPORT int msync(void *addr, size_t len, int flags) {
  if (flags & MS_SYNC) before_device_wait();
  return REAL(msync)(addr, len, flags);
}
