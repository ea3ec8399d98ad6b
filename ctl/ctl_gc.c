/* edgepullctl gc, pin, unpin (through edgepulld's local endpoint: the
 * daemon owns the store and writes the index) and du (the index alone,
 * read-only: it works while the daemon is stopped). docs/operations.md. */
#include <curl/curl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "common/buf.h"
#include "common/cleanup_curl.h"
#include "common/cleanup_json.h"
#include "ctl/ctl.h"
#include "store/index.h"
#include "store/index_gc.h"

#define CTL_ADMIN_TIMEOUT_S 300 /* a GC of a large store on an SD card */

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
  return ep_buf_append(ud, p, size * n) == 0 ? size * n : 0;
}

/* The message of an OCI error body, or the body itself. */
static void error_message(const struct ep_buf *b, char *out, size_t cap) {
  ep_cleanup_json json_t *j = b->data != NULL ? json_loadb(b->data, b->len, 0, NULL) : NULL;
  const char *msg = NULL;
  json_t *errs = json_object_get(j, "errors");
  if (json_is_array(errs))
    msg = json_string_value(json_object_get(json_array_get(errs, 0), "message"));
  snprintf(out, cap, "%s", msg != NULL ? msg : b->data != NULL ? b->data : "no answer");
}

/* POST http://ENDPOINT/_edgepull/OP[?QUERY] with no body; the JSON answer
 * parsed into *out. */
static int admin_post(const struct ctl_opts *o, const char *op, const char *image, bool dry_run,
                      json_t **out) {
  ep_cleanup_curl CURL *c = curl_easy_init();
  if (c == NULL) {
    ctl_errorf("out of memory");
    return CTL_EXIT_FAIL;
  }
  char *esc = image != NULL ? curl_easy_escape(c, image, 0) : NULL;
  char url[2048];
  snprintf(url, sizeof url, "http://%s/_edgepull/%s%s%s%s",
           o->endpoint != NULL ? o->endpoint : CTL_DEFAULT_ENDPOINT, op,
           esc != NULL ? "?image="
           : dry_run   ? "?dry_run=1"
                       : "",
           esc != NULL ? esc : "", esc != NULL && dry_run ? "&dry_run=1" : "");
  curl_free(esc);
  ep_cleanup_buf struct ep_buf body = {0};
  ep_buf_init(&body, 16 << 20);
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)CTL_ADMIN_TIMEOUT_S);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http");
  CURLcode rc = curl_easy_perform(c);
  if (rc != CURLE_OK) {
    ctl_errorf("%s: %s (is edgepulld running? --endpoint)", url, curl_easy_strerror(rc));
    return CTL_EXIT_FAIL;
  }
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  if (status != 200) {
    char msg[512];
    error_message(&body, msg, sizeof msg);
    ctl_errorf("%s: HTTP %ld: %s", op, status, msg);
    return CTL_EXIT_FAIL;
  }
  if ((*out = json_loadb(body.data, body.len, 0, NULL)) == NULL) {
    ctl_errorf("%s: the answer is not JSON", op);
    return CTL_EXIT_FAIL;
  }
  return CTL_EXIT_OK;
}

static uint64_t juint(json_t *o, const char *key) {
  json_int_t v = json_integer_value(json_object_get(o, key));
  return v > 0 ? (uint64_t)v : 0;
}

static void print_gc(json_t *j) {
  char st[32], fr[32], want[32], ev[32], kept[32];
  ctl_fmt_size(juint(j, "store_bytes"), st, sizeof st);
  ctl_fmt_size(juint(j, "free_bytes"), fr, sizeof fr);
  ctl_fmt_size(juint(j, "want_bytes"), want, sizeof want);
  ctl_fmt_size(juint(j, "evicted_bytes"), ev, sizeof ev);
  ctl_fmt_size(juint(j, "kept_bytes"), kept, sizeof kept);
  bool dry = json_is_true(json_object_get(j, "dry_run"));
  printf("store %s, free %s; to reach the low watermarks: %s\n", st, fr, want);
  printf("%s %" PRIu64 " blobs, %s (of %" PRIu64 " considered; %s protected)\n",
         dry ? "would remove" : "removed", juint(j, "evicted"), ev, juint(j, "candidates"), kept);
  json_t *blobs = json_object_get(j, "blobs"), *b;
  size_t i;
  json_array_foreach(blobs, i, b) printf("  %s\n", json_string_value(b));
  uint64_t short_b = juint(j, "short_bytes");
  if (short_b > 0) {
    char sh[32], held[32];
    ctl_fmt_size(short_b, sh, sizeof sh);
    ctl_fmt_size(juint(j, "held_bytes"), held, sizeof held);
    printf("over quota: %s %s; %s of the protected bytes are in flight or being read and can go "
           "once their readers end\n",
           sh, dry ? "would stay" : "stays", held);
  }
  if (!dry)
    printf("stale partials removed: %" PRIu64 "\n", juint(j, "partials"));
}

int ctl_cmd_gc(const struct ctl_opts *o) {
  json_t *j = NULL;
  int r = admin_post(o, "gc", NULL, o->dry_run, &j);
  if (r != CTL_EXIT_OK)
    return r;
  if (o->json)
    return ctl_json_print(j);
  print_gc(j);
  json_decref(j);
  return fflush(stdout) == 0 ? CTL_EXIT_OK : CTL_EXIT_FAIL;
}

static int pin_cmd(const struct ctl_opts *o, const char *op) {
  json_t *j = NULL;
  int r = admin_post(o, op, o->arg, false, &j);
  if (r != CTL_EXIT_OK)
    return r;
  if (o->json)
    return ctl_json_print(j);
  bool pinned = json_is_true(json_object_get(j, "pinned"));
  bool changed = json_is_true(json_object_get(j, "changed"));
  if (pinned)
    printf("pinned %s (%s)\n", o->arg, json_string_value(json_object_get(j, "digest")));
  else
    printf("%s %s\n", changed ? "unpinned" : "was not pinned:", o->arg);
  json_decref(j);
  return fflush(stdout) == 0 ? CTL_EXIT_OK : CTL_EXIT_FAIL;
}

int ctl_cmd_pin(const struct ctl_opts *o) {
  return pin_cmd(o, "pin");
}

int ctl_cmd_unpin(const struct ctl_opts *o) {
  return pin_cmd(o, "unpin");
}
