/*
 * real.c — resolve libc's own definitions of everything we intercept, once, at load; and give the
 * runtime its platform table (runtime/platform.h) built from them, since in the preload the plain
 * names are our own hooks.
 */
#include "hook.h"

struct ch_real ch_real;
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
  };
  /* Last: ch_plat() takes a non-NULL thread_create as "filled". */
  __atomic_store_n(&ch_platform.thread_create, ch_real.pthread_create, __ATOMIC_RELEASE);
}

static const struct ch_upcalls upcalls = {
    .run_handler = ch_hook_run_handler,
};

/* Priority 101: before the program's and other libraries' ordinary constructors, which may already
 * call hooked functions. */
__attribute__((constructor(101))) static void ch_real_ctor(void) {
  ch_platform_fill();
  ch_upcalls_register(&upcalls);
}
