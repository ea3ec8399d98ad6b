/* An in-process fake registry for the upstream client's tests, on
 * libmicrohttpd bound to 127.0.0.1 on a free port. Each test sets the knobs
 * it needs (under f->lock, or before the first request) and reads the
 * counters afterwards. Routes:
 *   /token                       token endpoint (Bearer flow)
 *   /v2/<repo>/manifests/<ref>   the one manifest
 *   /v2/<repo>/blobs/<digest>    the one blob (Range, redirects)
 *   /cdn/<anything>              the blob again, as a CDN would serve it
 * The blob route also serves an edgepulld peer's requests (same path, with
 * ?ns=), so a fake is a fake peer as well as a fake registry.
 * The implementation is in fake_registry.c, in ep_testlib. */
#ifndef EP_TESTS_FAKE_REGISTRY_H
#define EP_TESTS_FAKE_REGISTRY_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum fake_auth { FAKE_AUTH_NONE, FAKE_AUTH_BEARER, FAKE_AUTH_BASIC };
enum fake_redirect {
  FAKE_REDIR_NONE,
  FAKE_REDIR_CDN,      /* 307 to http://127.0.0.1:<cdn_port>/cdn/blob?sig=… */
  FAKE_REDIR_RELATIVE, /* 307 to /cdn/blob on this server */
  FAKE_REDIR_LOOP,     /* 302 to itself, forever */
};

struct fake {
  struct MHD_Daemon *d;
  uint16_t port;
  pthread_mutex_t lock;
  pthread_cond_t cv; /* holding or released changed */

  /* knobs */
  enum fake_auth auth;
  const char *challenge;   /* raw WWW-Authenticate instead of the default */
  const char *user, *pass; /* expected basic credentials */
  bool token_needs_basic;  /* token endpoint demands user/pass */
  bool reject_tokens;      /* the registry refuses every token (second 401) */
  int token_status;        /* 0: 200 */
  const char *token_json;  /* instead of the default answer */
  const char *manifest;
  size_t manifest_len;
  const char *manifest_ctype;
  bool head_digest;          /* Docker-Content-Digest on HEAD */
  bool get_digest;           /* Docker-Content-Digest on GET */
  const char *digest_header; /* instead of the real digest */
  bool head_405;
  bool chunked; /* manifest GET without Content-Length */
  const unsigned char *blob;
  size_t blob_len;
  bool honour_range;
  bool bad_range_start;
  enum fake_redirect redirect;
  uint16_t cdn_port;
  int force_status; /* every /v2/ request answers this */
  const char *force_body;
  /* Blob bodies streamed (instead of sent from one buffer) when one of
   * these is set; offsets are in the blob, whatever the Range asked. */
  uint64_t cut_at;  /* the connection drops once the body reaches it; 0 = never */
  int cuts;         /* how many bodies may still be cut there (then whole) */
  uint64_t hold_at; /* the body stops there until fake_release(); 0 = never */

  /* observations */
  int token_calls;
  int manifest_heads, manifest_gets, blob_gets;
  int cdn_requests, cdn_saw_auth;
  int forced; /* /v2/ requests answered with force_status */
  char last_scope[512];
  char last_service[128];
  char last_range[64];
  int holding; /* bodies stopped at hold_at now */
  bool released;
};

/* An OCI image manifest (config "{}", no layers) for the tests that serve
 * one: the fake's `manifest`, with manifest_ctype FAKE_MANIFEST_TYPE. */
extern const char fake_manifest_json[];
#define FAKE_MANIFEST_TYPE "application/vnd.oci.image.manifest.v1+json"

int fake_start(struct fake *f);
void fake_stop(struct fake *f);
/* Waits until n blob bodies stop at hold_at (bounded: 0, or -1 after
 * timeout_ms). */
int fake_wait_held(struct fake *f, int n, int timeout_ms);
/* Lets every body held at hold_at go on (fake_stop does it too). */
void fake_release(struct fake *f);
/* "Basic <base64(user:pass)>" into out. */
void fake_basic(const char *user, const char *pass, char *out, size_t cap);

#endif
