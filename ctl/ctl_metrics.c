/* The daemon half of `edgepullctl stat`: GET /metrics from edgepulld's
 * local endpoint (libcurl, as edgepulld's own clients) and the samples as
 * a table or a JSON object. Histogram buckets are left out: _count and
 * _sum say how many and how long, which is what a person reads. */
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/cleanup_curl.h"
#include "ctl/ctl.h"

#define CTL_METRICS_MAX (1 << 20)
#define CTL_METRICS_TIMEOUT_S 5

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
  return ep_buf_append(ud, p, size * n) == 0 ? size * n : 0;
}

int ctl_metrics_fetch(const char *url, struct ep_buf *out, ep_err *err) {
  ep_cleanup_curl CURL *c = curl_easy_init();
  if (c == NULL)
    return ep_error(err, EP_EINTERNAL, "out of memory");
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)CTL_METRICS_TIMEOUT_S);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http");
  CURLcode rc = curl_easy_perform(c);
  if (rc != CURLE_OK)
    return ep_error(err, EP_EUNREACH, "%s: %s", url, curl_easy_strerror(rc));
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  if (status != 200)
    return ep_error(err, EP_EUNREACH, "%s: HTTP %ld", url, status);
  return 0;
}

/* One sample line: *series (name and labels) and *value; false for
 * comments, blanks, buckets and anything malformed. */
static bool sample(char *line, char **series, char **value) {
  if (line[0] == '#' || line[0] == '\0')
    return false;
  char *sp = strrchr(line, ' ');
  if (sp == NULL || sp == line)
    return false;
  *sp = '\0';
  *series = line;
  *value = sp + 1;
  size_t n = strcspn(line, "{");
  return !(n >= 7 && strncmp(line + n - 7, "_bucket", 7) == 0);
}

int ctl_metrics_show(const char *body, const char *url, json_t *json_out) {
  char *copy = strdup(body);
  static const struct ctl_col cols[] = {{"METRIC", false}, {"LABELS", false}, {"VALUE", true}};
  ctl_table *t = json_out == NULL ? ctl_table_new(cols, 3) : NULL;
  json_t *obj = json_out != NULL ? json_object() : NULL;
  int r = copy != NULL && (t != NULL || obj != NULL) ? 0 : -1;
  char *save = NULL;
  for (char *line = copy != NULL ? strtok_r(copy, "\n", &save) : NULL; line != NULL && r == 0;
       line = strtok_r(NULL, "\n", &save)) {
    char *series, *value;
    if (!sample(line, &series, &value))
      continue;
    if (obj != NULL) {
      r = json_object_set_new(obj, series, json_real(strtod(value, NULL)));
      continue;
    }
    const char *name = strncmp(series, "edgepull_", 9) == 0 ? series + 9 : series;
    char *brace = strchr(series, '{');
    const char *labels = "";
    if (brace != NULL) {
      *brace = '\0';
      labels = brace + 1;
      size_t n = strlen(labels);
      if (n > 0 && labels[n - 1] == '}')
        brace[n] = '\0'; /* the closing brace */
    }
    const char *cells[] = {name, labels, value};
    r = ctl_table_add(t, cells);
  }
  if (r == 0 && obj != NULL)
    r = json_object_set_new(json_out, "daemon",
                            json_pack("{s:o, s:o}", "endpoint", ctl_json_str(url), "metrics", obj));
  else if (obj != NULL)
    json_decref(obj);
  if (r == 0 && t != NULL) {
    printf("daemon          %s\n", url);
    ctl_table_print(t, stdout);
  }
  ctl_table_free(t);
  free(copy);
  return r;
}
