/* Fuzz target: plugin/config, edgepulld's INI file through libinih and the
 * option table. The input is the file (a memfd, read by path). Whatever
 * config_load_file and config_validate return, every string of the result
 * stays terminated and the registry table bounded. A `password-file` key
 * may name any readable file: config_read_secret bounds what it reads. */
#include <stdint.h>
#include <unistd.h>

/* Includes of the code under test, in one place (paths move with plugin/). */
#include "fuzz/fuzz.h"
#include "plugin/config/config.h"

static void check_config(const struct edgepulld_config *c) {
  FUZZ_TERMINATED(c->state_dir, "config");
  FUZZ_TERMINATED(c->listen, "config");
  FUZZ_TERMINATED(c->peer_listen, "config");
  FUZZ_TERMINATED(c->broker, "config");
  FUZZ_TERMINATED(c->locality, "config");
  FUZZ_TERMINATED(c->node_id, "config");
  FUZZ_TERMINATED(c->default_registry, "config");
  FUZZ_TERMINATED(c->broker_username, "config");
  FUZZ_TERMINATED(c->advertise_addr, "config");
  FUZZ_TERMINATED(c->peer_secret_file, "config");
  if (c->nregistries > CONFIG_MAX_REGISTRIES)
    fuzz_fail("%zu registries", c->nregistries);
  for (size_t i = 0; i < c->nregistries; i++) {
    FUZZ_TERMINATED(c->registries[i].host, "config");
    FUZZ_TERMINATED(c->registries[i].url, "config");
    FUZZ_TERMINATED(c->registries[i].username, "config");
    FUZZ_TERMINATED(c->registries[i].password, "config");
  }
  if (c->tag_ttl_s < 0 || c->tag_ttl_s > 604800 || c->max_connections < 1 ||
      c->max_connections > 65535)
    fuzz_fail("a bounded integer out of its bounds");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static struct edgepulld_config c; /* ~20 KiB */
  char path[64];
  int fd = fuzz_memfile(data, size, path, sizeof path);
  config_defaults(&c);
  ep_err err = {0};
  int rc = config_load_file(&c, path, &err);
  fuzz_check_err(rc, &err, "config_load_file");
  check_config(&c);
  if (rc == 0) {
    ep_err verr = {0};
    fuzz_check_err(config_validate(&c, &verr), &verr, "config_validate");
  }
  close(fd);
  return 0;
}
