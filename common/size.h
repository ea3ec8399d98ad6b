/* Sizes and rates as people write them: "20M", "2.5MiB", "64k", "1048576".
 * Decimal multipliers K, M, G, T (powers of 1000) and binary ones Ki, Mi,
 * Gi, Ti (powers of 1024), case-insensitive, an optional trailing "B", a
 * decimal fraction allowed ("2.5MiB"). The unit is bytes: a rate flag reads
 * the same string as bytes per second. */
#ifndef EP_COMMON_SIZE_H
#define EP_COMMON_SIZE_H

#include <stdint.h>

/* 0 and *out set, or -1 for anything else (empty, a sign, an unknown unit,
 * trailing text, more than 2^62). */
int ep_size_parse(const char *s, uint64_t *out);

#endif
