/*
 * cohook.c — `cohook [options] [--] program [args...]`: run an unmodified program with libhook.so
 * preloaded, options mapped onto the COHOOK_* environment knobs.
 *
 * The command only sets the environment and execs: the program's exit status is its own, and the
 * runtime inside the program validates every knob itself (a bad value stops the program with one line
 * and status 1), so the command does not judge knob values and cannot disagree with the runtime.
 * What it does judge is whether the preload can reach the program at all: a static or set-ID
 * executable, or one for another architecture, would run without cohook, silently — that is refused.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cohook_cmd.h"

#ifndef COHOOK_VERSION
#define COHOOK_VERSION "unknown"
#endif

static const char usage_line[] = "usage: cohook [options] [--] program [args...]";

static void help(void) {
  printf("%s\n"
         "Run program with libhook.so preloaded: its threads run as coroutines on a few worker threads.\n"
         "\n"
         "  -w, --workers N      worker OS threads (COHOOK_WORKERS; default: one per usable CPU)\n"
         "      --stack SIZE     default stack of a coroutine-thread, e.g. 256K (COHOOK_STACK_SIZE;\n"
         "                       default: glibc's thread default, RLIMIT_STACK)\n"
         "      --threads MODE   coroutine (default) or native: pthreads stay OS threads (COHOOK_THREADS)\n"
         "      --tls MODE       coroutine (default) or worker: share the worker's TLS (COHOOK_TLS)\n"
         "      --stats[=FILE]   statistics at exit, on stderr or appended to FILE (COHOOK_STATS)\n"
         "      --log LEVEL      off (default), warn or debug: stall reports on stderr (COHOOK_LOG)\n"
         "      --trace MS       a scheduler summary line every MS milliseconds (COHOOK_TRACE)\n"
         "      --handoff-us US  how long a coroutine may hold its worker before the others are handed\n"
         "                       to another OS thread, in microseconds (COHOOK_HANDOFF_US)\n"
         "  -h, --help           this text\n"
         "  -V, --version        the version, and the libhook.so this command preloads\n"
         "\n"
         "Exit status: the program's own; 125 for an error of cohook itself; 126 when the program\n"
         "cannot be run (not executable, or out of the preload's reach: static, set-ID, another\n"
         "architecture); 127 when it is not found. See cohook(1).\n",
         usage_line);
}

/* A usage error: one line saying what is wrong, then the usage line; status 125. */
static _Noreturn void usage_error(const char *what, const char *problem) {
  fprintf(stderr, "cohook: %s: %s; see cohook --help\n%s\n", what, problem, usage_line);
  exit(CMD_EXIT_OWN);
}

static _Noreturn void die(const char *what, const char *problem, const char *todo) {
  fprintf(stderr, "cohook: %s: %s; %s\n", what, problem, todo);
  exit(CMD_EXIT_OWN);
}

static void set_knob(const char *name, const char *value) {
  if (setenv(name, value, 1) != 0) die(name, strerror(errno), "shorten the environment");
}

/* --stats=FILE: made absolute here, so a program that changes directory writes where the user meant. */
static void set_stats_file(const char *file) {
  if (!*file) usage_error("--stats=", "empty file name; use --stats for stderr or --stats=FILE");
  if (file[0] == '/') {
    set_knob("COHOOK_STATS", file);
    return;
  }
  char cwd[PATH_MAX], abs[PATH_MAX * 2];
  if (!getcwd(cwd, sizeof cwd)) die("--stats", strerror(errno), "give FILE as an absolute path");
  snprintf(abs, sizeof abs, "%s/%s", strcmp(cwd, "/") == 0 ? "" : cwd, file);
  set_knob("COHOOK_STATS", abs);
}

/* An LD_PRELOAD entry (separated by spaces or colons, as the loader reads it) that names a
 * libhook.so other than ours: two runtimes in one process would fight over every hooked call. */
static void refuse_other_hook(const char *old, const char *ours) {
  for (const char *p = old; *p;) {
    size_t n = strcspn(p, " :");
    char entry[PATH_MAX];
    if (n > 0 && n < sizeof entry) {
      memcpy(entry, p, n);
      entry[n] = '\0';
      const char *base = strrchr(entry, '/');
      base = base ? base + 1 : entry;
      char *real = strcmp(base, "libhook.so") == 0 ? realpath(entry, NULL) : NULL;
      if (real && strcmp(real, ours) != 0) {
        char what[PATH_MAX + 32];
        snprintf(what, sizeof what, "LD_PRELOAD has %s", entry);
        die(what, "a second cohook runtime in one process cannot work",
            "unset LD_PRELOAD, or use the cohook command of that build");
      }
      free(real);
    }
    p += n;
    p += strspn(p, " :");
  }
}

/* Ours first, what was there after it: an allocator preloaded after libhook.so is the supported
 * order (see README). Nested cohook commands do not add it twice. */
static void set_preload(const char *lib) {
  if (strpbrk(lib, " :"))
    die(lib, "the path contains a space or a colon, which LD_PRELOAD cannot express",
        "install cohook under another directory");
  const char *old = getenv("LD_PRELOAD");
  if (!old || !*old) {
    set_knob("LD_PRELOAD", lib);
    return;
  }
  refuse_other_hook(old, lib);
  size_t n = strlen(lib);
  if (strncmp(old, lib, n) == 0 && (old[n] == '\0' || old[n] == ' ' || old[n] == ':')) return;
  char *v;
  if (asprintf(&v, "%s:%s", lib, old) < 0) die("LD_PRELOAD", "out of memory", "free some memory");
  set_knob("LD_PRELOAD", v);
  free(v);
}

enum { OPT_STACK = 256, OPT_THREADS, OPT_TLS, OPT_STATS, OPT_LOG, OPT_TRACE, OPT_HANDOFF };

int main(int argc, char **argv) {
  static const struct option longopts[] = {
      {"workers", required_argument, NULL, 'w'},     {"stack", required_argument, NULL, OPT_STACK},
      {"threads", required_argument, NULL, OPT_THREADS}, {"tls", required_argument, NULL, OPT_TLS},
      {"stats", optional_argument, NULL, OPT_STATS}, {"log", required_argument, NULL, OPT_LOG},
      {"trace", required_argument, NULL, OPT_TRACE}, {"handoff-us", required_argument, NULL, OPT_HANDOFF},
      {"help", no_argument, NULL, 'h'},              {"version", no_argument, NULL, 'V'},
      {NULL, 0, NULL, 0},
  };
  /* Knob values are applied only once the program has been found and judged runnable. */
  const char *knob[OPT_HANDOFF + 1] = {0};
  const char *stats_file = NULL;
  int want_stats = 0, want_version = 0;
  opterr = 0; /* our own messages, in our format */
  int c;
  /* "+": options end at the program's name, so its own options stay its own. */
  while ((c = getopt_long(argc, argv, "+:w:hV", longopts, NULL)) != -1) {
    switch (c) {
      case 'w': knob['w'] = optarg; break;
      case OPT_STACK: case OPT_THREADS: case OPT_TLS: case OPT_LOG: case OPT_TRACE: case OPT_HANDOFF:
        knob[c] = optarg;
        break;
      case OPT_STATS: want_stats = 1; stats_file = optarg; break;
      case 'h': help(); return 0;
      case 'V': want_version = 1; break;
      case ':': usage_error(argv[optind - 1], "needs a value");
      default: {
        char opt[3] = {'-', (char)optopt, '\0'};
        usage_error(optopt ? opt : argv[optind - 1], "unknown option");
      }
    }
  }

  struct cmd_elf_id lib_id;
  char searched[PATH_MAX * 2];
  char *lib = cmd_find_libhook(&lib_id, searched, sizeof searched);
  if (want_version) {
    printf("cohook %s\n", COHOOK_VERSION);
    if (lib) printf("libhook.so: %s\n", lib);
    else printf("libhook.so: not found (searched %s)\n", searched);
    free(lib);
    return 0;
  }
  if (!lib) {
    char problem[sizeof searched + 32];
    snprintf(problem, sizeof problem, "not found in %s", searched);
    die("libhook.so", problem, "reinstall cohook, or run the cohook command of the build that made it");
  }
  if (optind >= argc) usage_error("program", "missing");

  char **prog_argv = argv + optind;
  int status = 0;
  char *path = cmd_resolve(prog_argv[0], &status);
  if (!path) {
    free(lib);
    return status;
  }
  status = cmd_check_preloadable(prog_argv[0], path, &lib_id);
  if (status) {
    free(path);
    free(lib);
    return status;
  }

  static const struct { int opt; const char *env; } map[] = {
      {'w', "COHOOK_WORKERS"}, {OPT_STACK, "COHOOK_STACK_SIZE"}, {OPT_THREADS, "COHOOK_THREADS"},
      {OPT_TLS, "COHOOK_TLS"}, {OPT_LOG, "COHOOK_LOG"},          {OPT_TRACE, "COHOOK_TRACE"},
      {OPT_HANDOFF, "COHOOK_HANDOFF_US"},
  };
  for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
    if (knob[map[i].opt]) set_knob(map[i].env, knob[map[i].opt]);
  if (want_stats) {
    if (stats_file) set_stats_file(stats_file);
    else set_knob("COHOOK_STATS", "1");
  }
  set_preload(lib);

  execv(path, prog_argv);
  int err = errno;
  if (err == ENOEXEC) {
    /* Neither ELF nor #!: a shell script without its #! line, which execvp runs with /bin/sh. */
    char **sh_argv = calloc((size_t)(argc - optind) + 2, sizeof *sh_argv);
    if (sh_argv) {
      sh_argv[0] = "/bin/sh";
      sh_argv[1] = path;
      for (int i = 1; i < argc - optind; i++) sh_argv[i + 1] = prog_argv[i];
      execv("/bin/sh", sh_argv);
      err = errno;
    }
  }
  fprintf(stderr, "cohook: %s: %s; check the program (and its interpreter or loader)\n", prog_argv[0],
          strerror(err));
  free(path);
  free(lib);
  return err == ENOENT ? CMD_EXIT_NOT_FOUND : CMD_EXIT_CANNOT_RUN;
}
