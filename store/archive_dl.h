/* libarchive, loaded when the first layer is unpacked rather than when
 * edgepulld starts.
 *
 * Why: Debian's libarchive brings libxml2, ICU (with libstdc++), liblzma,
 * liblz4, libbz2 and libacl into the process. Mapped at start, their
 * relocations and symbol tables cost ~2 MiB of resident memory in every
 * edgepulld, a quarter of its memory aim, while only the snapshotter
 * unpacks layers and a node that just mirrors never does.
 *
 * How: the unpacker's sources include this header after <archive.h> and
 * <archive_entry.h>, so their calls, written as libarchive documents
 * them, go through a table of pointers filled by dlsym. archive_dl_load
 * must have succeeded before any of them runs (unpack_stream calls it
 * first); after that the table never changes. Only store/unpack*.c and
 * store/time_abi.c include this header. */
#ifndef EP_STORE_ARCHIVE_DL_H
#define EP_STORE_ARCHIVE_DL_H

#include <archive.h>
#include <archive_entry.h>

#include "common/err.h"

/* Every libarchive function edgepulld calls, once: X(name). */
#define ARCHIVE_DL_FUNCTIONS(X)                                                                    \
  X(archive_entry_atime_is_set)                                                                    \
  X(archive_entry_atime_nsec)                                                                      \
  X(archive_entry_filetype)                                                                        \
  X(archive_entry_gid)                                                                             \
  X(archive_entry_hardlink)                                                                        \
  X(archive_entry_mtime_nsec)                                                                      \
  X(archive_entry_pathname)                                                                        \
  X(archive_entry_perm)                                                                            \
  X(archive_entry_rdevmajor)                                                                       \
  X(archive_entry_rdevminor)                                                                       \
  X(archive_entry_size)                                                                            \
  X(archive_entry_size_is_set)                                                                     \
  X(archive_entry_symlink)                                                                         \
  X(archive_entry_uid)                                                                             \
  X(archive_entry_xattr_next)                                                                      \
  X(archive_entry_xattr_reset)                                                                     \
  X(archive_error_string)                                                                          \
  X(archive_read_data)                                                                             \
  X(archive_read_data_block)                                                                       \
  X(archive_read_free)                                                                             \
  X(archive_read_new)                                                                              \
  X(archive_read_next_header)                                                                      \
  X(archive_read_open)                                                                             \
  X(archive_read_support_filter_gzip)                                                              \
  X(archive_read_support_filter_zstd)                                                              \
  X(archive_read_support_format_empty)                                                             \
  X(archive_read_support_format_raw)                                                               \
  X(archive_read_support_format_tar)                                                               \
  X(archive_set_error)

/* Each field has the type of the function as this translation unit declares
 * it. The functions that take or return a time_t are not in it: time_abi.c
 * looks them up itself with archive_dl_sym. */
#define ARCHIVE_DL_FIELD(name) __typeof__(name) *name;
struct archive_dl {
  ARCHIVE_DL_FUNCTIONS(ARCHIVE_DL_FIELD)
};
#undef ARCHIVE_DL_FIELD

/* Loads libarchive once (thread-safe); 0, or an error naming what is
 * missing. */
int archive_dl_load(ep_err *err);

/* The table; its pointers are NULL until archive_dl_load succeeded. */
const struct archive_dl *archive_dl(void);

/* Any other libarchive symbol, after archive_dl_load: for store/time_abi.c,
 * the one file that may name libarchive's time_t functions
 * (scripts/time-abi-check). */
void *archive_dl_sym(const char *name);

#ifndef ARCHIVE_DL_IMPL
#define archive_entry_atime_is_set (archive_dl()->archive_entry_atime_is_set)
#define archive_entry_atime_nsec (archive_dl()->archive_entry_atime_nsec)
#define archive_entry_filetype (archive_dl()->archive_entry_filetype)
#define archive_entry_gid (archive_dl()->archive_entry_gid)
#define archive_entry_hardlink (archive_dl()->archive_entry_hardlink)
#define archive_entry_mtime_nsec (archive_dl()->archive_entry_mtime_nsec)
#define archive_entry_pathname (archive_dl()->archive_entry_pathname)
#define archive_entry_perm (archive_dl()->archive_entry_perm)
#define archive_entry_rdevmajor (archive_dl()->archive_entry_rdevmajor)
#define archive_entry_rdevminor (archive_dl()->archive_entry_rdevminor)
#define archive_entry_size (archive_dl()->archive_entry_size)
#define archive_entry_size_is_set (archive_dl()->archive_entry_size_is_set)
#define archive_entry_symlink (archive_dl()->archive_entry_symlink)
#define archive_entry_uid (archive_dl()->archive_entry_uid)
#define archive_entry_xattr_next (archive_dl()->archive_entry_xattr_next)
#define archive_entry_xattr_reset (archive_dl()->archive_entry_xattr_reset)
#define archive_error_string (archive_dl()->archive_error_string)
#define archive_read_data (archive_dl()->archive_read_data)
#define archive_read_data_block (archive_dl()->archive_read_data_block)
#define archive_read_free (archive_dl()->archive_read_free)
#define archive_read_new (archive_dl()->archive_read_new)
#define archive_read_next_header (archive_dl()->archive_read_next_header)
#define archive_read_open (archive_dl()->archive_read_open)
#define archive_read_support_filter_gzip (archive_dl()->archive_read_support_filter_gzip)
#define archive_read_support_filter_zstd (archive_dl()->archive_read_support_filter_zstd)
#define archive_read_support_format_empty (archive_dl()->archive_read_support_format_empty)
#define archive_read_support_format_raw (archive_dl()->archive_read_support_format_raw)
#define archive_read_support_format_tar (archive_dl()->archive_read_support_format_tar)
#define archive_set_error (archive_dl()->archive_set_error)
#endif

#endif
