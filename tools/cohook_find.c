/*
 * cohook_find.c — find the libhook.so that belongs to this command, and find the program as
 * execvp(3) would.
 *
 * libhook.so is looked for relative to the command's own location first (/proc/self/exe), so that
 * the build tree, an installed prefix and a prefix moved elsewhere after installation (cmake --install
 * --prefix P, a package unpacked anywhere) each use their own library; the library directory
 * compiled in at configure time comes last.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cohook_cmd.h"

#ifndef COHOOK_LIBDIR /* set by tools/CMakeLists.txt */
#define COHOOK_LIBDIR "/usr/local/lib"
#endif
#ifndef COHOOK_LIBDIR_REL
#define COHOOK_LIBDIR_REL "lib"
#endif
#ifndef COHOOK_MULTIARCH
#define COHOOK_MULTIARCH ""
#endif

#define MAX_DIRS 5

static void add_dir(char dirs[][PATH_MAX], int *n, const char *a, const char *b, const char *c) {
  char d[PATH_MAX];
  if (snprintf(d, sizeof d, "%s%s%s", a, b, c) >= (int)sizeof d) return;
  for (int i = 0; i < *n; i++)
    if (strcmp(dirs[i], d) == 0) return;
  memcpy(dirs[(*n)++], d, sizeof d);
}

char *cmd_find_libhook(struct cmd_elf_id *id, char *searched, size_t len) {
  static char dirs[MAX_DIRS][PATH_MAX];
  int n = 0;
  char self[PATH_MAX];
  ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
  if (k > 0) {
    self[k] = '\0';
    char *slash = strrchr(self, '/');
    if (slash) {
      *slash = '\0';
      add_dir(dirs, &n, self[0] ? self : "/", "", ""); /* the build tree: both at its top level */
      /* The prefix is the directory above bin/ (written without "..", for the message). */
      slash = strrchr(self, '/');
      if (slash) {
        *slash = '\0';
        const char *prefix = self;
        if (COHOOK_LIBDIR_REL[0] != '/') add_dir(dirs, &n, prefix, "/", COHOOK_LIBDIR_REL);
        add_dir(dirs, &n, prefix, "/lib", "");
        if (COHOOK_MULTIARCH[0]) add_dir(dirs, &n, prefix, "/lib/", COHOOK_MULTIARCH);
      }
    }
  }
  add_dir(dirs, &n, COHOOK_LIBDIR, "", "");
  size_t used = 0;
  if (len) searched[0] = '\0';
  for (int i = 0; i < n; i++) {
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/libhook.so", dirs[i]) < (int)sizeof path &&
        cmd_elf_id(path, id) == 0) {
      char *real = realpath(path, NULL);
      if (real) return real;
    }
    int w = snprintf(searched + used, len - used, "%s%s", i ? ", " : "", dirs[i]);
    if (w > 0 && used + (size_t)w < len) used += (size_t)w;
  }
  return NULL;
}

/* One line for a program that cannot be run; returns NULL for the caller to pass on. */
static char *fail(int *status, int code, const char *prog, const char *problem, const char *todo) {
  fprintf(stderr, "cohook: %s: %s; %s\n", prog, problem, todo);
  *status = code;
  return NULL;
}

static char *resolve_path(const char *prog, int *status) {
  struct stat st;
  if (stat(prog, &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      return fail(status, CMD_EXIT_NOT_FOUND, prog, "no such file", "check the path");
    return fail(status, CMD_EXIT_CANNOT_RUN, prog, strerror(errno), "check the path and its permissions");
  }
  if (S_ISDIR(st.st_mode))
    return fail(status, CMD_EXIT_CANNOT_RUN, prog, "is a directory", "give the program to run");
  if (access(prog, X_OK) != 0)
    return fail(status, CMD_EXIT_CANNOT_RUN, prog, "not executable", "chmod +x it, or run its interpreter");
  char *r = strdup(prog);
  if (!r) return fail(status, CMD_EXIT_OWN, prog, "out of memory", "free some memory");
  return r;
}

char *cmd_resolve(const char *prog, int *status) {
  if (!*prog) return fail(status, CMD_EXIT_NOT_FOUND, "''", "empty program name", "give a program");
  if (strchr(prog, '/')) return resolve_path(prog, status);
  /* execvp: each PATH element in turn (an empty one is the current directory); a file that exists
   * but cannot be executed (EACCES: no execute permission, a directory) is skipped, remembered, and
   * makes the final answer 126 instead of 127 when nothing executable is found. */
  const char *path = getenv("PATH");
  if (!path) path = "/bin:/usr/bin"; /* glibc's execvp default */
  char denied[PATH_MAX] = "";
  for (const char *p = path;; p++) {
    const char *end = strchrnul(p, ':');
    char cand[PATH_MAX];
    int len = end == p ? snprintf(cand, sizeof cand, "./%s", prog)
                       : snprintf(cand, sizeof cand, "%.*s/%s", (int)(end - p), p, prog);
    struct stat st;
    if (len > 0 && len < (int)sizeof cand && stat(cand, &st) == 0) {
      if (S_ISREG(st.st_mode) && access(cand, X_OK) == 0) {
        char *r = strdup(cand);
        if (!r) return fail(status, CMD_EXIT_OWN, prog, "out of memory", "free some memory");
        return r;
      }
      if (!denied[0]) memcpy(denied, cand, (size_t)len + 1);
    }
    if (!*end) break;
    p = end;
  }
  if (denied[0]) {
    char problem[PATH_MAX + 64];
    snprintf(problem, sizeof problem, "found as %s, which cannot be executed", denied);
    return fail(status, CMD_EXIT_CANNOT_RUN, prog, problem, "chmod +x it, or fix PATH");
  }
  return fail(status, CMD_EXIT_NOT_FOUND, prog, "not found in PATH", "give its path, or add its directory to PATH");
}
