/*
 * tls.c — a coroutine's own glibc thread identity (the life of a block is in tls.h).
 *
 * We let glibc do what it does for its own threads and only fill in what nptl's pthread_create fills:
 *  - ld.so's GLIBC_PRIVATE TLS allocator, the one nptl uses (elf/dl-tls.c): _dl_get_tls_static_info
 *    (size and alignment of the static TLS area, TCB included), _dl_allocate_tls (calloc a DTV, copy
 *    each module's initial image: nptl/allocatestack.c), _dl_allocate_tls_init (re-initialise: nptl's
 *    stack cache, get_cached_stack) and _dl_deallocate_tls (free the DTV and dlopened modules' TLS).
 *  - libthread_db's descriptors, which libc exports for debuggers (nptl_db/db_info.c, structs.def):
 *    uint32 {size in bits, count, offset} for fields of struct pthread, so the struct's private layout
 *    is never hard-coded here. The few fields they do not describe are derived from described
 *    neighbours, each derivation cross-checked against another descriptor or the running thread.
 *  - The head of x86-64's tcbhead_t, which is ABI (compilers read %fs:0x28; see struct x86_tcbhead).
 * Every one of them is a weak reference — the runtime never calls dlsym — so a C library without them
 * still loads us, and ch_tls_probe answers -ENOTSUP.
 *
 * glibc 2.36 sources quoted below as file:line are those of the release/2.36 branch.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "tls.h"

#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <linux/futex.h>
#include <locale.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <unistd.h>
#include <unwind.h>

#include <resolv.h>
#undef p_type /* resolv.h renames p_type (a resolver function) — and with it ElfW(Phdr)'s field */

#include "sanitize.h"

/* ---- what we take from glibc (weak: NULL when absent) ------------------------------------------ */

#define CH_WEAK __attribute__((weak))
extern void _dl_get_tls_static_info(size_t *size, size_t *align) CH_WEAK;
extern void *_dl_allocate_tls(void *tcb) CH_WEAK;
/* 2.35+ has the init_tls flag (elf/dl-tls.c:563); earlier ones take one argument, and an extra
 * register argument is harmless in both calling conventions we support. */
extern void *_dl_allocate_tls_init(void *tcb, bool init_tls) CH_WEAK;
extern void _dl_deallocate_tls(void *tcb, bool dealloc_tcb) CH_WEAK;
extern void __call_tls_dtors(void) CH_WEAK;
extern void __ctype_init(void) CH_WEAK;
extern void *__libc_stack_end CH_WEAK;
extern const ptrdiff_t __rseq_offset CH_WEAK; /* ld.so, 2.35+: tp-relative offset of rseq_area */
/* libc's per-thread resolver state pointer (resolv/res_libc.c:94); nptl points it at the new thread's
 * own state in start_thread (nptl/pthread_create.c:365). Initial-exec like libc's own accesses. */
extern __thread struct __res_state *__resp __attribute__((weak, tls_model("initial-exec")));

extern const uint32_t _thread_db_sizeof_pthread CH_WEAK;
extern const uint32_t _thread_db_sizeof_pthread_key_data CH_WEAK;
extern const uint32_t _thread_db_sizeof_pthread_key_data_level2 CH_WEAK;
extern const uint32_t _thread_db_pthread_list[3] CH_WEAK;
extern const uint32_t _thread_db_pthread_tid[3] CH_WEAK;
extern const uint32_t _thread_db_pthread_cancelhandling[3] CH_WEAK;
extern const uint32_t _thread_db_pthread_specific[3] CH_WEAK;
extern const uint32_t _thread_db_pthread_report_events[3] CH_WEAK;
extern const uint32_t _thread_db_pthread_nextevent[3] CH_WEAK;
extern const uint32_t _thread_db_dtv_dtv[3] CH_WEAK;
extern const uint32_t _thread_db_dtv_t_counter[3] CH_WEAK;
extern const uint32_t _thread_db_dtv_t_pointer_val[3] CH_WEAK;
#if defined(__x86_64__)
extern const uint32_t _thread_db_pthread_dtvp[3] CH_WEAK; /* only where the TCB is at TP */
#endif
/* The loader's slotinfo list (which module holds which TLS module id, loaded in which generation)
 * and link_map's static TLS offset: what libthread_db reads to find a thread's TLS. For
 * ch_tls_block_sync only. */
extern char _rtld_global[] CH_WEAK;
extern const uint32_t _thread_db_rtld_global__dl_tls_dtv_slotinfo_list[3] CH_WEAK;
extern const uint32_t _thread_db_dtv_slotinfo_list_len[3] CH_WEAK;
extern const uint32_t _thread_db_dtv_slotinfo_list_next[3] CH_WEAK;
extern const uint32_t _thread_db_dtv_slotinfo_list_slotinfo[3] CH_WEAK;
extern const uint32_t _thread_db_sizeof_dtv_slotinfo CH_WEAK;
extern const uint32_t _thread_db_dtv_slotinfo_gen[3] CH_WEAK;
extern const uint32_t _thread_db_dtv_slotinfo_map[3] CH_WEAK;
extern const uint32_t _thread_db_link_map_l_tls_modid[3] CH_WEAK;
extern const uint32_t _thread_db_link_map_l_tls_offset[3] CH_WEAK;

/* glibc's dtv_t (sysdeps/generic/dl-dtv.h); the descriptors above confirm its size and field offsets.
 * The DTV pointer in the TCB points at dtv[0] (generation); dtv[-1].counter is its length. */
typedef union {
  size_t counter;
  struct {
    void *val;
    void *to_free;
  } pointer;
} ch_dtv_t;

#if defined(__x86_64__)
/* The start of glibc's tcbhead_t (sysdeps/x86_64/nptl/tls.h:45), which is also the start of struct
 * pthread: x86-64 puts the TCB at the thread pointer, static TLS below it. */
struct x86_tcbhead {
  void *tcb;               /* %fs:0 — the TCB's address; compiled code gets the thread pointer here */
  void *dtv;
  void *self;              /* THREAD_SELF, pthread_self() */
  int multiple_threads;    /* SINGLE_THREAD_P: 0 would make malloc skip its arena locks */
  int gscope_flag;
  uintptr_t sysinfo;
  uintptr_t stack_guard;   /* %fs:0x28, -fstack-protector's canary */
  uintptr_t pointer_guard; /* %fs:0x30, PTR_MANGLE: jmp_bufs, atexit handlers */
  unsigned long unused_vgetcpu_cache[2];
  unsigned int feature_1;  /* CET state */
};
_Static_assert(offsetof(struct x86_tcbhead, dtv) == 0x08, "tcbhead_t.dtv");
_Static_assert(offsetof(struct x86_tcbhead, stack_guard) == 0x28, "tcbhead_t.stack_guard");
_Static_assert(offsetof(struct x86_tcbhead, pointer_guard) == 0x30, "tcbhead_t.pointer_guard");
_Static_assert(offsetof(struct x86_tcbhead, feature_1) == 0x48, "tcbhead_t.feature_1");
#ifndef HWCAP2_FSGSBASE
#define HWCAP2_FSGSBASE (1ul << 1)
#endif
#define DTV_AT_TP 8 /* tp + 8: header.dtv */
#elif defined(__aarch64__)
/* aarch64 puts a two-word tcbhead_t {dtv, private} at the thread pointer, struct pthread right below
 * it (TLS_PRE_TCB_SIZE) and the static TLS above (sysdeps/aarch64/nptl/tls.h). The stack and pointer
 * guards are globals there, not TCB words. */
#define DTV_AT_TP 0
#endif

/* ---- the layout, learned once by the probe --------------------------------------------------------- */

/* What the per-block extension area holds: state glibc keeps per thread that we cannot leave at
 * libc's initial image. It sits below the static TLS, inside the block. */
struct ch_tls_ext {
  struct __res_state res; /* this thread's resolver state (glibc: struct pthread's res) */
  uint32_t magic;
  uint32_t state;         /* EXT_LIVE from (re)init to exit, then EXT_EXITED */
  size_t gen;             /* static TLS here is initialised for modules of load generation <= gen */
  unsigned long long adds; /* dl_iterate_phdr's load count at the last ch_tls_block_sync */
};
#define EXT_MAGIC 0x746c7362u /* "tlsb" */
enum { EXT_LIVE = 1, EXT_EXITED = 2 };

#define LIBC_TLS_MAX 1024 /* libc's TLS module is saved on the stack across a reuse (2.36: 144 bytes) */
#define RSEQ_CPU_ID_REGISTRATION_FAILED (-2)

struct tls_layout {
  size_t static_size, static_align; /* _dl_get_tls_static_info: the static TLS area and its alignment */
  size_t tcb_size;                  /* sizeof (struct pthread) */
  size_t lo, hi;                    /* block bytes below the thread pointer, and from it up */
  size_t size;                      /* what ch_tls_block_size() reports */
  size_t pd_rel;                    /* struct pthread = tp - pd_rel */
  size_t level2;                    /* bytes of specific_1stblock (PTHREAD_KEY_2NDLEVEL_SIZE entries) */
  /* offsets in struct pthread */
  uint32_t off_list, off_tid, off_robust_prev, off_robust_head, off_cleanup, off_cancel, off_1stblock,
      off_specific, off_specific_used, off_report_events, off_user_stack, off_rseq, off_stackblock,
      off_tls_state;
  ptrdiff_t libc_rel; /* libc's own TLS module at tp + libc_rel, libc_size bytes */
  size_t libc_size;
  /* ch_tls_block_sync: offsets in rtld_global, dtv_slotinfo_list, dtv_slotinfo, link_map */
  uint32_t si_list, si_len, si_next, si_array, si_size, si_gen, si_map, lm_modid, lm_offset;
  bool have_rseq, have_resp, have_stack, have_tls_state, have_sync;
  bool tp_syscall;
  const char *mode;
};

static struct tls_layout L;
/* 0 not probed, 1 being probed, 2 usable, 3 unavailable; L and probe_why are written before 2/3. */
static _Atomic int probe_state;
static const char *probe_why;
int ch_tls_tp_syscall;

static inline size_t round_up(size_t n, size_t a) { return (n + a - 1) & ~(a - 1); }
static inline struct ch_tls_ext *ext_of(void *tp) { return (struct ch_tls_ext *)((char *)tp - L.lo); }
static inline char *pd_of(void *tp) { return (char *)tp - L.pd_rel; }
static inline ch_dtv_t *dtv_of(void *tp) { return *(ch_dtv_t **)((char *)tp + DTV_AT_TP); }
static inline void put_ptr(char *p, const void *v) { memcpy(p, &v, sizeof v); }
static inline void *get_ptr(const char *p) { void *v; memcpy(&v, p, sizeof v); return v; }
static inline void put_u32(char *p, uint32_t v) { memcpy(p, &v, sizeof v); }
static inline uint32_t get_u32(const char *p) { uint32_t v; memcpy(&v, p, sizeof v); return v; }

static int fail(const char **why, const char *msg) {
  if (why) *why = msg;
  return -ENOTSUP;
}

/* A scalar field descriptor: {bits, 1, offset}. */
static bool desc_is(const uint32_t *d, uint32_t bits) { return d != NULL && d[0] == bits && d[1] == 1; }

struct libc_find {
  const char *errno_addr;
  const char *data;
  size_t memsz;
};

static int find_libc_tls(struct dl_phdr_info *info, size_t n, void *arg) {
  (void)n;
  struct libc_find *f = arg;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    const char *data = info->dlpi_tls_data;
    if (ph->p_type == PT_TLS && data != NULL && f->errno_addr >= data && f->errno_addr < data + ph->p_memsz) {
      f->data = data;
      f->memsz = ph->p_memsz;
      return 1;
    }
  }
  return 0;
}

/* Everything the probe checks, into *l; no side effects. */
static int probe_into(struct tls_layout *l, unsigned long hwcap2, bool on_valgrind, const char **why) {
  memset(l, 0, sizeof *l);
#if defined(__x86_64__)
  if (on_valgrind) {
    l->tp_syscall = true;
    l->mode = "arch_prctl(ARCH_SET_FS): valgrind has no wrfsbase";
  } else if (hwcap2 & HWCAP2_FSGSBASE) {
    l->mode = "wrfsbase";
  } else {
    return fail(why, "no FSGSBASE (AT_HWCAP2): switching the thread pointer would cost a syscall");
  }
#else
  (void)hwcap2, (void)on_valgrind;
  l->mode = "msr tpidr_el0";
#endif
  if (!_dl_get_tls_static_info || !_dl_allocate_tls || !_dl_allocate_tls_init || !_dl_deallocate_tls)
    return fail(why, "ld.so lacks _dl_allocate_tls & co (GLIBC_PRIVATE): not a glibc we can drive");
  if (!__call_tls_dtors || !__ctype_init)
    return fail(why, "libc lacks __call_tls_dtors / __ctype_init (GLIBC_PRIVATE)");
  if (!&_thread_db_sizeof_pthread || !&_thread_db_sizeof_pthread_key_data ||
      !&_thread_db_sizeof_pthread_key_data_level2)
    return fail(why, "libc lacks libthread_db's struct pthread descriptors (_thread_db_*)");

  /* Sizes. */
  _dl_get_tls_static_info(&l->static_size, &l->static_align);
  l->tcb_size = _thread_db_sizeof_pthread;
  size_t a = l->static_align;
  if (a < 16 || a > 4096 || (a & (a - 1)) != 0) return fail(why, "implausible static TLS alignment");
  if (l->tcb_size < 1024 || l->tcb_size > 65536 || l->tcb_size % 16 != 0)
    return fail(why, "implausible sizeof (struct pthread)");
  if (l->static_size > (16u << 20)) return fail(why, "implausible static TLS size");
#if defined(__x86_64__)
  if (l->static_size < l->tcb_size + 64 || (l->static_size - l->tcb_size) % a != 0)
    return fail(why, "static TLS size does not include the TCB as expected");
#endif

  /* The DTV: dtv_t is {counter} | {val, to_free}, and on x86-64 the TCB's dtv word is at 8. */
  if (!desc_is(_thread_db_dtv_t_counter, 8 * sizeof(size_t)) || _thread_db_dtv_t_counter[2] != 0 ||
      !desc_is(_thread_db_dtv_t_pointer_val, 8 * sizeof(void *)) || _thread_db_dtv_t_pointer_val[2] != 0 ||
      _thread_db_dtv_dtv == NULL || _thread_db_dtv_dtv[0] != 8 * sizeof(ch_dtv_t))
    return fail(why, "glibc's dtv_t is not {counter} | {val, to_free}");
#if defined(__x86_64__)
  if (!desc_is(_thread_db_pthread_dtvp, 8 * sizeof(void *)) || _thread_db_pthread_dtvp[2] != DTV_AT_TP)
    return fail(why, "the TCB's DTV pointer is not at %fs:8");
#endif

  /* struct pthread (nptl/descr.h), field by field, in declaration order:
   *   ... list_t list; pid_t tid; void *robust_prev; struct robust_list_head robust_head;
   *   struct _pthread_cleanup_buffer *cleanup; struct pthread_unwind_buf *cleanup_jmp_buf;
   *   int cancelhandling; int flags; struct pthread_key_data specific_1stblock[32];
   *   struct pthread_key_data *specific[32]; bool specific_used, report_events, user_stack, ... */
  if (!desc_is(_thread_db_pthread_list, 8 * 2 * sizeof(void *)) || !desc_is(_thread_db_pthread_tid, 32) ||
      !desc_is(_thread_db_pthread_cancelhandling, 32) || !desc_is(_thread_db_pthread_report_events, 8) ||
      !desc_is(_thread_db_pthread_nextevent, 8 * sizeof(void *)) || _thread_db_pthread_specific == NULL ||
      _thread_db_pthread_specific[1] != 1 || _thread_db_pthread_specific[0] % (8 * sizeof(void *)) != 0)
    return fail(why, "unexpected libthread_db descriptors for struct pthread");
  l->off_list = _thread_db_pthread_list[2];
  l->off_tid = _thread_db_pthread_tid[2];
  l->off_robust_prev = (uint32_t)round_up(l->off_tid + sizeof(pid_t), sizeof(void *));
  l->off_robust_head = l->off_robust_prev + (uint32_t)sizeof(void *);
  l->off_cleanup = l->off_robust_head + (uint32_t)sizeof(struct robust_list_head);
  l->off_cancel = _thread_db_pthread_cancelhandling[2];
  l->level2 = _thread_db_sizeof_pthread_key_data_level2;
  l->off_specific = _thread_db_pthread_specific[2];
  l->off_1stblock = l->off_cancel + 2 * (uint32_t)sizeof(int);
  l->off_specific_used = l->off_specific + _thread_db_pthread_specific[0] / 8;
  l->off_report_events = _thread_db_pthread_report_events[2];
  l->off_user_stack = l->off_report_events + 1;
  if (l->off_list + 2 * sizeof(void *) != l->off_tid ||
      l->off_cleanup + 2 * sizeof(void *) != l->off_cancel ||
      l->off_1stblock + l->level2 != l->off_specific || l->off_specific_used + 1 != l->off_report_events ||
      _thread_db_sizeof_pthread_key_data != 2 * sizeof(void *) ||
      l->level2 % _thread_db_sizeof_pthread_key_data != 0)
    return fail(why, "struct pthread's fields are not where glibc 2.3x keeps them");
  if (l->off_user_stack >= l->tcb_size) return fail(why, "struct pthread descriptors out of range");

#if defined(__x86_64__)
  l->pd_rel = 0;
#else
  l->pd_rel = l->tcb_size;
#endif

  /* Check the layout against the thread we run on: it must be a glibc thread on its own TLS. */
  char *cur_tp = ch_tls_get_tp();
  char *cur_pd = cur_tp - l->pd_rel;
  long tid = ch_sys(SYS_gettid, 0, 0, 0);
#if defined(__x86_64__)
  const struct x86_tcbhead *h = (const void *)cur_pd;
  if (h->tcb != cur_tp || h->self != cur_tp)
    return fail(why, "the thread pointer does not point at a glibc TCB");
#endif
  if ((long)(int)get_u32(cur_pd + l->off_tid) != tid)
    return fail(why, "struct pthread.tid does not hold this thread's tid");
  void *head = NULL;
  size_t head_len = 0;
  long rc = ch_sys(SYS_get_robust_list, 0, &head, &head_len);
  if (rc == 0 && head != NULL && head != cur_pd + l->off_robust_head)
    return fail(why, "the kernel's robust list head is not struct pthread.robust_head (probe on an OS "
                     "thread's own TLS)");

  /* rseq (2.35+): sched_getcpu reads rseq_area.cpu_id from the TCB (sysdeps/unix/sysv/linux/
   * sched_getcpu.c:37); __rseq_offset says where it is. */
  if (&__rseq_offset != NULL) {
    ptrdiff_t o = __rseq_offset + (ptrdiff_t)l->pd_rel;
    if (o < 0 || o % 32 != 0 || (size_t)o + 32 > l->tcb_size)
      return fail(why, "__rseq_offset does not point into struct pthread");
    l->off_rseq = (uint32_t)o;
    l->have_rseq = true;
  }

  /* stackblock follows nextevent and a struct _Unwind_Exception (nptl/descr.h). Only used for
   * ch_tls_block_set_stack, so a mismatch disables that rather than the module. Check it the way glibc
   * filled it: the initial thread has stackblock_size = __libc_stack_end (sysdeps/nptl/
   * dl-tls_init_tp.c), another thread's TCB lies inside its stackblock (nptl/allocatestack.c:378). */
  l->off_stackblock = (uint32_t)(round_up(_thread_db_pthread_nextevent[2] + sizeof(void *),
                                          _Alignof(struct _Unwind_Exception)) +
                                 sizeof(struct _Unwind_Exception));
  if (l->off_stackblock + 2 * sizeof(void *) <= l->tcb_size) {
    char *sb = get_ptr(cur_pd + l->off_stackblock);
    size_t sbs = (size_t)get_ptr(cur_pd + l->off_stackblock + sizeof(void *));
    if (tid == ch_sys(SYS_getpid, 0, 0, 0))
      l->have_stack = sb == NULL && &__libc_stack_end != NULL && sbs == (size_t)__libc_stack_end;
    else
      l->have_stack = sb != NULL && cur_pd >= sb && cur_pd < sb + sbs;
  }

  /* libc's own TLS module: kept across a reuse (malloc's tcache and arena live there). */
  struct libc_find f = {.errno_addr = (const char *)&errno};
  if (!dl_iterate_phdr(find_libc_tls, &f)) return fail(why, "cannot find libc's TLS module");
  l->libc_rel = f.data - cur_tp;
  l->libc_size = f.memsz;
  if (l->libc_size > LIBC_TLS_MAX) return fail(why, "libc's TLS module is larger than expected");
#if defined(__x86_64__)
  if (l->libc_rel >= 0 || (size_t)-l->libc_rel > l->static_size - l->tcb_size ||
      l->libc_rel + (ptrdiff_t)l->libc_size > 0)
    return fail(why, "libc's TLS is not in the static TLS block");
#else
  if (l->libc_rel < 0 || (size_t)l->libc_rel + l->libc_size > l->static_size)
    return fail(why, "libc's TLS is not in the static TLS block");
#endif
  /* __resp must be one of libc's TLS words (an absent weak TLS symbol resolves to garbage offsets). */
  ptrdiff_t resp_rel = (const char *)&__resp - cur_tp;
  l->have_resp = resp_rel >= l->libc_rel && resp_rel + sizeof(void *) <= l->libc_rel + l->libc_size &&
                 __resp == __res_state();

  /* ch_tls_block_sync needs the slotinfo list; without it blocks still work, sync says -ENOTSUP. */
  const uint32_t w = 8 * sizeof(void *);
  if (_rtld_global != NULL && desc_is(_thread_db_rtld_global__dl_tls_dtv_slotinfo_list, w) &&
      desc_is(_thread_db_dtv_slotinfo_list_len, w) && desc_is(_thread_db_dtv_slotinfo_list_next, w) &&
      _thread_db_dtv_slotinfo_list_slotinfo != NULL && &_thread_db_sizeof_dtv_slotinfo != NULL &&
      _thread_db_dtv_slotinfo_list_slotinfo[0] == 8 * _thread_db_sizeof_dtv_slotinfo &&
      desc_is(_thread_db_dtv_slotinfo_gen, w) && desc_is(_thread_db_dtv_slotinfo_map, w) &&
      desc_is(_thread_db_link_map_l_tls_modid, w) && desc_is(_thread_db_link_map_l_tls_offset, w)) {
    l->si_list = _thread_db_rtld_global__dl_tls_dtv_slotinfo_list[2];
    l->si_len = _thread_db_dtv_slotinfo_list_len[2];
    l->si_next = _thread_db_dtv_slotinfo_list_next[2];
    l->si_array = _thread_db_dtv_slotinfo_list_slotinfo[2];
    l->si_size = _thread_db_sizeof_dtv_slotinfo;
    l->si_gen = _thread_db_dtv_slotinfo_gen[2];
    l->si_map = _thread_db_dtv_slotinfo_map[2];
    l->lm_modid = _thread_db_link_map_l_tls_modid[2];
    l->lm_offset = _thread_db_link_map_l_tls_offset[2];
    l->have_sync = true;
  }

  /* The block: [ext][static TLS][struct pthread] on x86-64, [ext][struct pthread][tcbhead + TLS] on
   * aarch64; tp aligned to the static TLS alignment (the modules' offsets assume it). */
  size_t ext = round_up(sizeof(struct ch_tls_ext), 16);
#if defined(__x86_64__)
  l->lo = (l->static_size - l->tcb_size) + ext;
  l->hi = l->tcb_size;
#else
  l->lo = l->tcb_size + ext;
  l->hi = l->static_size;
#endif
  l->size = round_up(l->lo, a) + round_up(l->hi, a);
  if (why) *why = l->mode;
  return 0;
}

int ch_tls_probe_check(unsigned long hwcap2, bool on_valgrind, const char **why) {
  struct tls_layout l;
  return probe_into(&l, hwcap2, on_valgrind, why);
}

static void find_tls_state(void);

int ch_tls_probe(const char **why) {
  int st = atomic_load_explicit(&probe_state, memory_order_acquire);
  if (st < 2) {
    int expected = 0;
    if (atomic_compare_exchange_strong_explicit(&probe_state, &expected, 1, memory_order_acquire,
                                                memory_order_acquire)) {
      const char *w = NULL;
      int rc = probe_into(&L, getauxval(AT_HWCAP2), CH_ON_VALGRIND() != 0, &w);
      probe_why = w;
      ch_tls_tp_syscall = rc == 0 && L.tp_syscall;
      /* Not find_tls_state(): running code that allocates inside a scratch block registers per-thread
       * state with the program's allocator (jemalloc links each thread's tsd into a global list) that
       * nobody then unregisters, and the next thread's malloc crashes on the dangling entry. Without
       * it, a finalised block leaks strsignal/strerror's rare per-thread buffers (see block_fini). */
      (void)find_tls_state;
      atomic_store_explicit(&probe_state, rc == 0 ? 2 : 3, memory_order_release);
    }
    while ((st = atomic_load_explicit(&probe_state, memory_order_acquire)) < 2) {
#if defined(__x86_64__)
      __asm__ volatile("pause");
#else
      __asm__ volatile("yield");
#endif
    }
  }
  if (why) *why = probe_why;
  return st == 2 ? 0 : -ENOTSUP;
}

static bool usable(void) { return atomic_load_explicit(&probe_state, memory_order_acquire) == 2; }

size_t ch_tls_block_size(void) { return usable() ? L.size : 0; }
size_t ch_tls_block_align(void) { return usable() ? L.static_align : 0; }

/* ---- the block ----------------------------------------------------------------------------------- */

/* Fill the TCB words a new glibc thread has, the way nptl fills them, without touching the DTV
 * pointer (_dl_allocate_tls owns it) or fields glibc leaves to the thread (tls_state: strerror and
 * strsignal buffers, reused across a reuse as glibc reuses them). On a fresh block the rest is zero,
 * as in glibc's freshly mmapped stacks. */
static void tcb_setup(char *tp) {
  char *pd = pd_of(tp);
#if defined(__x86_64__)
  struct x86_tcbhead *h = (void *)pd;
  const struct x86_tcbhead *cur = (const void *)ch_tls_get_tp();
  h->tcb = tp;                            /* pthread_create.c:672 (TLS_TCB_AT_TP) */
  h->self = tp;                           /* pthread_create.c:669 */
  h->multiple_threads = 1;                /* allocatestack.c:413 "at least the second thread" */
  h->gscope_flag = 0;
  h->stack_guard = cur->stack_guard;      /* pthread_create.c:708 THREAD_COPY_STACK_GUARD */
  h->pointer_guard = cur->pointer_guard;  /* pthread_create.c:713 THREAD_COPY_POINTER_GUARD */
  h->feature_1 = cur->feature_1;          /* pthread_create.c:717, sysdeps/x86/nptl/tls-setup.h */
#else
  put_u32(pd, 1);                         /* header.multiple_threads (allocatestack.c:413) */
  put_u32(pd + sizeof(int), 0);           /* header.gscope_flag */
#endif
  /* list: linked to itself, on no list of glibc's. A fork() child's reclaim_stacks does list_del on
   * the forking thread's entry (sysdeps/nptl/fork.h:139), which must not follow NULL pointers. */
  put_ptr(pd + L.off_list, pd + L.off_list);
  put_ptr(pd + L.off_list + sizeof(void *), pd + L.off_list);
  put_u32(pd + L.off_tid, (uint32_t)ch_sys(SYS_gettid, 0, 0, 0));
  /* The robust mutex list, empty (allocatestack.c:548-555): glibc's robust and PI mutexes, taken in
   * this block, enqueue themselves here. The kernel only knows the OS thread's own list. */
  char *rh = pd + L.off_robust_head;
  long futex_offset = (long)offsetof(pthread_mutex_t, __data.__lock) -
                      (long)offsetof(pthread_mutex_t, __data.__list.__next);
  put_ptr(pd + L.off_robust_prev, rh);
  struct robust_list_head head = {.list = {.next = (struct robust_list *)rh}, .futex_offset = futex_offset,
                                  .list_op_pending = NULL};
  memcpy(rh, &head, sizeof head);
  /* cleanup, cleanup_jmp_buf, cancelhandling, flags: no handlers, cancellation enabled, not canceled
   * (get_cached_stack, allocatestack.c:122). */
  memset(pd + L.off_cleanup, 0, L.off_1stblock - L.off_cleanup);
  /* Thread-specific data as nptl sets it up (allocatestack.c:410): the first level-2 block inline. */
  memset(pd + L.off_1stblock, 0, L.level2);
  put_ptr(pd + L.off_specific, pd + L.off_1stblock);
  pd[L.off_specific_used] = 0;
  pd[L.off_report_events] = 0;
  /* user_stack: glibc must never cache or unmap this memory (allocatestack.c:292). */
  pd[L.off_user_stack] = 1;
  if (L.have_rseq) {
    /* Not registered with the kernel (the OS thread's own rseq_area is): cpu_id < 0 makes
     * sched_getcpu fall back to getcpu() (sched_getcpu.c:37) and tells rseq users "failed", as
     * rseq_register_current_thread does (sysdeps/unix/sysv/linux/rseq-internal.h:72). */
    char *r = pd + L.off_rseq;
    memset(r, 0, 32);
    put_u32(r + sizeof(uint32_t), (uint32_t)RSEQ_CPU_ID_REGISTRATION_FAILED);
  }
}

/* What start_thread does on the new thread before the user's function (pthread_create.c:364-368),
 * and what a reused block must reset in libc's TLS: it runs with the block installed. */
static void thread_start(void *arg) {
  struct ch_tls_ext *x = arg;
  errno = 0;
  h_errno = 0;
  uselocale(LC_GLOBAL_LOCALE); /* the locale a new thread starts with; also resets the ctype tables */
  __ctype_init();              /* start_thread's __ctype_init(): zero in a fresh block's libc TLS */
  if (L.have_resp) __resp = &x->res;
}

/* Run fn(arg) with tp installed on this OS thread, then put the previous thread pointer back. The call
 * goes through a volatile pointer so nothing TLS-derived is computed across the switch. */
static void run_on(void *tp, void (*fn)(void *), void *arg) {
  void (*volatile call)(void *) = fn;
  void *prev = ch_tls_get_tp();
  ch_tls_set_tp(tp);
  call(arg);
  ch_tls_set_tp(prev);
}

/* __res_thread_freeres (resolv/res-close.c:130): close the sockets of an initialised state. A zeroed
 * state must not be closed (its _vcsock 0 is stdin). Zero it for the next thread. */
static void resolver_close(struct ch_tls_ext *x) {
  if (x->res.nscount != 0) res_nclose(&x->res);
  memset(&x->res, 0, sizeof x->res);
}

static void *block_init(void *mem, size_t len) {
  uintptr_t lo = (uintptr_t)mem, top = lo + len;
  if (top < lo || len < L.lo + L.hi) return NULL;
  uintptr_t tpv = (top - L.hi) & ~(uintptr_t)(L.static_align - 1);
  if (tpv < lo + L.lo) return NULL;
  char *tp = (char *)tpv;
  memset(tp - L.lo, 0, L.lo + L.hi);
  tcb_setup(tp);
  /* DTV (calloc'd by glibc: allocate_dtv, dl-tls.c:390) and each module's initial image. */
  if (_dl_allocate_tls(tp) == NULL) return NULL;
  struct ch_tls_ext *x = ext_of(tp);
  x->magic = EXT_MAGIC;
  x->state = EXT_LIVE;
  x->gen = dtv_of(tp)[0].counter; /* _dl_allocate_tls_init: the newest module it initialised */
  run_on(tp, thread_start, x);
  return tp;
}

void *ch_tls_block_init(void *mem, size_t len) {
  if (!usable() || mem == NULL) return NULL;
  return block_init(mem, len);
}

/* At the thread's end, on the thread: start_thread's epilogue (pthread_create.c:446-456) minus what
 * the runtime does itself (pthread keys) and malloc's shutdown (kept for the next user). */
static void thread_exit(struct ch_tls_ext *x) {
  __call_tls_dtors(); /* C++ thread_local destructors, registered with __cxa_thread_atexit_impl */
  /* __libc_dlerror_result_free: an error nobody read would be the next thread's dlerror(). The first
   * call reports it, the second frees it. */
  (void)dlerror();
  (void)dlerror();
  resolver_close(x);
}

int ch_tls_block_exit(void *tp) {
  if (!usable() || tp == NULL || tp != ch_tls_get_tp()) return -EINVAL;
  struct ch_tls_ext *x = ext_of(tp);
  if (x->magic != EXT_MAGIC) return -EINVAL;
  void (*volatile call)(struct ch_tls_ext *) = thread_exit;
  call(x);
  x->state = EXT_EXITED;
  return 0;
}

int ch_tls_block_reuse(void *tp) {
  if (!usable() || tp == NULL) return -EINVAL;
  struct ch_tls_ext *x = ext_of(tp);
  if (x->magic != EXT_MAGIC) return -EINVAL;
  if (x->state != EXT_EXITED || tp == ch_tls_get_tp()) return -EBUSY;
  char keep[LIBC_TLS_MAX];
  memcpy(keep, (char *)tp + L.libc_rel, L.libc_size);
  /* As get_cached_stack (allocatestack.c:133-140): free dlopened modules' dynamic TLS, clear the DTV,
   * and let the loader copy every module's initial image again. */
  ch_dtv_t *dtv = dtv_of(tp);
  size_t n = dtv[-1].counter;
  for (size_t i = 0; i < n; i++) free(dtv[1 + i].pointer.to_free);
  memset(dtv, 0, (n + 1) * sizeof *dtv);
  _dl_allocate_tls_init(tp, true);
  /* libc's module comes back as it was: tcache, thread_arena, rpc and strerror buffers are reused, not
   * leaked. thread_start below resets what a new thread must see fresh in it. */
  memcpy((char *)tp + L.libc_rel, keep, L.libc_size);
  tcb_setup(tp);
  memset(&x->res, 0, sizeof x->res);
  x->state = EXT_LIVE;
  x->gen = dtv_of(tp)[0].counter;
  run_on(tp, thread_start, x);
  return 0;
}

static void block_fini(void *tp) {
  struct ch_tls_ext *x = ext_of(tp);
  if (x->magic != EXT_MAGIC) return;
  resolver_close(x);
  if (L.have_tls_state) { /* __glibc_tls_internal_free (sysdeps/unix/sysv/linux/tls-internal.c:24) */
    char *ts = pd_of(tp) + L.off_tls_state;
    free(get_ptr(ts));
    free(get_ptr(ts + sizeof(void *)));
    put_ptr(ts, NULL);
    put_ptr(ts + sizeof(void *), NULL);
  }
  _dl_deallocate_tls(tp, false); /* DTV and dynamic TLS; the memory is the caller's (dealloc_tcb false) */
  x->magic = 0;
}

void ch_tls_block_fini(void *tp) {
  if (usable() && tp != NULL) block_fini(tp);
}

/* struct pthread's tls_state {strsignal_buf, strerror_l_buf} (nptl/descr.h:402, just below rseq_area)
 * holds what strsignal and strerror malloc for numbers they do not know; glibc frees it only at thread
 * exit. No descriptor names it: find it in a scratch block, where strsignal of a real-time signal
 * stores its fresh buffer, so that ch_tls_block_fini can free it. Runs once, in the probe, after the
 * layout is known; the probing thread's own buffers are not touched. */
static void tls_state_probe(void *arg) { *(char **)arg = strsignal(SIGRTMIN + 1); }

static void find_tls_state(void) {
  if (!L.have_rseq || L.off_rseq < 64) return;
  size_t len = round_up(L.size + L.static_align, 4096);
  void *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return;
  void *tp = block_init(mem, len);
  if (tp != NULL) {
    char *buf = NULL;
    run_on(tp, tls_state_probe, &buf);
    char *pd = pd_of(tp);
    for (uint32_t o = L.off_rseq - 2 * sizeof(void *); buf != NULL && o + 48 >= L.off_rseq;
         o -= sizeof(void *))
      if (get_ptr(pd + o) == buf) {
        L.off_tls_state = o;
        L.have_tls_state = true;
        break;
      }
    if (!L.have_tls_state) free(buf);
    block_fini(tp);
  }
  munmap(mem, len);
}

/* ---- modules dlopened after a block was made ----------------------------------------------------------
 * A module loaded later whose TLS the loader places in the static area (one with initial-exec TLS, or
 * TLSDESC code — aarch64's default — when the surplus has room) has its initial image copied into
 * every thread glibc knows (_dl_init_static_tls, elf/dl-tls.c:1182, over dl_stack_used/user), not
 * into our blocks. Dynamic TLS needs nothing: __tls_get_addr brings the block's DTV up to date. */

struct sync_ctx {
  char *tp;
  size_t since, maxgen;
  unsigned long long adds, prev_adds;
  bool first;
  int copied;
};

static size_t get_size(const char *p) { return (size_t)get_ptr(p); }

/* The loader's slot for a module id: its load generation and link_map. */
static bool slot_of(size_t modid, size_t *gen, char **map) {
  char *list = get_ptr(_rtld_global + L.si_list);
  size_t idx = modid;
  while (list != NULL && idx >= get_size(list + L.si_len)) {
    idx -= get_size(list + L.si_len);
    list = get_ptr(list + L.si_next);
  }
  if (list == NULL) return false;
  char *slot = list + L.si_array + idx * L.si_size;
  *gen = get_size(slot + L.si_gen);
  *map = get_ptr(slot + L.si_map);
  return *map != NULL && get_size(*map + L.lm_modid) == modid;
}

/* dl_iterate_phdr holds the loader's write lock while it calls us: the module cannot be unlinked
 * and freed under our feet. */
static int sync_one(struct dl_phdr_info *info, size_t n, void *arg) {
  (void)n;
  struct sync_ctx *c = arg;
  if (c->first) {
    c->first = false;
    c->adds = info->dlpi_adds;
    if (c->adds == c->prev_adds) return 1; /* nothing loaded since the last sync: stop here */
  }
  size_t gen;
  char *map;
  if (info->dlpi_tls_modid == 0 || !slot_of(info->dlpi_tls_modid, &gen, &map) || gen <= c->since) return 0;
  if (gen > c->maxgen) c->maxgen = gen;
  const ElfW(Phdr) *ph = NULL;
  for (int i = 0; i < info->dlpi_phnum; i++)
    if (info->dlpi_phdr[i].p_type == PT_TLS) ph = &info->dlpi_phdr[i];
  if (ph == NULL) return 0;
  ptrdiff_t off = (ptrdiff_t)get_size(map + L.lm_offset); /* NO_TLS_OFFSET / FORCED_DYNAMIC: out of range */
#if defined(__x86_64__)
  if (off <= 0 || (size_t)off > L.static_size - L.tcb_size || ph->p_memsz > (size_t)off) return 0;
  char *dest = c->tp - off; /* init_one_static_tls, elf/dl-tls.c:1169 */
#else
  if (off < 16 || (size_t)off + ph->p_memsz > L.static_size) return 0;
  char *dest = c->tp + off;
#endif
  memcpy(dest, (const char *)info->dlpi_addr + ph->p_vaddr, ph->p_filesz);
  memset(dest + ph->p_filesz, 0, ph->p_memsz - ph->p_filesz);
  c->copied++;
  return 0;
}

int ch_tls_block_sync(void *tp) {
  if (!usable() || tp == NULL) return -EINVAL;
  if (!L.have_sync) return -ENOTSUP;
  struct ch_tls_ext *x = ext_of(tp);
  if (x->magic != EXT_MAGIC) return -EINVAL;
  struct sync_ctx c = {.tp = tp, .since = x->gen, .maxgen = x->gen, .prev_adds = x->adds, .first = true};
  dl_iterate_phdr(sync_one, &c);
  x->gen = c.maxgen;
  x->adds = c.adds;
  return c.copied;
}

void ch_tls_set_tid(void *tp, int tid) { put_u32(pd_of(tp) + L.off_tid, (uint32_t)tid); }

int ch_tls_block_set_stack(void *tp, void *lo, size_t size) {
  if (!usable() || !L.have_stack) return -ENOTSUP;
  put_ptr(pd_of(tp) + L.off_stackblock, lo);
  put_ptr(pd_of(tp) + L.off_stackblock + sizeof(void *), (void *)size);
  return 0;
}

int ch_tls_describe(char *buf, size_t n) {
  if (!usable())
    return snprintf(buf, n, "per-coroutine TLS unavailable: %s", probe_why ? probe_why : "not probed");
  return snprintf(buf, n,
                  "switch=%s block=%zu align=%zu static_tls=%zu struct_pthread=%zu libc_tls=%zu@%td "
                  "tid@%u robust_head@%u specific@%u rseq=%s%u resolver=%s stack_fields=%s%u tls_state=%s%u "
                  "sync=%s",
                  L.mode, L.size, L.static_align, L.static_size, L.tcb_size, L.libc_size, L.libc_rel,
                  L.off_tid,
                  L.off_robust_head, L.off_specific, L.have_rseq ? "@" : "none", L.off_rseq,
                  L.have_resp ? "own" : "shared", L.have_stack ? "@" : "unverified", L.off_stackblock,
                  L.have_tls_state ? "@" : "unknown", L.off_tls_state, L.have_sync ? "yes" : "no");
}
