/* Errors as crun reports them: a negative EP_E* code that callers pass up,
 * and beside it one message in a caller-owned ep_err that each level may
 * prefix with what it was doing (ep_wrap), so the log reads "fetch X: blob
 * Y from Z: connection refused" without any level knowing the others. No
 * allocation (the message is a fixed buffer, cut from the inside), so an
 * error can be reported when memory ran out; a NULL ep_err keeps the code
 * and drops the text, for callers that only branch on it. */
#include "common/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int set_error(ep_err *err, int code, int sys, const char *fmt, va_list ap) {
  if (err == NULL)
    return -code;
  err->code = code;
  err->sys_errno = sys;
  int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  if (sys != 0 && n >= 0 && (size_t)n < sizeof err->msg)
    snprintf(err->msg + n, sizeof err->msg - (size_t)n, ": %s", strerror(sys));
  return -code;
}

int ep_error(ep_err *err, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int r = set_error(err, code, 0, fmt, ap);
  va_end(ap);
  return r;
}

int ep_syserror(ep_err *err, int code, const char *fmt, ...) {
  int sys = errno;
  if (sys == ENOSPC || sys == EDQUOT)
    code = EP_ENOSPC;
  va_list ap;
  va_start(ap, fmt);
  int r = set_error(err, code, sys, fmt, ap);
  va_end(ap);
  return r;
}

int ep_wrap(ep_err *err, const char *fmt, ...) {
  if (err == NULL)
    return -EP_EINTERNAL;
  char prefix[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  /* Truncation is fine here: the innermost detail is the last to go. */
  size_t plen = strnlen(prefix, sizeof prefix - 1);
  size_t mlen = strnlen(err->msg, sizeof err->msg - 1);
  if (plen + 2 + mlen >= sizeof err->msg)
    mlen = sizeof err->msg - 1 - (plen + 2);
  memmove(err->msg + plen + 2, err->msg, mlen);
  memcpy(err->msg, prefix, plen);
  memcpy(err->msg + plen, ": ", 2);
  err->msg[plen + 2 + mlen] = '\0';
  if (err->code == 0)
    err->code = EP_EINTERNAL;
  return -err->code;
}

void ep_err_clear(ep_err *err) {
  if (err == NULL)
    return;
  err->code = 0;
  err->sys_errno = 0;
  err->msg[0] = '\0';
}

const char *ep_errcode_name(int code) {
  static const char *const names[] = {"ok",
                                      "invalid input",
                                      "not found",
                                      "digest mismatch",
                                      "I/O error",
                                      "disk full",
                                      "too large",
                                      "range not satisfiable",
                                      "upstream error",
                                      "upstream unreachable",
                                      "upstream authentication failed",
                                      "unsupported",
                                      "internal error",
                                      "canceled",
                                      "refused by policy"};
  if (code < 0)
    code = -code;
  if ((size_t)code >= sizeof names / sizeof names[0])
    return "unknown error";
  return names[code];
}
