/*
 * upcall.c — the one table of calls from the runtime back into the hook layer (platform.h).
 */
#include "internal.h"

const struct ch_upcalls *ch_upcalls;

void ch_upcalls_register(const struct ch_upcalls *up) {
  CH_ASSERT(ch_upcalls == NULL || ch_upcalls == up); /* one registration per process */
  ch_upcalls = up;
}
