/* The coordinator's own retained topic: which node is the locality's
 * gateway.
 *
 * Why a topic of its own: the gateway resolves tags for every node and is
 * the root of the tree, so a node that could make itself the gateway could
 * substitute images. The role therefore comes from the coordinator's
 * configuration (--gateway), reaches the nodes on a topic only the
 * coordinator may write (contrib/mosquitto/mkacl), and never from the
 * `gateway` flag of a node's own state, which stays informational. The
 * gateway's address still comes from its own state, which only the gateway
 * may write, so it is bound to the gateway's identity too. */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "common/names.h"
#include "locality/proto.h"
#include "locality/proto_int.h"

static bool id_valid(const char *s) {
  return names_node_id_valid(s);
}

int proto_gateway_topic(const char *locality, char *buf, size_t len, ep_err *err) {
  if (!names_locality_valid(locality))
    return ep_error(err, EP_EINVAL, "locality id: must match [A-Za-z0-9._-]{1,%d}", PROTO_ID_MAX);
  int n = snprintf(buf, len, "edgepull/v1/%s/coord/gateway", locality);
  if (n < 0 || (size_t)n >= len)
    return ep_error(err, EP_ETOOBIG, "topic: buffer of %zu bytes too small", len);
  return 0;
}

int proto_gateway_build(const struct proto_gateway *g, char **out, size_t *len, ep_err *err) {
  static const char what[] = "gateway";
  int r = proto_check_field(what, "id", g->id, sizeof g->id, id_valid, err);
  if (r < 0)
    return r;
  return proto_dump(what, json_pack("{s:i,s:s}", "v", PROTO_VERSION, "id", g->id),
                    PROTO_GATEWAY_MAX, out, len, err);
}

int proto_gateway_parse(const void *buf, size_t len, struct proto_gateway *out, ep_err *err) {
  struct proto_gateway g;
  memset(&g, 0, sizeof g);
  json_auto_t *j = NULL;
  int r = proto_payload_open("gateway", buf, len, PROTO_GATEWAY_MAX, NULL, &j, g.id, err);
  if (r < 0)
    return r;
  *out = g;
  return 0;
}
