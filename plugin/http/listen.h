/* Listening sockets: bound from an "ADDR:PORT" / "[V6ADDR]:PORT" spec, or
 * handed over by systemd socket activation (names "local", "peer", "snapshotter" and "metrics"), or
 * a unix socket for the snapshotter. */
#ifndef EP_PLUGIN_LISTEN_H
#define EP_PLUGIN_LISTEN_H

#include <netinet/in.h>
#include <sys/socket.h>

#include "common/err.h"

int listen_parse(const char *spec, struct sockaddr_storage *ss, socklen_t *len, ep_err *err);
/* A bound, listening, close-on-exec TCP socket. */
int listen_open(const char *spec, int *fd_out, ep_err *err);
/* Sockets passed by systemd: *local_fd, *peer_fd, *snap_fd and *metrics_fd
 * ("metrics") set to -1 when
 * not passed. An unnamed single socket is the local one. Returns the number of
 * sockets passed. */
int listen_from_systemd(int *local_fd, int *peer_fd, int *snap_fd, int *metrics_fd, ep_err *err);
/* A bound, listening, close-on-exec unix socket at path, mode 0600. A stale
 * socket at path is removed; anything else there is an error. */
int listen_unix(const char *path, int *fd_out, ep_err *err);

#endif
