/* Errors with context, in the manner of crun: a fallible function takes an
 * `ep_err *`, fills it and returns a negative EP_E* code; each layer on the
 * way up may prepend what it was doing with ep_wrap(). The message lives in a
 * fixed buffer, so reporting an error never allocates and never leaks. */
#ifndef EP_COMMON_ERR_H
#define EP_COMMON_ERR_H

#include <stddef.h>

enum ep_errcode {
  EP_OK = 0,
  EP_EINVAL = 1,    /* bad input: name, digest, range, config, payload */
  EP_ENOTFOUND = 2, /* blob, manifest, tag or file does not exist */
  EP_EDIGEST = 3,   /* content does not match its digest */
  EP_EIO = 4,       /* local I/O failed */
  EP_ENOSPC = 5,    /* disk full */
  EP_ETOOBIG = 6,   /* over a configured or protocol bound */
  EP_ERANGE = 7,    /* unsatisfiable range */
  EP_EUPSTREAM = 8, /* upstream answered with an error status */
  EP_EUNREACH = 9,  /* upstream could not be reached */
  EP_EAUTH = 10,    /* upstream refused our credentials */
  EP_EUNSUPPORTED = 11,
  EP_EINTERNAL = 12,
  EP_ECANCELED = 13, /* shutting down, or the work was abandoned */
  EP_EDENIED = 14,   /* refused by policy: a registry not allowed, a forbidden redirect */
};

typedef struct ep_err {
  int code;      /* enum ep_errcode, 0 when no error */
  int sys_errno; /* errno at the failure, 0 when not a system error */
  char msg[512];
} ep_err;

#define EP_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* Set err (if non-NULL) and return -code. */
int ep_error(ep_err *err, int code, const char *fmt, ...) EP_PRINTF(3, 4);
/* Like ep_error, appending ": strerror(errno)" and recording errno.
 * ENOSPC/EDQUOT map to EP_ENOSPC. */
int ep_syserror(ep_err *err, int code, const char *fmt, ...) EP_PRINTF(3, 4);
/* Prepend "context: " to err->msg; returns -err->code (or -EP_EINTERNAL). */
int ep_wrap(ep_err *err, const char *fmt, ...) EP_PRINTF(2, 3);
void ep_err_clear(ep_err *err);
const char *ep_errcode_name(int code);

#endif
