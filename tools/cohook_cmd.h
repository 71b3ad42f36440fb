/*
 * cohook_cmd.h — the pieces of the `cohook` command (tools/cohook*.c): finding libhook.so, finding the
 * program as execvp would, and deciding whether a preload can reach it.
 *
 * Exit statuses follow env(1), stdbuf(1) and timeout(1): the program's own when it runs (exec replaces
 * the command), 125 for the command's own errors, 126 when the program is found but cannot be run
 * (under the preload), 127 when it is not found.
 */
#ifndef COHOOK_CMD_H
#define COHOOK_CMD_H

#include <stddef.h>

enum {
  CMD_EXIT_OWN = 125,        /* bad option, libhook.so not found or unusable */
  CMD_EXIT_CANNOT_RUN = 126, /* not executable, a directory, or out of the preload's reach */
  CMD_EXIT_NOT_FOUND = 127,  /* no such file, not in PATH */
};

/* What the dynamic loader requires to be equal between a program and a library it preloads. */
struct cmd_elf_id {
  unsigned char cls;  /* EI_CLASS: ELFCLASS32 / ELFCLASS64 */
  unsigned char data; /* EI_DATA: byte order */
  unsigned machine;   /* e_machine, read in the file's own byte order */
};

/* Read path's ELF identity. Returns 0, -ENOEXEC when it is not an ELF file, or -errno. */
int cmd_elf_id(const char *path, struct cmd_elf_id *out);

/* "x86-64 (64-bit)" and the like, for messages; buf receives it. */
const char *cmd_elf_name(const struct cmd_elf_id *id, char *buf, size_t len);

/*
 * Find this command's libhook.so: next to the executable (the build tree), in ../<libdir>, ../lib and
 * ../lib/<multiarch> relative to it (an installed, possibly relocated prefix), then in the library
 * directory compiled in at configure time. Returns a malloc'ed canonical path and fills *id, or NULL
 * with `searched` describing where it looked.
 */
char *cmd_find_libhook(struct cmd_elf_id *id, char *searched, size_t len);

/*
 * Find prog as execvp(3) would (a name without a slash is searched in PATH, default "/bin:/usr/bin").
 * Returns the malloc'ed path of the file to execute, or NULL after printing one line on stderr, with
 * *status set to CMD_EXIT_NOT_FOUND or CMD_EXIT_CANNOT_RUN.
 */
char *cmd_resolve(const char *prog, int *status);

/*
 * Can an LD_PRELOAD reach the program at path (shown to the user as `shown`)? It cannot when the
 * file is statically linked, built for another architecture than libhook.so, or set-user/group-ID
 * (or has file capabilities) in a way that makes the loader run in secure mode and ignore
 * LD_PRELOAD. A #! script is judged by its interpreter, a file that is neither ELF nor script by
 * /bin/sh (which execvp falls back to). Returns 0 when it can (or when the file cannot be read, so
 * that only exec can tell), else prints one line on stderr and returns the exit status to use.
 */
int cmd_check_preloadable(const char *shown, const char *path, const struct cmd_elf_id *lib);

#endif /* COHOOK_CMD_H */
