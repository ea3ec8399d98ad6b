/* systemd's service protocol, the three parts edgepulld speaks: readiness and
 * status notifications (sd_notify(3)), the watchdog's interval
 * (sd_watchdog_enabled(3)) and sockets passed by socket activation
 * (sd_listen_fds_with_names(3)).
 *
 * Why not libsystemd: linking it (with libgcrypt, libgpg-error and libcap it
 * pulls in) costs edgepulld ~0.7 MiB of resident memory, a tenth of its
 * memory aim, for four calls whose protocol systemd documents as a stable
 * interface meant to be reimplemented (environment variables and a datagram
 * on a unix socket; see sd_notify(3), "Notes", and sd_listen_fds(3)). The
 * functions below behave as their libsystemd counterparts for these uses. */
#ifndef EP_COMMON_SD_PROTO_H
#define EP_COMMON_SD_PROTO_H

#include <stdint.h>

/* The first file descriptor systemd passes (SD_LISTEN_FDS_START). */
#define SDP_LISTEN_FDS_START 3

/* sd_notify(0, state): > 0 sent, 0 not run by systemd (no NOTIFY_SOCKET),
 * -errno on failure. */
int sdp_notify(const char *state);

/* sd_notifyf(0, fmt, ...). */
int sdp_notifyf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* sd_watchdog_enabled(0, usec): > 0 and *usec set when systemd expects
 * WATCHDOG=1 pings (WATCHDOG_USEC set and WATCHDOG_PID, if set, is us),
 * 0 when not, -errno when the variables are malformed. */
int sdp_watchdog_enabled(uint64_t *usec);

/* sd_listen_fds_with_names(1, names): the number of sockets passed to this
 * process (from SDP_LISTEN_FDS_START on, made close-on-exec), 0 when none,
 * -errno when the variables are malformed. *names (may be NULL when 0 is
 * returned) gets one malloc'd name per socket, "unknown" when systemd gave
 * none, in a malloc'd array; free both. LISTEN_PID, LISTEN_FDS and
 * LISTEN_FDNAMES are removed from the environment, as libsystemd does with
 * unset_environment = 1, so that children do not take them for theirs. */
int sdp_listen_fds_with_names(char ***names);

#endif
