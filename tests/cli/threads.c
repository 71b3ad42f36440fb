/* threads.c — a plain thread-per-task program (knows nothing of cohook) for the cohook command's
 * tests: 32 threads sleep 300 ms while the main thread counts the process's OS threads
 * (/proc/self/status) and prints "threads N" — 33 natively, a handful when the threads are
 * coroutines. Exits with the status given as argument (default 0), after joining them all. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *sleeper(void *arg) {
  (void)arg;
  usleep(300000);
  return NULL;
}

int main(int argc, char **argv) {
  pthread_t t[32];
  for (int i = 0; i < 32; i++)
    if (pthread_create(&t[i], NULL, sleeper, NULL) != 0) return 99;
  usleep(100000);
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  int threads = -1;
  while (f && fgets(line, sizeof line, f))
    if (strncmp(line, "Threads:", 8) == 0) threads = atoi(line + 8);
  if (f) fclose(f);
  printf("threads %d\n", threads);
  for (int i = 0; i < 32; i++) pthread_join(t[i], NULL);
  return argc > 1 ? atoi(argv[1]) : 0;
}
