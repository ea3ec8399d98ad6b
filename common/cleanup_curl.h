/* Scope-bound release of libcurl easy handles and header lists, so a
 * request built up over several steps needs no frees at each early return.
 * Header-only: ep_common does not link libcurl; include it where libcurl
 * already is. Both curl functions accept NULL. */
#ifndef EP_COMMON_CLEANUP_CURL_H
#define EP_COMMON_CLEANUP_CURL_H

#include <curl/curl.h>

static inline void ep_curl_easy_cleanupp(CURL **h) {
  curl_easy_cleanup(*h);
}
static inline void ep_curl_slist_freep(struct curl_slist **l) {
  curl_slist_free_all(*l);
}

#define ep_cleanup_curl __attribute__((cleanup(ep_curl_easy_cleanupp)))
#define ep_cleanup_curl_slist __attribute__((cleanup(ep_curl_slist_freep)))

#endif
