/* The memory floor of issue 14's aims: a program that links exactly the
 * shared libraries edgepulld must link (libcurl, libmicrohttpd, jansson,
 * sqlite3, libmosquitto, libcrypto/libssl, libinih, libnghttp2, protobuf-c;
 * libarchive is dlopen()ed on the first unpack, so it is left out) and
 * initialises each the way edgepulld does, then prints its own VmHWM, VmRSS,
 * RssFile and RssAnon (KiB). No edgepull code is linked: whatever it prints
 * is what the Debian libraries alone cost before edgepulld does anything.
 *
 *   build-rel/bench/ep_bench_memory_floor [--mapped|--init] [--by-mapping]
 *
 * --mapped stops before any initialisation (the libraries only mapped and
 * relocated), --init after curl_global_init and mosquitto_lib_init (what an
 * idle edgepulld has done); --by-mapping adds the resident KiB of each
 * mapped file, largest first.
 *
 * Steps, as in edgepulld: mallopt(M_ARENA_MAX, 2), curl_global_init and
 * mosquitto_lib_init at start; a libmicrohttpd server (thread per
 * connection, poll) on a loopback port answering one GET that libcurl makes;
 * one sqlite query on an in-memory database; a SHA-256 through EVP; one
 * json_dumps, one ini_parse_string, and the nghttp2 and protobuf-c version
 * calls so the linker keeps those libraries (--as-needed drops a library no
 * symbol is taken from). */
#include <curl/curl.h>
#include <ini.h>
#include <jansson.h>
#include <malloc.h>
#include <microhttpd.h>
#include <mosquitto.h>
#include <nghttp2/nghttp2.h>
#include <openssl/evp.h>
#include <protobuf-c/protobuf-c.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **req_cls) {
  static const char body[] = "{}";
  struct MHD_Response *r =
      MHD_create_response_from_buffer(sizeof body - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
  enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
  MHD_destroy_response(r);
  return ret;
}

static size_t discard(char *p, size_t size, size_t n, void *cls) {
  return size * n;
}

/* One GET to a local libmicrohttpd server with edgepulld's daemon flags. */
static int http_round_trip(void) {
  struct MHD_Daemon *d = MHD_start_daemon(
      MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ITC, 0, NULL, NULL,
      answer, NULL, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(32 * 1024),
      MHD_OPTION_THREAD_STACK_SIZE, (size_t)(256 * 1024), MHD_OPTION_END);
  if (d == NULL)
    return -1;
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%u/v2/", (unsigned)info->port);
  CURL *h = curl_easy_init();
  long status = 0;
  if (h != NULL) {
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    if (curl_easy_perform(h) == CURLE_OK)
      curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
  }
  MHD_stop_daemon(d);
  return status == 200 ? 0 : -1;
}

static int sqlite_query(void) {
  sqlite3 *db = NULL;
  int rc = sqlite3_open(":memory:", &db);
  if (rc == SQLITE_OK)
    rc = sqlite3_exec(db,
                      "CREATE TABLE b(d TEXT PRIMARY KEY, s INTEGER);"
                      "INSERT INTO b VALUES('x', 1); SELECT s FROM b WHERE d = 'x';",
                      NULL, NULL, NULL);
  sqlite3_close(db);
  return rc == SQLITE_OK ? 0 : -1;
}

static int sha256(void) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  return EVP_Digest("edgepull", 8, md, &len, EVP_sha256(), NULL) == 1 ? 0 : -1;
}

static int ini_line(void *user, const char *section, const char *name, const char *value) {
  return 1;
}

static int small_libraries(void) {
  json_t *o = json_pack("{s:s}", "k", "v");
  char *s = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
  int ok = s != NULL && ini_parse_string("a = b\n", ini_line, NULL) == 0 &&
           nghttp2_version(0) != NULL && protobuf_c_version() != NULL;
  free(s);
  json_decref(o);
  return ok ? 0 : -1;
}

/* Prints the /proc/self/status lines the figures come from. */
static void print_memory(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  while (f != NULL && fgets(line, sizeof line, f) != NULL)
    if (strncmp(line, "VmHWM:", 6) == 0 || strncmp(line, "VmRSS:", 6) == 0 ||
        strncmp(line, "RssAnon:", 8) == 0 || strncmp(line, "RssFile:", 8) == 0 ||
        strncmp(line, "RssShmem:", 9) == 0)
      fputs(line, stdout);
  if (f != NULL)
    fclose(f);
}

/* Resident KiB by mapped file name from /proc/self/smaps, largest first. */
static void print_by_mapping(void) {
  struct {
    char name[96];
    long kib;
  } m[128];
  int n = 0, cur = -1;
  char line[512];
  FILE *f = fopen("/proc/self/smaps", "r");
  while (f != NULL && fgets(line, sizeof line, f) != NULL) {
    long v;
    char *slash = strrchr(line, '/');
    if (strchr(line, '-') < strchr(line, ' ') && strchr(line, '-') != NULL) { /* a mapping */
      char name[96] = "[anonymous]";
      if (slash != NULL)
        snprintf(name, sizeof name, "%.*s", (int)strcspn(slash + 1, "\n"), slash + 1);
      else if (strchr(line, '[') != NULL)
        snprintf(name, sizeof name, "%.*s", (int)strcspn(strchr(line, '['), "\n"),
                 strchr(line, '['));
      for (cur = 0; cur < n && strcmp(m[cur].name, name) != 0; cur++)
        ;
      if (cur == n && n < 128)
        snprintf(m[n++].name, sizeof m[0].name, "%s", name);
      cur = cur < 128 ? cur : -1;
    } else if (cur >= 0 && sscanf(line, "Rss: %ld", &v) == 1)
      m[cur].kib += v;
  }
  if (f != NULL)
    fclose(f);
  for (int i = 0; i < n; i++) /* a handful of rows: selection sort is plenty */
    for (int j = i + 1; j < n; j++)
      if (m[j].kib > m[i].kib) {
        __typeof__(m[0]) t = m[i];
        m[i] = m[j];
        m[j] = t;
      }
  for (int i = 0; i < n; i++)
    if (m[i].kib > 0)
      printf("%8ld kB %s\n", m[i].kib, m[i].name);
}

int main(int argc, char **argv) {
  const char *stop = "";
  bool by_mapping = false;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--by-mapping") == 0)
      by_mapping = true;
    else if (strcmp(argv[i], "--mapped") == 0 || strcmp(argv[i], "--init") == 0)
      stop = argv[i];
    else {
      fprintf(stderr, "usage: %s [--mapped|--init] [--by-mapping]\n", argv[0]);
      return 2;
    }
  }
  mallopt(M_ARENA_MAX, 2); /* as edgepulld */
  int bad = 0;
  if (strcmp(stop, "--mapped") == 0)
    goto out;
  curl_global_init(CURL_GLOBAL_DEFAULT);
  mosquitto_lib_init();
  if (strcmp(stop, "--init") == 0)
    goto out;
  if (http_round_trip() < 0)
    fprintf(stderr, "memory_floor: the HTTP round trip failed\n"), bad = 1;
  if (sqlite_query() < 0)
    fprintf(stderr, "memory_floor: the sqlite query failed\n"), bad = 1;
  if (sha256() < 0)
    fprintf(stderr, "memory_floor: SHA-256 failed\n"), bad = 1;
  if (small_libraries() < 0)
    fprintf(stderr, "memory_floor: jansson/inih/nghttp2/protobuf-c failed\n"), bad = 1;
out:
  print_memory();
  if (by_mapping)
    print_by_mapping();
  return bad;
}
