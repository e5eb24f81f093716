/* The floor of `fanbench.py latency` (and of fanclient's burst) on this machine: a server that does
 * nothing but answer a job's lines on time. It reads one POST at a time, takes each task's
 * "delay_ms" in order (no JSON parse, no validation, no dispatcher), answers a chunked NDJSON stream
 * and writes each result line at its task's delay after the body arrived (clock_nanosleep to an
 * absolute time; the lines due by then in one write), then the end line. What a client measures
 * against it is its own and the kernel's share: no server can do better.
 * Build: gcc -O2 -o lag_floor bench/lag-floor/lag_floor.c     Run: ./lag_floor PORT (127.0.0.1 only) */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct task { double delay; int index; };

static int by_delay(const void *a, const void *b) {
  const struct task *x = a, *y = b;
  return x->delay < y->delay ? -1 : x->delay > y->delay ? 1 : x->index - y->index;
}

/* Appends `text` as one chunk at out + n; returns the new length. */
static size_t chunk(char *out, size_t n, const char *text) {
  return n + sprintf(out + n, "%zx\r\n%s\r\n", strlen(text), text);
}

static int write_all(int fd, const char *data, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, data, n);
    if (w <= 0) return -1;
    data += w;
    n -= w;
  }
  return 0;
}

static void serve(int fd) {
  static char req[1 << 24];
  size_t got = 0;
  char *end = NULL;
  while (!end) {
    ssize_t n = read(fd, req + got, sizeof req - 1 - got);
    if (n <= 0) return;
    got += n;
    req[got] = 0;
    end = strstr(req, "\r\n\r\n");
  }
  char *length = strcasestr(req, "Content-Length:");
  size_t want = (end - req) + 4 + (length ? strtoul(length + 15, NULL, 10) : 0);
  if (want > sizeof req - 1) return;
  while (got < want) {
    ssize_t n = read(fd, req + got, want - got);
    if (n <= 0) return;
    got += n;
  }
  req[got] = 0;
  struct timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  static struct task tasks[100000];
  int count = 0;
  for (char *p = end; count < 100000 && (p = strstr(p, "\"delay_ms\"")); p += 10) {
    char *colon = strchr(p, ':');
    tasks[count].delay = strtod(colon + 1, NULL);
    tasks[count].index = count;
    count++;
  }
  qsort(tasks, count, sizeof tasks[0], by_delay);
  const char *head = "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n";
  if (write(fd, head, strlen(head)) < 0) return;
  static char out[100001 * 128];
  char line[200];
  long long start_ns = start.tv_sec * 1000000000LL + start.tv_nsec;
  for (int i = 0; i < count;) {
    long long due = start_ns + (long long) (tasks[i].delay * 1e6);
    struct timespec at = { due / 1000000000LL, due % 1000000000LL };
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, NULL) != 0) {}
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long now_ns = now.tv_sec * 1000000000LL + now.tv_nsec;
    size_t n = 0;
    while (i < count && start_ns + (long long) (tasks[i].delay * 1e6) <= now_ns) {
      snprintf(line, sizeof line, "{\"event\":\"result\",\"index\":%d,\"status\":\"ok\",\"value\":%d}\n", tasks[i].index, tasks[i].index);
      n = chunk(out, n, line);
      i++;
    }
    if (write_all(fd, out, n)) return;
  }
  snprintf(line, sizeof line, "{\"event\":\"end\",\"total\":%d,\"ok\":%d}\n", count, count);
  size_t n = chunk(out, 0, line);
  memcpy(out + n, "0\r\n\r\n", 5);
  write_all(fd, out, n + 5);
}

int main(int argc, char **argv) {
  int port = argc > 1 ? atoi(argv[1]) : 18500;
  int listener = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons(port) };
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  if (bind(listener, (struct sockaddr *) &addr, sizeof addr) || listen(listener, 16)) { perror("listen"); return 1; }
  for (;;) {
    int fd = accept(listener, NULL, NULL);
    if (fd < 0) continue;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    serve(fd);
    close(fd);
  }
}
