/* Logging to stderr with sd-daemon priority prefixes ("<3>"), so journald
 * files each line at its level when run under systemd and a terminal shows
 * plain text otherwise. There is no mutable log level: debug lines are
 * printed only when EDGEPULL_DEBUG is set in the environment. */
#ifndef EP_COMMON_LOG_H
#define EP_COMMON_LOG_H

#include "common/err.h"

enum { EP_LOG_ERR = 3, EP_LOG_WARNING = 4, EP_LOG_NOTICE = 5, EP_LOG_INFO = 6, EP_LOG_DEBUG = 7 };

void ep_log(int prio, const char *fmt, ...) EP_PRINTF(2, 3);
#define ep_log_err(...) ep_log(EP_LOG_ERR, __VA_ARGS__)
#define ep_log_warn(...) ep_log(EP_LOG_WARNING, __VA_ARGS__)
#define ep_log_info(...) ep_log(EP_LOG_INFO, __VA_ARGS__)
#define ep_log_debug(...) ep_log(EP_LOG_DEBUG, __VA_ARGS__)

#endif
