/*
 * sanitize.h — ASan and valgrind annotations, compiled away when neither is in use.
 *
 * Both tools track "the current stack" of a thread; a coroutine switch moves the stack pointer into
 * another mapping, which they would take for stack corruption or a gigantic frame. We tell them:
 * ASan through its fiber API around every switch, valgrind by registering each stack once.
 */
#ifndef CH_SANITIZE_H
#define CH_SANITIZE_H

#include <stddef.h>

#if defined(__SANITIZE_ADDRESS__)
#define CH_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CH_ASAN 1
#endif
#endif

#ifdef CH_ASAN
void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom, size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save, const void **bottom_old, size_t *size_old);
void __asan_unpoison_memory_region(void const volatile *addr, size_t size);
#define CH_ASAN_UNPOISON(p, n) __asan_unpoison_memory_region((p), (n))
#else
#define CH_ASAN_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#ifdef CH_HAVE_VALGRIND
#include <valgrind/valgrind.h>
#define CH_VG_STACK_REGISTER(lo, hi) VALGRIND_STACK_REGISTER((lo), (hi))
#define CH_VG_STACK_DEREGISTER(id) VALGRIND_STACK_DEREGISTER(id)
#define CH_ON_VALGRIND() RUNNING_ON_VALGRIND
#else
#define CH_VG_STACK_REGISTER(lo, hi) ((void)(lo), (void)(hi), 0u)
#define CH_VG_STACK_DEREGISTER(id) ((void)(id))
#define CH_ON_VALGRIND() 0
#endif

#endif /* CH_SANITIZE_H */
