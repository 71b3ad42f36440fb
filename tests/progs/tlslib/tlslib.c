/* tlslib — a small shared library with thread-local variables in the general-dynamic model (plain
 * -fPIC), dlopened by tests/progs/tls_dlopen.c: the loader gives each thread its copy on first use. */
#define TLSLIB_EXPORT __attribute__((visibility("default")))

static __thread int v = 7;
static __thread int arr[4] = {11, 22, 33, 44};
static __thread char zeroed[256];

TLSLIB_EXPORT int tlslib_get(void) { return v; }
TLSLIB_EXPORT void tlslib_set(int x) { v = x; }
TLSLIB_EXPORT int *tlslib_addr(void) { return &v; }

/* 1 when this thread's copies still hold their initial images (arr) and zeros (zeroed). */
TLSLIB_EXPORT int tlslib_initial(void) {
  if (arr[0] != 11 || arr[1] != 22 || arr[2] != 33 || arr[3] != 44) return 0;
  for (unsigned i = 0; i < sizeof zeroed; i++)
    if (zeroed[i]) return 0;
  return 1;
}

/* Fill both with values derived from x; tlslib_check(x) tells whether they still hold them. */
TLSLIB_EXPORT void tlslib_fill(int x) {
  for (int i = 0; i < 4; i++) arr[i] = x + i;
  for (unsigned i = 0; i < sizeof zeroed; i++) zeroed[i] = (char)(x + (int)i);
}
TLSLIB_EXPORT int tlslib_check(int x) {
  for (int i = 0; i < 4; i++)
    if (arr[i] != x + i) return 0;
  for (unsigned i = 0; i < sizeof zeroed; i++)
    if (zeroed[i] != (char)(x + (int)i)) return 0;
  return 1;
}
