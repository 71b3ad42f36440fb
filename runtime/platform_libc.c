/*
 * platform_libc.c — the platform table for products with nothing interposed (libcohook.so and the
 * static runtime the unit tests link): the plain libc functions. libhook.so links hook/real.c
 * instead, never this file (in the preload these names are our own hooks).
 */
#include "internal.h"

struct ch_platform ch_platform;

void ch_platform_fill(void) {
  ch_platform = (struct ch_platform){
      .sigaction = sigaction,
      .mutex_lock = pthread_mutex_lock,
      .mutex_trylock = pthread_mutex_trylock,
      .mutex_timedlock = pthread_mutex_timedlock,
      .mutex_clocklock = pthread_mutex_clocklock,
      .mutex_unlock = pthread_mutex_unlock,
      .cond_wait = pthread_cond_wait,
      .cond_clockwait = pthread_cond_clockwait,
      .cond_signal = pthread_cond_signal,
      .cond_broadcast = pthread_cond_broadcast,
      .barrier_wait = pthread_barrier_wait,
      .sem_wait = sem_wait,
      .sem_trywait = sem_trywait,
      .sem_clockwait = sem_clockwait,
      .key_create = pthread_key_create,
      .flockfile = flockfile,
      .funlockfile = funlockfile,
      .thread_exit = pthread_exit,
      .setspecific = pthread_setspecific,
      .clock_gettime = clock_gettime,
  };
  /* Last: ch_plat() takes a non-NULL thread_create as "filled". */
  __atomic_store_n(&ch_platform.thread_create, pthread_create, __ATOMIC_RELEASE);
}
