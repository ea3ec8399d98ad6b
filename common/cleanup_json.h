/* Scope-bound release of a jansson value. jansson (>= 2.11) ships the
 * cleanup function itself (json_decrefp, behind its json_auto_t), so this
 * only names it the way the other ep_cleanup_* attributes are named:
 *   ep_cleanup_json json_t *j = json_loadb(...);
 * Header-only: ep_common does not link jansson; include it where jansson
 * already is. */
#ifndef EP_COMMON_CLEANUP_JSON_H
#define EP_COMMON_CLEANUP_JSON_H

#include <jansson.h>

#define ep_cleanup_json __attribute__((cleanup(json_decrefp)))

#endif
