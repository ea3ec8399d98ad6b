/* See nodes.h. */
#include "tests/lib/nodes.h"

#include <stdio.h>
#include <string.h>

#include "plugin/http/listen.h"
#include "tests/lib/testlib.h"

int ep_test_node_init(struct ep_test_node *n, const char *id, bool gateway) {
  if (n->dir[0] == '\0' && ep_test_tmpdir(n->dir, sizeof n->dir, "ep-node-") < 0)
    return -1;
  config_defaults(&n->d.cfg);
  snprintf(n->d.cfg.state_dir, sizeof n->d.cfg.state_dir, "%s", n->dir);
  snprintf(n->d.cfg.node_id, sizeof n->d.cfg.node_id, "%s", id);
  n->d.cfg.gateway = gateway;
  return 0;
}

static int serve(struct ep_test_node *n, enum server_mode mode, uint16_t *port, ep_err *e) {
  int fd = -1;
  if (listen_open("127.0.0.1:0", &fd, e) < 0)
    return -1;
  *port = ep_test_fd_port(fd);
  return edgepulld_serve(&n->d, fd, mode, e);
}

int ep_test_node_start(struct ep_test_node *n, const char *reg_host, uint16_t reg_port) {
  ep_err e = {0};
  char spec[300];
  snprintf(spec, sizeof spec, "%s=http://127.0.0.1:%u", reg_host, reg_port);
  /* Every node names the registry (its allowlist); only those given a port
   * map it to the fake one, so the others have no route to it of their own. */
  if (reg_port != 0 ? config_add_registry_mapping(&n->d.cfg, spec, &e) < 0
                    : config_allow_registry(&n->d.cfg, reg_host, &e) < 0)
    goto fail;
  if (edgepulld_open(&n->d, &(struct edgepulld_options){.source_wait_ms = 200}, &e) < 0)
    goto fail;
  if (serve(n, SERVER_LOCAL, &n->local_port, &e) < 0 ||
      serve(n, SERVER_PEER, &n->peer_port, &e) < 0)
    goto fail;
  return 0;
fail:
  fprintf(stderr, "node %s: %s\n", n->d.cfg.node_id, e.msg);
  return -1;
}

void ep_test_node_close(struct ep_test_node *n) {
  edgepulld_close(&n->d);
  if (ep_test_rm_rf(n->dir) != 0)
    fprintf(stderr, "cleanup of %s failed\n", n->dir);
}

void ep_test_node_set_parent(struct ep_test_node *n, const char *parent_id, uint16_t peer_port) {
  struct proto_parent p = {.has_parent = true, .peer_port = peer_port};
  snprintf(p.id, sizeof p.id, "%s", n->d.cfg.node_id);
  snprintf(p.parent, sizeof p.parent, "%s", parent_id);
  snprintf(p.addr, sizeof p.addr, "127.0.0.1");
  sources_set_parent(n->d.src, &p);
}

int ep_test_node_join(struct ep_test_node *n, const struct ep_test_node *gw) {
  ep_test_node_set_parent(n, gw->d.cfg.node_id, gw->peer_port);
  struct index_node g = {.online = true, .gateway = true, .peer_port = gw->peer_port};
  snprintf(g.id, sizeof g.id, "%s", gw->d.cfg.node_id);
  snprintf(g.addr, sizeof g.addr, "127.0.0.1");
  ep_err e = {0};
  if (index_node_put(n->d.idx, &g, &e) < 0) {
    fprintf(stderr, "node %s: %s\n", n->d.cfg.node_id, e.msg);
    return -1;
  }
  return 0;
}
