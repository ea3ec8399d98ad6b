/* `--import docker|containerd` when edgepulld's user may not use the
 * runtime's socket (issue 13, "Running as the packaged user"): the deploy
 * import (plugin/deploy/deploy_import.c), run as user nobody against a
 * root:root 0660 Docker socket and a root-only 0600 containerd socket that
 * really listen, fails with "permission denied on <socket>", not with
 * libcurl's "Couldn't connect to server" or ctr's exit status.
 *
 * Runs as root (it creates root-owned sockets and drops to nobody in a
 * child): exits 77 otherwise. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/unit/ep_test.h"

#include "plugin/deploy/deploy_int.h"

#define NOBODY 65534

struct perm {
  char dir[64];
  struct deploy_options o;
  int docker_fd, containerd_fd;
};

/* A listening unix socket at path, owned root:root with mode. */
static int listen_at(const char *path, mode_t mode) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 4) < 0 ||
      chown(path, 0, 0) < 0 || chmod(path, mode) < 0)
    return -1;
  return fd;
}

static int setup(void **state) {
  struct perm *p = calloc(1, sizeof *p);
  if (p == NULL)
    return -1;
  if (ep_test_tmpdir(p->dir, sizeof p->dir, "ep-test-perm-") < 0 ||
      chmod(p->dir, 0755) < 0) /* nobody may look inside */
    return -1;
  snprintf(p->o.mirror, sizeof p->o.mirror, "127.0.0.1:5050");
  snprintf(p->o.docker_socket, sizeof p->o.docker_socket, "%s/docker.sock", p->dir);
  snprintf(p->o.containerd_address, sizeof p->o.containerd_address, "%s/containerd.sock", p->dir);
  p->o.import_timeout_s = 10;
  p->docker_fd = listen_at(p->o.docker_socket, 0660);
  p->containerd_fd = listen_at(p->o.containerd_address, 0600);
  *state = p;
  return p->docker_fd < 0 || p->containerd_fd < 0 ? -1 : 0;
}

static int teardown(void **state) {
  struct perm *p = *state;
  close(p->docker_fd);
  close(p->containerd_fd);
  ep_test_rm_rf(p->dir);
  free(p);
  return 0;
}

/* In a child that has become nobody (no supplementary group): the import's
 * error. Returns the child's exit status: 0 when the message is right. */
static int import_as_nobody(const struct perm *p, enum proto_import imp, const char *sock) {
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    if (setgroups(0, NULL) < 0 || setgid(NOBODY) < 0 || setuid(NOBODY) < 0) {
      perror("dropping to nobody");
      _exit(3);
    }
    struct deploy_ref ref;
    ep_err err = {0};
    atomic_bool stop = false;
    if (deploy_ref_parse("registry.test/edge/dock:v1", &ref, &err) < 0)
      _exit(4);
    int r = deploy_import(&p->o, imp, &ref, &stop, &err);
    char want[600];
    snprintf(want, sizeof want, "permission denied on %s", sock);
    fprintf(stderr, "as uid %d, import into %s: %d: %s\n", (int)getuid(), proto_import_name(imp), r,
            err.msg);
    _exit(r < 0 && strstr(err.msg, want) != NULL ? 0 : 1);
  }
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  return WEXITSTATUS(status);
}

static void test_docker_0660(void **state) {
  struct perm *p = *state;
  assert_int_equal(import_as_nobody(p, PROTO_IMPORT_DOCKER, p->o.docker_socket), 0);
}

static void test_containerd_0600(void **state) {
  struct perm *p = *state;
  assert_int_equal(import_as_nobody(p, PROTO_IMPORT_CONTAINERD, p->o.containerd_address), 0);
}

int main(void) {
  if (geteuid() != 0) {
    fprintf(stderr, "test_deploy_perm needs root (root-owned sockets, then user nobody)\n");
    return 77;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_docker_0660, setup, teardown),
      cmocka_unit_test_setup_teardown(test_containerd_0600, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
