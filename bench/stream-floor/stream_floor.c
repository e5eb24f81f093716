/* The floor of "10,000 one-task 1 s streams at once" on this machine: raw libmicrohttpd as fanoutd
 * runs it (epoll, internal thread pool of 2, suspend/resume), doing nothing else. POST /v1/jobs
 * drains the body, suspends the connection and, DELAY_MS after the body arrived, a timer thread
 * resumes it; it then answers fanoutd's two lines of a one-task job (a result and the end) as a
 * chunked NDJSON stream. No JSON parse, no dispatcher, no job: what a client measures against it is
 * libmicrohttpd's, the kernel's and its own share. GET /healthz -> "ok".
 * Build: gcc -O2 -o stream_floor bench/stream-floor/stream_floor.c $(pkg-config --cflags --libs libmicrohttpd) -lpthread
 * Run:   ./stream_floor PORT [DELAY_MS=1000] [THREADS=2]   (127.0.0.1 only) */
#include <microhttpd.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char lines[] =
    "{\"event\":\"result\",\"id\":\"0\",\"index\":0,\"status\":\"ok\",\"value\":\"x\",\"elapsed_ms\":1000.1,\"done\":1,\"total\":1}\n"
    "{\"event\":\"end\",\"job\":\"0f8e\",\"total\":1,\"ok\":1,\"error\":0,\"timeout\":0,\"cancelled\":0,\"elapsed_ms\":1000.2}\n";
static struct MHD_Response *ok;
static long long delay_ns;

/* One request: queued in arrival order, which (one delay for all) is the order they fall due. */
struct request {
  struct MHD_Connection *connection;
  long long due_ns;
  int resumed;
  struct request *next;
};
static struct request *head, *tail;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;

static long long now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max) {
  (void) cls;
  size_t len = sizeof lines - 1;
  if (pos >= len) return MHD_CONTENT_READER_END_OF_STREAM;
  size_t n = len - pos < max ? len - pos : max;
  memcpy(buf, lines + pos, n);
  return (ssize_t) n;
}

/* Resumes each connection when it falls due (absolute monotonic waits). */
static void *timer(void *arg) {
  (void) arg;
  pthread_mutex_lock(&lock);
  for (;;) {
    while (head == NULL) pthread_cond_wait(&wake, &lock);
    long long due = head->due_ns;
    if (due > now_ns()) {
      /* `wake` waits on CLOCK_MONOTONIC, the clock `due` is on: it is the absolute time itself. */
      struct timespec t = {.tv_sec = due / 1000000000LL, .tv_nsec = due % 1000000000LL};
      pthread_cond_timedwait(&wake, &lock, &t);
      continue;
    }
    struct request *r = head;
    head = r->next;
    if (head == NULL) tail = NULL;
    r->resumed = 1;
    MHD_resume_connection(r->connection);
  }
  return NULL;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *data, size_t *size, void **req) {
  (void) cls; (void) version; (void) data;
  if (0 == strcmp(method, "GET") && 0 == strcmp(url, "/healthz")) {
    if (*req == NULL) { *req = &ok; return MHD_YES; }
    return MHD_queue_response(c, 200, ok);
  }
  if (0 != strcmp(method, "POST") || 0 != strcmp(url, "/v1/jobs")) {
    if (*req == NULL) { *req = &ok; return MHD_YES; }
    if (*size) { *size = 0; return MHD_YES; }
    return MHD_queue_response(c, 404, ok);
  }
  if (*req == NULL) {
    struct request *r = calloc(1, sizeof *r);
    r->connection = c;
    *req = r;
    return MHD_YES;
  }
  if (*size) { *size = 0; return MHD_YES; }
  struct request *r = *req;
  if (!r->resumed) {
    r->due_ns = now_ns() + delay_ns;
    pthread_mutex_lock(&lock);
    MHD_suspend_connection(c);
    if (tail) tail->next = r; else head = r;
    tail = r;
    pthread_cond_signal(&wake);
    pthread_mutex_unlock(&lock);
    return MHD_YES;
  }
  struct MHD_Response *response = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, reader, NULL, NULL);
  MHD_add_response_header(response, "Content-Type", "application/x-ndjson");
  enum MHD_Result result = MHD_queue_response(c, 200, response);
  MHD_destroy_response(response);
  return result;
}

static void completed(void *cls, struct MHD_Connection *c, void **req, enum MHD_RequestTerminationCode code) {
  (void) cls; (void) c; (void) code;
  if (*req != NULL && *req != (void *) &ok) free(*req);
  *req = NULL;
}

int main(int argc, char **argv) {
  if (argc < 2) { fprintf(stderr, "usage: stream_floor PORT [DELAY_MS] [THREADS]\n"); return 2; }
  delay_ns = (argc > 2 ? atoll(argv[2]) : 1000) * 1000000LL;
  unsigned int threads = argc > 3 ? (unsigned int) atoi(argv[3]) : 2;
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&wake, &attr);
  pthread_t thread;
  pthread_create(&thread, NULL, timer, NULL);
  ok = MHD_create_response_from_buffer(2, "ok", MHD_RESPMEM_PERSISTENT);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME,
      0, NULL, NULL, handler, NULL, MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_THREAD_POOL_SIZE, threads,
      MHD_OPTION_CONNECTION_LIMIT, 20000, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) 8192,
      MHD_OPTION_LISTEN_BACKLOG_SIZE, 4096, MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_END);
  if (!d) return 1;
  sigset_t ss; int sig; sigemptyset(&ss); sigaddset(&ss, SIGTERM); sigaddset(&ss, SIGINT);
  sigprocmask(SIG_BLOCK, &ss, NULL); sigwait(&ss, &sig);
  _exit(0); /* suspended connections would abort MHD_stop_daemon */
}
