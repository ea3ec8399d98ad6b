/* Byte counters of one network interface, as seen from a process's network
 * namespace (/proc/<pid>/net/dev), and the column specs of
 * ep_bench_netsample. Every function returns 0 or a negative errno. */
#ifndef EP_BENCH_NETDEV_H
#define EP_BENCH_NETDEV_H

#include <stdint.h>

#define NETDEV_NAME_MAX 32          /* a column name, without its NUL */
#define NETDEV_IFACE_MAX 15         /* IFNAMSIZ - 1 */
#define NETDEV_READ_MAX (64 * 1024) /* the most of /proc/<pid>/net/dev read */

enum netdev_dir { NETDEV_RX, NETDEV_TX };

/* One CSV column: NAME=PID:IFACE:rx|tx. */
struct netdev_spec {
  char name[NETDEV_NAME_MAX + 1];
  int pid;
  char iface[NETDEV_IFACE_MAX + 1];
  enum netdev_dir dir;
};

/* Parses the NUL-terminated text of /proc/<pid>/net/dev (two header lines,
 * then one newline-terminated "NAME: 16 counters" line per interface) and
 * stores the rx and tx byte counters of iface (either pointer may be NULL).
 * The whole text is validated: any malformed line, a counter above
 * UINT64_MAX, a truncated last line or a duplicated name gives -EINVAL.
 * -ENOENT when iface is not listed. */
int netdev_parse(const char *text, const char *iface, uint64_t *rx_bytes, uint64_t *tx_bytes);

/* Reads /proc/<pid>/net/dev (at most NETDEV_READ_MAX bytes, -EFBIG beyond)
 * and parses it with netdev_parse(). -ENOENT also when the process is gone. */
int netdev_read(int pid, const char *iface, uint64_t *rx_bytes, uint64_t *tx_bytes);

/* Parses NAME=PID:IFACE:rx|tx; NAME is [A-Za-z0-9_.-]{1,32}, PID a positive
 * int, IFACE 1..15 chars without '/', ':' or whitespace. -EINVAL otherwise;
 * out is written only on success. */
int netdev_spec_parse(const char *arg, struct netdev_spec *out);

/* 1 when name is a valid interface name as above, else 0. */
int netdev_iface_valid(const char *name);

#endif
