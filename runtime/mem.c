/*
 * mem.c — the runtime's own memory. The runtime never calls the program's allocator.
 *
 * Why: the program's malloc may be anything — jemalloc, tcmalloc, a wrapper with its own locking —
 * and many of them take pthread mutexes, i.e. come back into our hooks. If the runtime allocated
 * with malloc while serving a hooked call (a first wait makes this thread's scheduler; a spawn makes
 * a coroutine descriptor), an allocator that locks a mutex would re-enter the runtime from inside
 * itself: with jemalloc that was endless recursion (issue 13). So every structure of the runtime —
 * schedulers, coroutine descriptors, fd tables, timer heaps, watcher slots, stack pools, key arrays,
 * libev's own allocations (ev_set_allocator) — comes from here, and here is only mmap.
 *
 * The line, in design.md's terms: below the hooks nothing allocates through the program. What is
 * still allocated by glibc on the runtime's behalf happens inside calls made with ch_tls_bypass
 * raised (glibc's pthread_create for our own OS threads, __cxa_thread_atexit_impl), so a nested
 * hooked wait there blocks natively instead of re-entering the scheduler (parklot.c).
 *
 * Design: power-of-two size classes from 16 bytes to 32 KiB carved from 256 KiB mmap chunks, one
 * free list per class under a ch_lock (critical sections are two pointer moves); larger blocks are
 * their own mapping, returned on free. Every block has a 16-byte header naming its class, so
 * ch_free needs no size. Memory in the class lists is never returned to the kernel: the runtime's
 * structures are few and reused (descriptors, slots), and what matters is that they never depend on
 * the program's allocator. All blocks come zeroed.
 */
#include <string.h>
#include <sys/mman.h>

#include "internal.h"
#include "sys.h"

#define CH_MEM_MIN_SHIFT 4
#define CH_MEM_MAX_SHIFT 15 /* 32 KiB: larger is a mapping of its own */
#define CH_MEM_CLASSES (CH_MEM_MAX_SHIFT - CH_MEM_MIN_SHIFT + 1)
#define CH_MEM_CHUNK (256u * 1024u)
#define CH_MEM_HDR 16u
#define CH_MEM_LARGE 0xffu
#define CH_MEM_MAGIC 0x6d656863u /* "chem": tells our blocks from anyone else's (ch_mem_owns) */

struct hdr {
  size_t len;     /* large: the whole mapping's length; small: the class's block size */
  uint32_t magic; /* CH_MEM_MAGIC */
  uint8_t cls;    /* class index, or CH_MEM_LARGE */
  uint8_t pad[3];
};
_Static_assert(sizeof(struct hdr) == CH_MEM_HDR, "header keeps 16-byte alignment");

struct freeblk {
  struct freeblk *next;
};

/* Invariant: every block on free[c] is a block of class c, header intact, not in use. */
static struct {
  ch_lock_t lock;
  struct freeblk *free;
  char *bump, *end; /* the unused rest of the class's current chunk */
} classes[CH_MEM_CLASSES];

static int class_of(size_t total) {
  int c = 0;
  while (((size_t)1 << (c + CH_MEM_MIN_SHIFT)) < total) c++;
  return c;
}

void *ch_alloc(size_t n) {
  size_t total = n + CH_MEM_HDR;
  if (total < n) return NULL;
  struct hdr *h;
  if (total > ((size_t)1 << CH_MEM_MAX_SHIFT)) {
    size_t len = (total + 4095) & ~(size_t)4095;
    h = ch_mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (h == MAP_FAILED) return NULL;
    h->len = len; /* fresh anonymous pages are zero */
    h->magic = CH_MEM_MAGIC;
    h->cls = CH_MEM_LARGE;
    return (char *)h + CH_MEM_HDR;
  }
  int c = class_of(total);
  size_t bsz = (size_t)1 << (c + CH_MEM_MIN_SHIFT);
  ch_lock(&classes[c].lock);
  struct freeblk *f = classes[c].free;
  if (f) {
    classes[c].free = f->next;
    ch_unlock(&classes[c].lock);
    h = (struct hdr *)(void *)f - 1;
    CH_ASSERT(h->cls == c);
    memset(h + 1, 0, bsz - CH_MEM_HDR);
    return h + 1;
  }
  if (classes[c].bump == classes[c].end) {
    char *m = ch_mmap(NULL, CH_MEM_CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
      ch_unlock(&classes[c].lock);
      return NULL;
    }
    classes[c].bump = m;
    classes[c].end = m + CH_MEM_CHUNK; /* CH_MEM_CHUNK is a multiple of every class size */
  }
  h = (struct hdr *)(void *)classes[c].bump;
  classes[c].bump += bsz;
  ch_unlock(&classes[c].lock);
  h->len = bsz;
  h->magic = CH_MEM_MAGIC;
  h->cls = (uint8_t)c;
  return h + 1; /* never used before: still zero */
}

void ch_free(void *p) {
  if (!p) return;
  struct hdr *h = (struct hdr *)p - 1;
  CH_ASSERT(h->magic == CH_MEM_MAGIC);
  if (h->cls == CH_MEM_LARGE) {
    ch_munmap(h, h->len);
    return;
  }
  CH_ASSERT(h->cls < CH_MEM_CLASSES && h->len == (size_t)1 << (h->cls + CH_MEM_MIN_SHIFT));
  struct freeblk *f = p;
  ch_lock(&classes[h->cls].lock);
  f->next = classes[h->cls].free;
  classes[h->cls].free = f;
  ch_unlock(&classes[h->cls].lock);
}

bool ch_mem_owns(const void *p) { return ((const struct hdr *)p - 1)->magic == CH_MEM_MAGIC; }

size_t ch_alloc_size(const void *p) {
  const struct hdr *h = (const struct hdr *)p - 1;
  return h->len - CH_MEM_HDR;
}

void *ch_realloc(void *p, size_t n) {
  if (!p) return ch_alloc(n);
  if (n == 0) {
    ch_free(p);
    return NULL;
  }
  size_t have = ch_alloc_size(p);
  if (n <= have) return p;
  void *q = ch_alloc(n);
  if (!q) return NULL;
  memcpy(q, p, have);
  ch_free(p);
  return q;
}

void ch_mem_after_fork(void) {
  /* Another thread of the parent may have held a class lock at fork(); it does not exist here. */
  for (int c = 0; c < CH_MEM_CLASSES; c++) atomic_store(&classes[c].lock.state, 0);
}
