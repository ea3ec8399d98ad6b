/* Library calls whose signature holds a time_t, passed as int64_t seconds.
 *
 * edgepull is built with a 64-bit time_t everywhere (_TIME_BITS=64 on 32-bit
 * targets), but Debian 12's and Raspberry Pi OS bookworm's armhf libraries
 * keep the 32-bit one: calling them directly would pass or read half a
 * time_t. store/time_abi.c, the only caller, is compiled with the
 * libraries' own time_t and converts (docs/arm.md, "time_t across library
 * calls"; scripts/time-abi-check keeps the calls there). Add a wrapper here
 * rather than calling such a function anywhere else. */
#ifndef EP_STORE_TIME_ABI_H
#define EP_STORE_TIME_ABI_H

#include <stdint.h>

struct archive_entry;

/* The entry's mtime / atime in seconds since the epoch. Where the library's
 * time_t is 32 bits, a tar's 64-bit time reached us cut to its low 32 bits
 * (libarchive narrows it while parsing): they are read as unsigned, so the
 * range is 1970..2106 rather than 1901..2038. Layers practically never hold
 * times before 1970, and the unpacker clamps those to 0 anyway. */
int64_t ep_archive_entry_mtime(struct archive_entry *ae);
int64_t ep_archive_entry_atime(struct archive_entry *ae);
/* Sets the entry's mtime; -1 (nothing set) when the library's time_t
 * cannot hold sec. */
int ep_archive_entry_set_mtime(struct archive_entry *ae, int64_t sec, long nsec);
/* sizeof(time_t) * 8 in the libraries' ABI: 32 or 64. */
int ep_lib_time_bits(void);

#endif
