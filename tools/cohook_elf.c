/*
 * cohook_elf.c — can an LD_PRELOAD reach this program? Read the ELF header and program headers (a
 * static executable has no PT_INTERP: no dynamic loader runs, so nothing reads LD_PRELOAD), compare
 * the architecture with libhook.so's, and predict the kernel's secure-exec decision (set-user-ID,
 * set-group-ID, file capabilities), in which the loader ignores LD_PRELOAD. A #! script is judged by
 * its interpreter, which is what gets preloaded.
 *
 * Everything the command cannot read or parse is left to execve(): it gives the true error.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "cohook_cmd.h"

/* The kernel reads this much of a file to recognise a #! line (BINPRM_BUF_SIZE). */
#define SCRIPT_HEAD 256
/* The kernel follows at most this many interpreters in a chain of scripts. */
#define MAX_INTERP_DEPTH 4

static int read_head(int fd, unsigned char *buf, size_t len) {
  ssize_t n = pread(fd, buf, len, 0);
  return n < 0 ? -errno : (int)n;
}

int cmd_elf_id(const char *path, struct cmd_elf_id *out) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  unsigned char h[EI_NIDENT + 4];
  int n = read_head(fd, h, sizeof h);
  close(fd);
  if (n < 0) return n;
  if ((size_t)n < sizeof h || memcmp(h, ELFMAG, SELFMAG) != 0) return -ENOEXEC;
  out->cls = h[EI_CLASS];
  out->data = h[EI_DATA];
  /* e_machine follows e_type right after e_ident, in the file's own byte order. */
  out->machine = h[EI_DATA] == ELFDATA2MSB ? (unsigned)h[EI_NIDENT + 2] << 8 | h[EI_NIDENT + 3]
                                           : (unsigned)h[EI_NIDENT + 3] << 8 | h[EI_NIDENT + 2];
  return 0;
}

const char *cmd_elf_name(const struct cmd_elf_id *id, char *buf, size_t len) {
  static const struct { unsigned machine; const char *name; } names[] = {
      {EM_386, "i386"},     {EM_MIPS, "MIPS"},     {EM_PPC, "PowerPC"}, {EM_PPC64, "PowerPC64"},
      {EM_S390, "s390"},    {EM_ARM, "ARM"},       {EM_X86_64, "x86-64"}, {EM_AARCH64, "AArch64"},
      {EM_RISCV, "RISC-V"}, {258, "LoongArch"}, /* EM_LOONGARCH: not in every elf.h yet */
  };
  const char *name = NULL;
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (names[i].machine == id->machine) name = names[i].name;
  char other[32];
  if (!name) {
    snprintf(other, sizeof other, "ELF machine %u", id->machine);
    name = other;
  }
  snprintf(buf, len, "%s (%s%s)", name,
           id->cls == ELFCLASS32 ? "32-bit" : id->cls == ELFCLASS64 ? "64-bit" : "unknown class",
           id->data == ELFDATA2MSB ? ", big-endian" : "");
  return buf;
}

/* 1 when the ELF file has a PT_INTERP program header (dynamically linked), 0 when it has none
 * (static, including static-pie), -1 when its headers cannot be read (left to execve). */
static int has_interp(int fd, const unsigned char *head, size_t n) {
  if (n < sizeof(ElfW(Ehdr))) return -1;
  ElfW(Ehdr) eh;
  memcpy(&eh, head, sizeof eh);
  if ((eh.e_type != ET_EXEC && eh.e_type != ET_DYN) || eh.e_phentsize != sizeof(ElfW(Phdr)))
    return -1;
  size_t phnum = eh.e_phnum;
  if (phnum == PN_XNUM) { /* the real count is in section header 0's sh_info */
    ElfW(Shdr) sh0;
    if (eh.e_shoff == 0 || pread(fd, &sh0, sizeof sh0, (off_t)eh.e_shoff) != (ssize_t)sizeof sh0)
      return -1;
    phnum = sh0.sh_info;
  }
  ElfW(Phdr) ph[32];
  for (size_t i = 0; i < phnum;) {
    size_t k = phnum - i < 32 ? phnum - i : 32;
    ssize_t want = (ssize_t)(k * sizeof ph[0]);
    if (pread(fd, ph, (size_t)want, (off_t)(eh.e_phoff + i * sizeof ph[0])) != want) return -1;
    for (size_t j = 0; j < k; j++)
      if (ph[j].p_type == PT_INTERP) return 1;
    i += k;
  }
  return 0;
}

/* Why the kernel would exec path in secure mode (AT_SECURE), in which the loader ignores
 * LD_PRELOAD; NULL when it would not. The rules of fs/exec.c and commoncap.c: a set-user-ID bit
 * makes the file's owner the effective user, a set-group-ID bit (with group execute) its group the
 * effective group; secure mode when either differs from the real one. File capabilities do it for
 * a non-root user. A nosuid mount and no_new_privs make the kernel ignore all of these. */
static const char *secure_reason(const char *path, const struct stat *st, char *buf, size_t len) {
  bool suid = st->st_mode & S_ISUID;
  bool sgid = (st->st_mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP);
  struct statvfs vfs;
  if (statvfs(path, &vfs) == 0 && (vfs.f_flag & ST_NOSUID)) return NULL;
  if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1) return NULL;
  uid_t euid = suid ? st->st_uid : geteuid();
  gid_t egid = sgid ? st->st_gid : getegid();
  if (euid != getuid()) {
    struct passwd *pw = getpwuid(st->st_uid);
    char owner[64];
    if (pw) snprintf(owner, sizeof owner, "%s", pw->pw_name);
    else snprintf(owner, sizeof owner, "uid %u", (unsigned)st->st_uid);
    snprintf(buf, len, "set-user-ID %s, run by uid %u", owner, (unsigned)getuid());
    return buf;
  }
  if (egid != getgid()) {
    snprintf(buf, len, "set-group-ID (gid %u), run by gid %u", (unsigned)st->st_gid, (unsigned)getgid());
    return buf;
  }
  if (getuid() != 0 && getxattr(path, "security.capability", NULL, 0) > 0) {
    snprintf(buf, len, "has file capabilities, run by uid %u", (unsigned)getuid());
    return buf;
  }
  return NULL;
}

static int check(const char *shown, const char *path, const struct cmd_elf_id *lib, int depth);

/* A "#!interpreter [arg]" line: the kernel runs the interpreter (not searched in PATH; a relative
 * name is relative to the current directory), so that is what must take the preload. */
static int check_script(const char *shown, const unsigned char *head, size_t n,
                        const struct cmd_elf_id *lib, int depth) {
  size_t i = 2;
  while (i < n && (head[i] == ' ' || head[i] == '\t')) i++;
  size_t start = i;
  while (i < n && head[i] != ' ' && head[i] != '\t' && head[i] != '\n' && head[i] != '\0') i++;
  if (i == start || depth >= MAX_INTERP_DEPTH) return 0; /* execve reports these itself */
  char interp[SCRIPT_HEAD + 1];
  memcpy(interp, head + start, i - start);
  interp[i - start] = '\0';
  struct stat st;
  if (stat(interp, &st) != 0) {
    if (errno != ENOENT && errno != ENOTDIR) return 0;
    fprintf(stderr, "cohook: %s: interpreter %s: no such file; fix the script's #! line\n", shown, interp);
    return CMD_EXIT_NOT_FOUND;
  }
  char next[PATH_MAX + 64];
  snprintf(next, sizeof next, "%s: interpreter %s", shown, interp);
  return check(next, interp, lib, depth + 1);
}

static int check(const char *shown, const char *path, const struct cmd_elf_id *lib, int depth) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0; /* execute-only (still runs, and still takes the preload) or gone */
  unsigned char head[SCRIPT_HEAD];
  struct stat st;
  int n = read_head(fd, head, sizeof head);
  int rc = 0;
  if (n < 0 || fstat(fd, &st) != 0) goto out;
  if (n >= 2 && head[0] == '#' && head[1] == '!') {
    rc = check_script(shown, head, (size_t)n, lib, depth);
    goto out;
  }
  if (n < SELFMAG || memcmp(head, ELFMAG, SELFMAG) != 0) {
    /* Neither ELF nor #!: execve says ENOEXEC and the command, as execvp does, runs it with
     * /bin/sh. (Binary formats registered with binfmt_misc are left to the kernel.) */
    if (depth == 0) {
      char next[PATH_MAX + 64];
      snprintf(next, sizeof next, "%s: shell /bin/sh", shown);
      rc = check(next, "/bin/sh", lib, depth + 1);
    }
    goto out;
  }
  struct cmd_elf_id id;
  if ((size_t)n < EI_NIDENT + 4) goto out;
  if (cmd_elf_id(path, &id) != 0) goto out;
  if (id.cls != lib->cls || id.data != lib->data || id.machine != lib->machine) {
    char a[64], b[64];
    fprintf(stderr,
            "cohook: %s: built for %s, libhook.so for %s: the loader cannot preload it there; run it "
            "without cohook, or with a cohook built for %s\n",
            shown, cmd_elf_name(&id, a, sizeof a), cmd_elf_name(lib, b, sizeof b), a);
    rc = CMD_EXIT_CANNOT_RUN;
    goto out;
  }
  /* Our own class and byte order from here on (libhook.so's are this command's). */
  if (has_interp(fd, head, (size_t)n) == 0) {
    fprintf(stderr, "cohook: %s: statically linked: LD_PRELOAD cannot reach it; run it without cohook, "
                    "or link it dynamically\n", shown);
    rc = CMD_EXIT_CANNOT_RUN;
    goto out;
  }
  char why[128];
  if (secure_reason(path, &st, why, sizeof why)) {
    fprintf(stderr, "cohook: %s: %s: the loader ignores LD_PRELOAD in it; run it as its owner, or "
                    "run a copy without the set-ID bits or capabilities\n", shown, why);
    rc = CMD_EXIT_CANNOT_RUN;
  }
out:
  close(fd);
  return rc;
}

int cmd_check_preloadable(const char *shown, const char *path, const struct cmd_elf_id *lib) {
  return check(shown, path, lib, 0);
}
