/*
 * real.c — resolve libc's own definitions of everything we intercept, once, at load; and give the
 * runtime its platform table (runtime/platform.h) built from them, since in the preload the plain
 * names are our own hooks.
 */
#include <link.h>

#include "hook.h"

struct ch_real ch_real;
uintptr_t ch_alloc_lo, ch_alloc_hi;
struct ch_platform ch_platform;

void ch_real_init(void) {
#define CH_RESOLVE(n) ch_real.n = (__typeof__(n) *)dlsym(RTLD_NEXT, #n);
  CH_REAL_LIST(CH_RESOLVE)
#undef CH_RESOLVE
}

void ch_platform_fill(void) {
  if (!ch_real.read) ch_real_init();
  ch_platform = (struct ch_platform){
      .interposed = true,
      .sigaction = ch_real.sigaction,
      .mutex_lock = ch_real.pthread_mutex_lock,
      .mutex_trylock = ch_real.pthread_mutex_trylock,
      .mutex_timedlock = ch_real.pthread_mutex_timedlock,
      .mutex_clocklock = ch_real.pthread_mutex_clocklock,
      .mutex_unlock = ch_real.pthread_mutex_unlock,
      .cond_wait = ch_real.pthread_cond_wait,
      .cond_clockwait = ch_real.pthread_cond_clockwait,
      .cond_signal = ch_real.pthread_cond_signal,
      .cond_broadcast = ch_real.pthread_cond_broadcast,
      .barrier_wait = ch_real.pthread_barrier_wait,
      .sem_wait = ch_real.sem_wait,
      .sem_trywait = ch_real.sem_trywait,
      .sem_clockwait = ch_real.sem_clockwait,
      .key_create = ch_real.pthread_key_create,
      .flockfile = ch_real.flockfile,
      .funlockfile = ch_real.funlockfile,
      .thread_exit = ch_real.pthread_exit,
      .setspecific = ch_real.pthread_setspecific,
      .clock_gettime = ch_real.clock_gettime,
  };
  /* Last: ch_plat() takes a non-NULL thread_create as "filled". */
  __atomic_store_n(&ch_platform.thread_create, ch_real.pthread_create, __ATOMIC_RELEASE);
}

/* The program's allocator, when it is not libc's own (jemalloc, tcmalloc, a wrapper preloaded after
 * us): the address range of the object that defines malloc. Its pthread mutexes are taken with the
 * allocator's per-thread state half-updated (jemalloc's thread cache lives in initial-exec TLS, which
 * is the worker's, shared by every coroutine on it); a coroutine that parked there would let another
 * coroutine of the same worker into that state. So a lock taken from inside the allocator never
 * parks: it waits as glibc's own internal locks do, on the OS thread (hook/sync.c). */
static int find_alloc(struct dl_phdr_info *info, size_t size, void *data) {
  (void)size;
  uintptr_t a = (uintptr_t)data;
  uintptr_t lo = UINTPTR_MAX, hi = 0;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
    uintptr_t s = info->dlpi_addr + ph->p_vaddr, e = s + ph->p_memsz;
    if (s < lo) lo = s;
    if (e > hi) hi = e;
  }
  if (a < lo || a >= hi) return 0;
  if (!strstr(info->dlpi_name, "/libc.so")) ch_alloc_lo = lo, ch_alloc_hi = hi;
  return 1;
}

static void find_allocator(void) {
  void *m = dlsym(RTLD_DEFAULT, "malloc");
  if (m) dl_iterate_phdr(find_alloc, m);
}

static const struct ch_upcalls upcalls = {
    .run_handler = ch_hook_run_handler,
    .intr_signal = ch_hook_intr_signal,
    .sig_restarts = ch_sig_restarts,
};

/* Priority 101: before the program's and other libraries' ordinary constructors, which may already
 * call hooked functions. */
__attribute__((constructor(101))) static void ch_real_ctor(void) {
  ch_platform_fill();
  ch_upcalls_register(&upcalls);
  find_allocator();
}
