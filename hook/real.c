/*
 * real.c — resolve libc's own definitions of everything we intercept, once, at load.
 */
#include "hook.h"

struct ch_real ch_real;

void ch_real_init(void) {
#define CH_RESOLVE(n) ch_real.n = (__typeof__(n) *)dlsym(RTLD_NEXT, #n);
  CH_REAL_LIST(CH_RESOLVE)
#undef CH_RESOLVE
}

__attribute__((constructor(101))) static void ch_real_ctor(void) {
  if (!ch_real.read) ch_real_init();
}
