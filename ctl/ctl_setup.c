/* `edgepullctl setup containerd|docker|podman`: points a container runtime
 * at edgepulld (docs/runtime-integration.md), so operators need not merge
 * example files by hand.
 *
 * Each runtime is a plan of files with their wanted content (computed in
 * ctl_setup_edit.c from the current content); a file already as wanted is
 * left alone, so a second run changes nothing and says so. --dry-run
 * prints the diffs and writes nothing; otherwise ctl_setup_record.c keeps
 * the backups and the record --undo follows. Paths: --root DIR prefixes
 * every default path (tests, images being built), --config and
 * --certs-dir name a file or directory outright. */
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "common/names.h"
#include "ctl/ctl.h"
#include "ctl/ctl_setup.h"

#define SETUP_HOSTS_MAX 32

enum runtime { RT_CONTAINERD, RT_DOCKER, RT_PODMAN };

struct sopts {
  enum runtime rt;
  const char *rt_name;
  bool dry_run, undo, snapshotter;
  const char *mirror, *root, *config, *certs_dir;
  const char *hosts[SETUP_HOSTS_MAX];
  size_t nhosts;
  char config_path[4096], record[4200];
};

static void usage(FILE *out) {
  fprintf(out,
          "Usage: edgepullctl setup containerd|docker|podman [OPTIONS]\n"
          "\n"
          "Configure a container runtime to pull through edgepulld, keeping the rest of its\n"
          "configuration as it is. A second run changes nothing; --undo restores every file\n"
          "byte for byte from FILE.edgepull-backup (made before the first change) and\n"
          "removes the files and directories setup created; a file edited since setup\n"
          "is first kept as FILE.edgepull-replaced.\n"
          "\n"
          "  containerd  config.toml: CRI registry config_path (default certs.d), and\n"
          "              CERTS/_default/hosts.toml with edgepulld as pull/resolve host\n"
          "  docker      daemon.json: \"registry-mirrors\" (Docker Hub images only)\n"
          "  podman      registries.conf.d/50-edgepull.conf (podman, buildah, skopeo,\n"
          "              CRI-O; `cri-o` is the same)\n"
          "\n"
          "  --dry-run          print the changes (diffs, new files), write nothing\n"
          "  --undo             put back what setup changed\n"
          "  --mirror HOST:PORT edgepulld's address (default %s)\n"
          "  --snapshotter      containerd: also the edgepull proxy snapshotter\n"
          "                     (%s) as the CRI snapshotter\n"
          "  --registry HOST    podman: a registry to mirror (repeatable; default docker.io,\n"
          "                     ghcr.io, quay.io); docker.io or a host with a '.', no port\n"
          "  --config PATH      the file to edit (default /etc/containerd/config.toml,\n"
          "                     /etc/docker/daemon.json,\n"
          "                     /etc/containers/registries.conf.d/50-edgepull.conf)\n"
          "  --certs-dir DIR    containerd: the hosts directory (default: config_path)\n"
          "  --root DIR         prefix every default path with DIR\n"
          "\n"
          "The undo record is CONFIG.edgepull-setup. Exit status: 0 done (or nothing to\n"
          "do), 1 a file could not be read, understood or written (nothing half-written),\n"
          "2 usage error.\n",
          SETUP_DEFAULT_MIRROR, SETUP_SNAP_SOCKET);
}

static int usage_err(const char *msg, const char *arg) {
  return ctl_usage_err("setup", msg, arg);
}

static int fail(ep_err *e) {
  ctl_errorf("setup: %s", e->msg);
  return CTL_EXIT_FAIL;
}

static void rooted(const struct sopts *o, const char *path, char *out, size_t cap) {
  snprintf(out, cap, "%s%s", o->root != NULL ? o->root : "", path);
}

static int check(int argc, char **argv, struct sopts *o);

static int parse(int argc, char **argv, struct sopts *o) {
  enum { O_DRY = 1000, O_UNDO, O_MIRROR, O_SNAP, O_REG, O_CONFIG, O_CERTS, O_ROOT, O_IGN };
  static const struct option longopts[] = {
      {"dry-run", no_argument, NULL, O_DRY},
      {"undo", no_argument, NULL, O_UNDO},
      {"mirror", required_argument, NULL, O_MIRROR},
      {"snapshotter", no_argument, NULL, O_SNAP},
      {"registry", required_argument, NULL, O_REG},
      {"config", required_argument, NULL, O_CONFIG},
      {"certs-dir", required_argument, NULL, O_CERTS},
      {"root", required_argument, NULL, O_ROOT},
      {"state-dir", required_argument, NULL, 'd'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  int c, code = 0;
  optind = 1;
  opterr = 0;
  while ((c = ctl_getopt(argc, argv, ":hd:", longopts, true, "setup", usage, &code)) != -1) {
    if (c == -2)
      return code;
    switch (c) {
    case O_DRY:
      o->dry_run = true;
      break;
    case O_UNDO:
      o->undo = true;
      break;
    case O_MIRROR:
      o->mirror = optarg;
      break;
    case O_SNAP:
      o->snapshotter = true;
      break;
    case O_CONFIG:
      o->config = optarg;
      break;
    case O_CERTS:
      o->certs_dir = optarg;
      break;
    case O_ROOT:
      o->root = optarg;
      break;
    case O_REG:
      if (o->nhosts >= SETUP_HOSTS_MAX)
        return usage_err("too many --registry", NULL);
      o->hosts[o->nhosts++] = optarg;
      break;
    default:
      break; /* -d: the global option, meaningless here */
    }
  }
  return check(argc, argv, o);
}

/* The runtime word and the options' consistency; the paths. */
static int check(int argc, char **argv, struct sopts *o) {
  if (optind + 2 != argc)
    return usage_err(optind + 2 > argc ? "which runtime? containerd, docker or podman"
                                       : "takes one runtime",
                     NULL);
  o->rt_name = argv[optind + 1];
  if (strcmp(o->rt_name, "containerd") == 0)
    o->rt = RT_CONTAINERD;
  else if (strcmp(o->rt_name, "docker") == 0)
    o->rt = RT_DOCKER;
  else if (strcmp(o->rt_name, "podman") == 0 || strcmp(o->rt_name, "cri-o") == 0)
    o->rt = RT_PODMAN;
  else
    return usage_err("unknown runtime (containerd, docker or podman)", o->rt_name);
  ep_err e = {0};
  if (names_hostport_parse(o->mirror, 0, NULL, &e) < 0)
    return usage_err(e.msg, "--mirror");
  if (o->root != NULL && o->root[0] != '/')
    return usage_err("--root must be an absolute path", o->root);
  if ((o->snapshotter || o->certs_dir) && o->rt != RT_CONTAINERD)
    return usage_err("--snapshotter and --certs-dir are for containerd", NULL);
  if (o->nhosts > 0 && o->rt != RT_PODMAN)
    return usage_err("--registry is for podman", NULL);
  static const char *const defaults[] = {"/etc/containerd/config.toml", "/etc/docker/daemon.json",
                                         "/etc/containers/registries.conf.d/50-edgepull.conf"};
  if (o->config != NULL)
    snprintf(o->config_path, sizeof o->config_path, "%s", o->config);
  else
    rooted(o, defaults[o->rt], o->config_path, sizeof o->config_path);
  snprintf(o->record, sizeof o->record, "%s.edgepull-setup", o->config_path);
  return -1;
}

/* ---- the plans ---- */

static int plan_containerd(struct sopts *o, struct setup_file *f, size_t *n, ep_err *e) {
  struct setup_cd cd = {.mirror = o->mirror, .snapshotter = o->snapshotter};
  int r = setup_file_load(&f[0], o->config_path, e);
  if (r == 0)
    r = setup_containerd_edit(f[0].old, f[0].oldlen, o->config_path, &cd, &f[0].new, &f[0].newlen,
                              e);
  if (r < 0)
    return r;
  *n = 1;
  char certs[4096], hosts[4200];
  if (o->certs_dir != NULL)
    snprintf(certs, sizeof certs, "%s", o->certs_dir);
  else
    rooted(o, cd.certs_dir, certs, sizeof certs);
  snprintf(hosts, sizeof hosts, "%s/_default/hosts.toml", certs);
  if ((r = setup_file_load(&f[1], hosts, e)) < 0)
    return r;
  *n = 2;
  char *want = setup_hosts_toml(o->mirror);
  if (want == NULL)
    return ep_error(e, EP_EINTERNAL, "out of memory");
  char host[300];
  snprintf(host, sizeof host, "[host.\"http://%s\"]", o->mirror);
  if (!f[1].exists) {
    f[1].new = want;
    f[1].newlen = strlen(want);
  } else {
    free(want);
    if (strstr(f[1].old, host) == NULL)
      return ep_error(e, EP_EINVAL,
                      "%s exists and does not list %s; add that table to it by hand or move the "
                      "file away, then rerun",
                      hosts, host);
  }
  printf("containerd: config_path %s (%s); every registry tries http://%s first\n", cd.certs_dir,
         cd.certs_dir_existing ? "already set" : "set by setup", o->mirror);
  printf("ctr does not read config.toml's registry settings: pull with\n"
         "  ctr images pull --hosts-dir %s IMAGE\n",
         certs);
  if (cd.imports)
    printf("note: the file has `imports`; setup did not read the imported files (a setting\n"
           "  there may override these)\n");
  if (cd.cri_disabled)
    printf("note: disabled_plugins lists the CRI plugin, so config_path has no effect until it "
           "is enabled;\n  ctr and nerdctl use the hosts directory with --hosts-dir\n");
  if (o->snapshotter)
    printf("CRI snapshotter: edgepull, at %s (start edgepulld's snapshotter first)\n",
           SETUP_SNAP_SOCKET);
  return 0;
}

static int plan_docker(struct sopts *o, struct setup_file *f, size_t *n, ep_err *e) {
  int r = setup_file_load(&f[0], o->config_path, e);
  *n = 1;
  if (r == 0)
    r = setup_docker_merge(f[0].old, f[0].oldlen, o->config_path, o->mirror, &f[0].new,
                           &f[0].newlen, e);
  if (r < 0)
    return r;
  printf("docker: registry-mirrors has http://%s (Docker Hub images only; other registries\n"
         "  are pulled directly unless Docker uses the containerd image store: see\n"
         "  docs/runtime-integration.md)\n",
         o->mirror);
  return 0;
}

/* The [[registry]] entries of registries.conf that the drop-in overrides. */
static void podman_notes(const struct sopts *o) {
  char main_conf[4096];
  rooted(o, "/etc/containers/registries.conf", main_conf, sizeof main_conf);
  struct setup_file f;
  ep_err e = {0};
  struct setup_toml t;
  if (setup_file_load(&f, main_conf, &e) < 0 || !f.exists) {
    setup_file_release(&f);
    return;
  }
  if (setup_toml_parse(f.old, f.oldlen, main_conf, &t, &e) < 0) {
    printf("warning: %s (podman reads it before the drop-in)\n", e.msg);
    setup_file_release(&f);
    return;
  }
  for (size_t k = 0; k < t.nkeys; k++) {
    const struct setup_tkey *key = &t.keys[k];
    const char *last = strrchr(key->path, SETUP_SEP[0]);
    if (strncmp(key->path, "registry" SETUP_SEP "\x1e", 10) != 0 || last == NULL ||
        strcmp(last + 1, "prefix") != 0 || key->str == NULL)
      continue;
    for (size_t h = 0; h < o->nhosts; h++)
      if (strcmp(o->hosts[h], key->str) == 0)
        printf("note: %s:%d configures %s too; the drop-in's entry replaces it\n", main_conf,
               key->line, key->str);
  }
  setup_toml_free(&t);
  setup_file_release(&f);
}

static int plan_podman(struct sopts *o, struct setup_file *f, size_t *n, ep_err *e) {
  static const char *const defaults[] = {"docker.io", "ghcr.io", "quay.io"};
  if (o->nhosts == 0)
    for (size_t k = 0; k < 3; k++)
      o->hosts[o->nhosts++] = defaults[k];
  char *want = setup_podman_dropin(o->mirror, o->hosts, o->nhosts, e);
  if (want == NULL)
    return -EP_EINVAL;
  int r = setup_file_load(&f[0], o->config_path, e);
  *n = 1;
  if (r < 0) {
    free(want);
    return r;
  }
  if (f[0].exists && strcmp(f[0].old, want) == 0) {
    free(want);
  } else {
    f[0].new = want;
    f[0].newlen = strlen(want);
  }
  printf("podman/CRI-O: registries through http://%s:", o->mirror);
  for (size_t k = 0; k < o->nhosts; k++)
    printf(" %s", o->hosts[k]);
  printf("\n");
  podman_notes(o);
  return 0;
}

static void restart_hint(const struct sopts *o) {
  static const char *const hints[] = {
      "systemctl restart containerd (kubelet and crictl see it then; ctr needs --hosts-dir)",
      "systemctl restart docker",
      "nothing for podman, buildah, skopeo (read on each run); CRI-O: systemctl restart crio"};
  printf("to apply: %s\n", hints[o->rt]);
}

/* One setup at a time per configuration directory: the lock is on the
 * directory holding the record (when it exists yet) and lasts until exit. */
static int lock_dir(const struct sopts *o, ep_err *e) {
  char dir[4200];
  snprintf(dir, sizeof dir, "%s", o->record);
  int fd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return 0;
  if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
    close(fd);
    return ep_error(e, EP_EINVAL, "%s: another edgepullctl setup is running there", dir);
  }
  return 0; /* fd stays open: the lock is released at exit */
}

static int run(struct sopts *o) {
  ep_err e = {0};
  if (!o->dry_run && lock_dir(o, &e) < 0)
    return fail(&e);
  if (o->undo) {
    if (setup_undo(o->record, o->dry_run, &e) < 0)
      return fail(&e);
    if (o->dry_run)
      printf("dry run: nothing changed\n");
    restart_hint(o);
    return CTL_EXIT_OK;
  }
  struct setup_file f[2];
  size_t n = 0;
  memset(f, 0, sizeof f);
  int (*plan[])(struct sopts *, struct setup_file *, size_t *,
                ep_err *) = {plan_containerd, plan_docker, plan_podman};
  int r = plan[o->rt](o, f, &n, &e);
  size_t changed = 0;
  for (size_t k = 0; k < n && r == 0; k++) {
    if (f[k].new == NULL)
      continue;
    changed++;
    if (!o->dry_run)
      continue;
    if (f[k].exists) {
      setup_print_diff(stdout, f[k].path, f[k].old, f[k].oldlen, f[k].new, f[k].newlen);
    } else {
      printf("would create %s:\n", f[k].path);
      fwrite(f[k].new, 1, f[k].newlen, stdout);
    }
  }
  if (r == 0 && changed > 0 && !o->dry_run)
    r = setup_apply(o->record, f, n, &e);
  for (size_t k = 0; k < n; k++)
    setup_file_release(&f[k]);
  if (r < 0)
    return fail(&e);
  if (changed == 0) {
    printf("%s is already set up for edgepull: nothing changed\n", o->rt_name);
    return CTL_EXIT_OK;
  }
  if (o->dry_run)
    printf("dry run: nothing written\n");
  else
    printf("undo with: edgepullctl setup %s --undo%s%s%s%s\n", o->rt_name,
           o->root != NULL ? " --root " : "", o->root != NULL ? o->root : "",
           o->config != NULL ? " --config " : "", o->config != NULL ? o->config : "");
  restart_hint(o);
  return CTL_EXIT_OK;
}

int ctl_setup_main(int argc, char **argv) {
  struct sopts o = {.mirror = SETUP_DEFAULT_MIRROR};
  int r = parse(argc, argv, &o);
  if (r >= 0)
    return r;
  return run(&o);
}
