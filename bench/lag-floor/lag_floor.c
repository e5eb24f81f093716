/* The floor of `fanbench.py latency` on this machine: a server that does nothing but answer a job's
 * lines on time. It reads one POST at a time, takes each task's "delay_ms" in order (no JSON parse,
 * no validation, no dispatcher), answers a chunked NDJSON stream and writes each result line at its
 * task's delay after the body arrived (clock_nanosleep to an absolute time, one write per line),
 * then the end line. What fanbench measures against it is the client's and the kernel's share of
 * the line lag: no server can do better.
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

static void chunk(int fd, const char *text) {
  char buf[256];
  int n = snprintf(buf, sizeof buf, "%zx\r\n%s\r\n", strlen(text), text);
  if (write(fd, buf, n) != n) perror("write");
}

static void serve(int fd) {
  static char req[1 << 22];
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
  char line[200];
  for (int i = 0; i < count; i++) {
    long long due = start.tv_nsec + (long long) (tasks[i].delay * 1e6);
    struct timespec at = { start.tv_sec + due / 1000000000LL, due % 1000000000LL };
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, NULL) != 0) {}
    snprintf(line, sizeof line, "{\"event\":\"result\",\"index\":%d,\"status\":\"ok\",\"value\":%d}\n", tasks[i].index, tasks[i].index);
    chunk(fd, line);
  }
  snprintf(line, sizeof line, "{\"event\":\"end\",\"total\":%d,\"ok\":%d}\n", count, count);
  chunk(fd, line);
  if (write(fd, "0\r\n\r\n", 5) < 0) return;
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
