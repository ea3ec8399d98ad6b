/* Fuzz target: locality/proto, every MQTT payload parser. The first byte
 * picks the parser (state, inventory snapshot or delta, parent, deploy,
 * progress, report, topic), the rest is the payload, as a broker would
 * deliver it (not NUL-terminated). A payload that parses is built again and
 * re-parsed: the result must be the same, so what a node accepts it can
 * also send. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Includes of the code under test, in one place. */
#include "common/escape.h"
#include "common/names.h"
#include "fuzz/fuzz.h"
#include "locality/proto.h"

#define ID "n1"
#define DEPLOY "0123456789abcdef"

/* Builds with BUILD, re-parses with REPARSE into a zeroed copy, compares. */
#define ROUND_TRIP(type, v, BUILD, REPARSE)                                                        \
  do {                                                                                             \
    char *js = NULL;                                                                               \
    size_t jl = 0;                                                                                 \
    ep_err e2 = {0};                                                                               \
    if (BUILD(&(v), &js, &jl, &e2) != 0)                                                           \
      fuzz_fail(#BUILD " refused what the parser accepted: %s", e2.msg);                           \
    type w;                                                                                        \
    memset(&w, 0, sizeof w);                                                                       \
    if (REPARSE != 0)                                                                              \
      fuzz_fail(#type " does not re-parse: %s (%.*s)", e2.msg, (int)jl, js);                       \
    if (memcmp(&w, &(v), sizeof w) != 0)                                                           \
      fuzz_fail(#type " changed in a round trip: %.*s", (int)jl, js);                              \
    free(js);                                                                                      \
  } while (0)

static void one_inventory(const uint8_t *p, size_t n, bool snapshot) {
  struct proto_inventory inv;
  ep_err err = {0};
  int rc = proto_inventory_parse(p, n, ID, snapshot, &inv, &err);
  fuzz_check_err(rc, &err, "proto_inventory_parse");
  if (rc != 0)
    return;
  char *js = NULL;
  size_t jl = 0;
  if (proto_inventory_build(&inv, &js, &jl, &err) != 0)
    fuzz_fail("inventory does not build: %s", err.msg);
  struct proto_inventory again;
  if (proto_inventory_parse(js, jl, ID, snapshot, &again, &err) != 0)
    fuzz_fail("inventory does not re-parse: %s", err.msg);
  if (again.nadd != inv.nadd || again.ndel != inv.ndel || again.gen != inv.gen ||
      again.seq != inv.seq ||
      (inv.nadd > 0 && memcmp(again.add, inv.add, inv.nadd * sizeof *inv.add) != 0) ||
      (inv.ndel > 0 && memcmp(again.del, inv.del, inv.ndel * sizeof *inv.del) != 0))
    fuzz_fail("inventory changed in a round trip");
  free(js);
  proto_inventory_clear(&again);
  proto_inventory_clear(&inv);
}

static void one_topic(const uint8_t *p, size_t n) {
  char *t = malloc(n + 1);
  if (t == NULL)
    return;
  memcpy(t, p, n);
  t[n] = '\0';
  struct proto_topic pt;
  ep_err err = {0};
  int rc = proto_topic_parse(t, &pt, &err);
  fuzz_check_err(rc, &err, "proto_topic_parse");
  if (rc == 0 &&
      (!names_locality_valid(pt.locality) ||
       (pt.kind != PROTO_T_DEPLOY && pt.kind != PROTO_T_GATEWAY && !names_node_id_valid(pt.node))))
    fuzz_fail("topic \"%s\" parsed to invalid ids", t);
  enum proto_import imp;
  fuzz_check_err(proto_import_parse(t, &imp, &err), &err, "proto_import_parse");
  (void)proto_deploy_id_valid(t);
  (void)proto_image_valid(t);
  (void)proto_platform_valid(t);
  ep_sanitize(t, PROTO_TEXT_MAX);
  free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  const uint8_t *p = data + 1;
  size_t n = size - 1;
  ep_err err = {0};
  int rc;
  switch (data[0] % 8) {
  case 0: {
    struct proto_state v;
    rc = proto_state_parse(p, n, ID, &v, &err);
    fuzz_check_err(rc, &err, "proto_state_parse");
    if (rc == 0)
      ROUND_TRIP(struct proto_state, v, proto_state_build, proto_state_parse(js, jl, ID, &w, &e2));
    break;
  }
  case 1:
  case 2:
    one_inventory(p, n, data[0] % 8 == 1);
    break;
  case 3: {
    struct proto_parent v;
    rc = proto_parent_parse(p, n, ID, &v, &err);
    fuzz_check_err(rc, &err, "proto_parent_parse");
    if (rc == 0)
      ROUND_TRIP(struct proto_parent, v, proto_parent_build,
                 proto_parent_parse(js, jl, ID, &w, &e2));
    break;
  }
  case 4: {
    struct proto_deploy v;
    rc = proto_deploy_parse(p, n, &v, &err);
    fuzz_check_err(rc, &err, "proto_deploy_parse");
    if (rc == 0)
      ROUND_TRIP(struct proto_deploy, v, proto_deploy_build, proto_deploy_parse(js, jl, &w, &e2));
    break;
  }
  case 5: {
    struct proto_progress v;
    rc = proto_progress_parse(p, n, DEPLOY, ID, &v, &err);
    fuzz_check_err(rc, &err, "proto_progress_parse");
    if (rc == 0)
      ROUND_TRIP(struct proto_progress, v, proto_progress_build,
                 proto_progress_parse(js, jl, DEPLOY, ID, &w, &e2));
    break;
  }
  case 6: {
    struct proto_report v;
    rc = proto_report_parse(p, n, ID, &v, &err);
    fuzz_check_err(rc, &err, "proto_report_parse");
    if (rc == 0)
      ROUND_TRIP(struct proto_report, v, proto_report_build,
                 proto_report_parse(js, jl, ID, &w, &e2));
    break;
  }
  default: {
    one_topic(p, n);
    struct proto_gateway v;
    rc = proto_gateway_parse(p, n, &v, &err);
    fuzz_check_err(rc, &err, "proto_gateway_parse");
    if (rc == 0)
      ROUND_TRIP(struct proto_gateway, v, proto_gateway_build,
                 proto_gateway_parse(js, jl, &w, &e2));
    break;
  }
  }
  return 0;
}
