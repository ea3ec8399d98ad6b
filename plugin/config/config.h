/* edgepulld's configuration: one table of options, each with its type,
 * bounds and default, read from the command line (`--state-dir DIR`) and from
 * an INI file (`state-dir = DIR` in section [edgepulld]) by libinih. Every
 * flag is also a key. Command-line flags win over the file whatever their
 * order. Errors name the file, line and key, or the flag, at fault.
 *
 *   [edgepulld]
 *   state-dir = /var/lib/edgepull
 *   listen = 127.0.0.1:5050
 *   registry = 127.0.0.1:5000=http://127.0.0.1:5000   ; repeatable
 *   allow-registry = ghcr.io                          ; repeatable
 *   tag-ttl = 300
 *
 *   [registry "registry.example.com"]
 *   url = https://registry.example.com
 *   username = robot
 *   password-file = /etc/edgepull/example.password
 */
#ifndef EP_PLUGIN_CONFIG_H
#define EP_PLUGIN_CONFIG_H

#include <stdbool.h>
#include <stdio.h>

#include "common/err.h"

#define CONFIG_MAX_REGISTRIES 32

struct config_registry {
  char host[256];
  char url[512];      /* "" = default for host */
  char username[128]; /* "" = anonymous */
  char password[256];
};

struct edgepulld_config {
  char state_dir[1024];       /* --state-dir, default /var/lib/edgepull */
  char listen[128];           /* --listen, default 127.0.0.1:5050 */
  char peer_listen[128];      /* --peer-listen, "" = off */
  char metrics_listen[128];   /* --metrics-listen, "" = /metrics on --listen only */
  bool gateway;               /* --gateway */
  bool upstream_fallback;     /* --upstream-fallback */
  char broker[256];           /* --broker HOST:PORT */
  char locality[64];          /* --locality */
  char node_id[64];           /* --node-id, default hostname */
  char gateway_id[64];        /* --gateway-id: pins the gateway; "" = the coordinator's word */
  char default_registry[256]; /* --default-registry, default docker.io */
  char ca_file[1024];         /* --ca-file, extra CA bundle for upstreams */
  int tag_ttl_s;              /* --tag-ttl, default 300, 0..604800 */
  int max_connections;        /* --max-connections, default 256, 1..16384 */
  int connect_timeout_s;      /* --connect-timeout, default 10 */
  /* bounds on connections and fetch jobs (issue 11); see docs/design.md */
  int header_timeout_s;     /* --header-timeout, default 15: whole request headers */
  int local_max_per_ip;     /* --local-max-per-ip, default 0 = --max-connections */
  int peer_max_per_ip;      /* --peer-max-per-ip, default 32 */
  int max_fetches;          /* --max-fetches, default 64 concurrent fetch jobs */
  int fetch_orphan_grace_s; /* --fetch-orphan-grace, default 30 */
  int partial_max_age_s;    /* --partial-max-age, default 86400 */
  /* the disk GC (store/gc.h), sizes as written ("2G", "500M"; common/size.h) */
  char store_max[32];      /* --store-max, "0" = no quota */
  char store_min_free[32]; /* --store-min-free, "" = 5 % of the disk, at most 512M; "0" = off */
  /* locality coordination (the node agent) */
  char broker_username[128];       /* --broker-username, "" = anonymous */
  char broker_password_file[1024]; /* --broker-password-file, read by the agent at start */
  char broker_ca_file[1024];       /* --broker-ca-file: TLS to the broker when set */
  char advertise_addr[64]; /* --advertise-addr, "" = host of --peer-listen unless a wildcard */
  int link_mbps;           /* --link-mbps, default 100, 1..1000000 */
  int keepalive_s; /* --keepalive, MQTT keepalive, default 10, 5..600 (libmosquitto's minimum is 5)
                    */
  int heartbeat_s; /* --heartbeat, state refresh, default 30, 1..3600 */
  char peer_secret_file[1024];   /* --peer-secret-file: locality secret peers must present */
  char peer_ca[1024];            /* --peer-ca: locality CA (PEM); mutual TLS with peers */
  char peer_cert[1024];          /* --peer-cert: this node's certificate, names node_id */
  char peer_key[1024];           /* --peer-key: its key */
  bool peer_insecure;            /* --peer-insecure: plain HTTP between peers (tests) */
  char containerd_address[1024]; /* --containerd-address, for deploy --import containerd */
  char docker_socket[1024];      /* --docker-socket, for deploy --import docker */
  int peer_stall_timeout_s;      /* --peer-stall-timeout, default 5, 1..300 */
  int fetch_budget_s;            /* --fetch-budget, default 60, 1..3600 */
  int peer_min_rate_kbs;         /* --peer-min-rate, default 16 KB/s, 0 = off */
  int max_blob_mb;               /* --max-blob-size, default 16384 MB */
  /* bandwidth caps in bytes per second as written ("20M", "2.5MiB"; common/size.h),
   * "" or "0" = off; the daemon parses them into its buckets */
  char upstream_max_rate[32];   /* --upstream-max-rate: all transfers from registries */
  char peer_max_rate[32];       /* --peer-max-rate: all answers served to peers */
  char snapshotter_socket[108]; /* --snapshotter-socket (unix), "" = off */
  char snapshotter_root[1024];  /* --snapshotter-root, "" = <state-dir>/snapshots */
  bool local_any_registry;      /* --local-any-registry: the local endpoint names any registry */
  /* Every registry named here (--registry, --allow-registry, [registry "HOST"])
   * is in the allowlist, with docker.io and --default-registry. */
  struct config_registry registries[CONFIG_MAX_REGISTRIES];
  size_t nregistries;
};

void config_defaults(struct edgepulld_config *c);
/* Parses argv (after defaults). `--config FILE` is loaded first, wherever it
 * stands, then every other flag applies on top. Returns 0, 1 when --help or
 * --version was handled (caller exits 0), <0 on error. */
int config_parse_args(struct edgepulld_config *c, int argc, char **argv, ep_err *err);
int config_load_file(struct edgepulld_config *c, const char *path, ep_err *err);
/* Splits "HOST=URL" and adds or updates a registry entry. */
int config_add_registry_mapping(struct edgepulld_config *c, const char *spec, ep_err *err);
/* Adds HOST to the registries (the allowlist) with the default endpoint,
 * or leaves an entry for it as it is. */
int config_allow_registry(struct edgepulld_config *c, const char *host, ep_err *err);
/* Checks cross-field rules (e.g. --broker needs --locality). */
int config_validate(const struct edgepulld_config *c, ep_err *err);
void config_usage(FILE *out, const char *argv0);

#endif
