/* Making a deployed image runnable in the node's runtime, through the local
 * mirror, so the bytes come from the store the deploy just filled.
 *
 * containerd: `ctr --address A -n k8s.io images pull --hosts-dir D IMAGE`,
 * where D is a temporary hosts dir whose _default/hosts.toml names only the
 * local mirror (the upstream stays as containerd's own fallback). Run with
 * posix_spawn, output discarded, killed when over the time limit.
 * Docker: the Engine API over its unix socket (libcurl,
 * CURLOPT_UNIX_SOCKET_PATH): POST /images/create from <mirror>/<repo>, then
 * POST /images/<that>/tag to give it its usual name. The pull's answer is a
 * stream of JSON lines: an "error" in any of them is a failure. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "common/buf.h"
#include "common/cleanup_curl.h"
#include "common/log.h"
#include "plugin/deploy/deploy_int.h"

extern char **environ;

#define DEPLOY_DOCKER_ANSWER_MAX (256 * 1024)

int deploy_hosts_toml(const char *mirror, char *buf, size_t cap, ep_err *err) {
  int n = snprintf(buf, cap,
                   "# written by edgepulld for one deploy import\n"
                   "[host.\"http://%s\"]\n"
                   "  capabilities = [\"pull\", \"resolve\"]\n",
                   mirror);
  if (n < 0 || (size_t)n >= cap)
    return ep_error(err, EP_ETOOBIG, "hosts.toml: buffer too small");
  return 0;
}

int deploy_docker_names(const char *mirror, const struct deploy_ref *ref, char *from,
                        size_t fromcap, char *repo, size_t repocap, ep_err *err) {
  bool hub = strcmp(ref->registry, "docker.io") == 0;
  const char *short_repo = ref->repo;
  if (hub && strncmp(short_repo, "library/", 8) == 0)
    short_repo += 8;
  int a = hub ? snprintf(from, fromcap, "%s/%s", mirror, ref->repo)
              : snprintf(from, fromcap, "%s/%s/%s", mirror, ref->registry, ref->repo);
  int b = hub ? snprintf(repo, repocap, "%s", short_repo)
              : snprintf(repo, repocap, "%s/%s", ref->registry, ref->repo);
  if (a < 0 || (size_t)a >= fromcap || b < 0 || (size_t)b >= repocap)
    return ep_error(err, EP_ETOOBIG, "docker image name too long");
  return 0;
}

void deploy_full_name(const struct deploy_ref *ref, char *buf, size_t cap) {
  char d[DIGEST_STR_LEN + 1] = "";
  if (ref->has_digest)
    digest_format(&ref->digest, d);
  snprintf(buf, cap, "%s/%s%s%s%s%s", ref->registry, ref->repo, ref->tag[0] ? ":" : "", ref->tag,
           ref->has_digest ? "@" : "", d);
}

/* ---- containerd ---------------------------------------------------------------- */

static int write_hosts_dir(const char *dir, const char *mirror, ep_err *err) {
  char path[512], toml[512];
  int r = deploy_hosts_toml(mirror, toml, sizeof toml, err);
  if (r < 0)
    return r;
  snprintf(path, sizeof path, "%s/_default", dir);
  if (mkdir(path, 0700) < 0)
    return ep_syserror(err, EP_EIO, "mkdir %s", path);
  snprintf(path, sizeof path, "%s/_default/hosts.toml", dir);
  FILE *f = fopen(path, "we");
  if (f == NULL)
    return ep_syserror(err, EP_EIO, "writing %s", path);
  bool ok = fputs(toml, f) >= 0;
  ok = fclose(f) == 0 && ok;
  return ok ? 0 : ep_syserror(err, EP_EIO, "writing %s", path);
}

static void remove_hosts_dir(const char *dir) {
  char path[512];
  snprintf(path, sizeof path, "%s/_default/hosts.toml", dir);
  unlink(path);
  snprintf(path, sizeof path, "%s/_default", dir);
  rmdir(path);
  rmdir(dir);
}

/* Spawn attributes that give ctr a clean signal state: edgepulld blocks
 * SIGTERM/INT/HUP in every thread (main.c waits for them with sigwait) and
 * ignores SIGPIPE, and a spawned child would inherit both, so a ctr that
 * hangs could not be stopped by TERM. The mask is emptied and those four
 * signals go back to their default action. */
static int spawn_attr_clean(posix_spawnattr_t *sa) {
  sigset_t none, dfl;
  sigemptyset(&none);
  sigemptyset(&dfl);
  sigaddset(&dfl, SIGTERM);
  sigaddset(&dfl, SIGINT);
  sigaddset(&dfl, SIGHUP);
  sigaddset(&dfl, SIGPIPE);
  int r = posix_spawnattr_init(sa);
  if (r != 0)
    return r;
  if ((r = posix_spawnattr_setsigmask(sa, &none)) != 0 ||
      (r = posix_spawnattr_setsigdefault(sa, &dfl)) != 0 ||
      (r = posix_spawnattr_setflags(sa, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)) != 0)
    posix_spawnattr_destroy(sa);
  return r;
}

/* Waits for pid at most timeout_s (and while !*stop); kills it after. */
static int wait_child(pid_t pid, int timeout_s, atomic_bool *stop, ep_err *err) {
  int status = 0;
  for (long waited_ms = 0;; waited_ms += 100) {
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid)
      break;
    if (w < 0 && errno != EINTR)
      return ep_syserror(err, EP_EINTERNAL, "waiting for ctr");
    if (waited_ms >= (long)timeout_s * 1000 || atomic_load(stop)) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return ep_error(err, EP_ECANCELED, "ctr %s",
                      atomic_load(stop) ? "stopped: edgepulld is stopping" : "timed out");
    }
    struct timespec ts = {0, 100 * 1000000L};
    nanosleep(&ts, NULL);
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
    return 0;
  if (WIFEXITED(status))
    return ep_error(err, EP_EIO, "ctr images pull exited with status %d", WEXITSTATUS(status));
  return ep_error(err, EP_EIO, "ctr images pull killed by signal %d", WTERMSIG(status));
}

static int import_containerd(const struct deploy_options *o, const struct deploy_ref *ref,
                             int timeout_s, atomic_bool *stop, ep_err *err) {
  char dir[] = "/tmp/edgepull-hosts-XXXXXX";
  char image[PROTO_IMAGE_MAX + NAMES_HOST_MAX + 16];
  /* ctr's own error goes to /dev/null: name the usual cause here */
  if (access(o->containerd_address, R_OK | W_OK) < 0 && errno == EACCES)
    return ep_error(err, EP_EUNREACH,
                    "permission denied on %s (containerd's socket; see runtime-integration.md)",
                    o->containerd_address);
  if (mkdtemp(dir) == NULL)
    return ep_syserror(err, EP_EIO, "creating a hosts dir");
  int r = write_hosts_dir(dir, o->mirror, err);
  deploy_full_name(ref, image, sizeof image);
  char *argv[] = {"ctr",  "--address",   (char *)o->containerd_address,
                  "-n",   "k8s.io",      "images",
                  "pull", "--hosts-dir", dir,
                  image,  NULL};
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  posix_spawnattr_t sa;
  int ar = spawn_attr_clean(&sa);
  if (r == 0 && ar != 0) {
    errno = ar;
    r = ep_syserror(err, EP_EINTERNAL, "spawn attributes for ctr");
  }
  if (r == 0) {
    int sr = posix_spawnp(&pid, "ctr", &fa, &sa, argv, environ);
    if (sr != 0) {
      errno = sr;
      r = ep_syserror(err, EP_EUNSUPPORTED, "starting ctr");
    } else {
      r = wait_child(pid, timeout_s, stop, err);
    }
  }
  posix_spawn_file_actions_destroy(&fa);
  if (ar == 0)
    posix_spawnattr_destroy(&sa);
  remove_hosts_dir(dir);
  return r;
}

/* ---- docker ---------------------------------------------------------------------- */

/* Keeps the first DEPLOY_DOCKER_ANSWER_MAX bytes of docker's answer. */
static size_t on_body(char *p, size_t sz, size_t n, void *ud) {
  return ep_buf_append_trunc(ud, p, sz * n) < 0 ? 0 : sz * n;
}

/* Aborts a transfer when edgepulld stops. */
static int on_xfer(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d) {
  (void)a, (void)b, (void)c, (void)d;
  return atomic_load((atomic_bool *)ud) ? 1 : 0;
}

/* One Engine API request (POST or DELETE) with an empty body. */
static int docker_call(const struct deploy_options *o, const char *method, const char *path,
                       int timeout_s, atomic_bool *stop, ep_err *err) {
  ep_cleanup_curl CURL *c = curl_easy_init();
  if (c == NULL)
    return ep_error(err, EP_EINTERNAL, "curl_easy_init failed");
  char url[2100];
  snprintf(url, sizeof url, "http://localhost%s", path);
  ep_cleanup_buf struct ep_buf a = {0};
  ep_buf_init(&a, DEPLOY_DOCKER_ANSWER_MAX);
  if (curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, o->docker_socket) != CURLE_OK ||
      curl_easy_setopt(c, CURLOPT_URL, url) != CURLE_OK ||
      curl_easy_setopt(c, CURLOPT_POST, 1L) != CURLE_OK ||
      curl_easy_setopt(c, CURLOPT_POSTFIELDS, "") != CURLE_OK ||
      curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method) != CURLE_OK ||
      curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)timeout_s) != CURLE_OK ||
      curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
      curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK ||
      curl_easy_setopt(c, CURLOPT_WRITEDATA, &a) != CURLE_OK ||
      curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_xfer) != CURLE_OK ||
      curl_easy_setopt(c, CURLOPT_XFERINFODATA, stop) != CURLE_OK ||
      curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L) != CURLE_OK)
    return ep_error(err, EP_EINTERNAL, "docker at %s: libcurl refused an option", o->docker_socket);
  CURLcode cc = curl_easy_perform(c);
  long status = 0, os_errno = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_getinfo(c, CURLINFO_OS_ERRNO, &os_errno);
  int r = 0;
  if (cc == CURLE_COULDNT_CONNECT && os_errno == EACCES)
    r = ep_error(err, EP_EUNREACH,
                 "permission denied on %s (the user edgepulld runs as needs to be in the "
                 "socket's group, see runtime-integration.md)",
                 o->docker_socket);
  else if (cc != CURLE_OK)
    r = ep_error(err, EP_EUNREACH, "docker at %s: %s", o->docker_socket, curl_easy_strerror(cc));
  else if (status < 200 || status > 299 || (a.data != NULL && strstr(a.data, "\"error\"") != NULL))
    r = ep_error(err, EP_EUPSTREAM, "docker %s: HTTP %ld: %.200s", path, status,
                 a.data != NULL ? a.data : "");
  return r;
}

/* Pulls through the mirror (Docker refuses a port inside a repository path,
 * so the pull goes by the mirror's name), names the image as the user wrote
 * it, then removes the mirror's name: `docker images` shows the image once,
 * under its own name. Untagging also drops the mirror's RepoDigest (Docker
 * cannot attach a digest to the other name); the image ID stays the
 * config's digest. A digest-only reference keeps the mirror's name: it is
 * the only one the image has. */
static int import_docker(const struct deploy_options *o, const struct deploy_ref *ref,
                         int timeout_s, atomic_bool *stop, ep_err *err) {
  char from[NAMES_REPO_MAX + NAMES_HOST_MAX + 140], repo[NAMES_REPO_MAX + NAMES_HOST_MAX + 2];
  char path[2048], tag[NAMES_TAG_MAX + DIGEST_STR_LEN + 2];
  int r = deploy_docker_names(o->mirror, ref, from, sizeof from, repo, sizeof repo, err);
  if (r < 0)
    return r;
  if (ref->has_digest)
    digest_format(&ref->digest, tag);
  else
    snprintf(tag, sizeof tag, "%s", ref->tag);
  /* names and tags are validated: [a-z0-9._/:-] and [A-Za-z0-9_.-] need no escaping */
  int n = snprintf(path, sizeof path, "/images/create?fromImage=%s&tag=%s", from, tag);
  if (n < 0 || (size_t)n >= sizeof path)
    return ep_error(err, EP_ETOOBIG, "docker request too long");
  if ((r = docker_call(o, "POST", path, timeout_s, stop, err)) < 0 || ref->tag[0] == '\0')
    return r;
  /* what the pull named the image: from:tag, or from@digest */
  char pulled[sizeof from + sizeof tag + 1];
  snprintf(pulled, sizeof pulled, "%s%c%s", from, ref->has_digest ? '@' : ':', tag);
  n = snprintf(path, sizeof path, "/images/%s/tag?repo=%s&tag=%s", pulled, repo, ref->tag);
  if (n < 0 || (size_t)n >= sizeof path)
    return ep_error(err, EP_ETOOBIG, "docker request too long");
  if ((r = docker_call(o, "POST", path, timeout_s, stop, err)) < 0)
    return r;
  snprintf(path, sizeof path, "/images/%s", pulled);
  return docker_call(o, "DELETE", path, timeout_s, stop, err);
}

int deploy_import(const struct deploy_options *o, enum proto_import imp,
                  const struct deploy_ref *ref, atomic_bool *stop, ep_err *err) {
  int timeout_s = o->import_timeout_s > 0 ? o->import_timeout_s : DEPLOY_IMPORT_TIMEOUT_S;
  switch (imp) {
  case PROTO_IMPORT_NONE:
    return 0;
  case PROTO_IMPORT_CONTAINERD:
    return import_containerd(o, ref, timeout_s, stop, err);
  case PROTO_IMPORT_DOCKER:
    return import_docker(o, ref, timeout_s, stop, err);
  }
  return ep_error(err, EP_EINVAL, "unknown import %d", (int)imp);
}
