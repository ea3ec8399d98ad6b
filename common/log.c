/* One line per event on stderr, which systemd's journal (or a test's log
 * file) keeps. Under journald (JOURNAL_STREAM set) a line starts with the
 * syslog priority "<N>" and journald adds the time; on a terminal it
 * starts with the UTC time and the level. Debug lines are dropped unless
 * EDGEPULL_DEBUG is set. A line is formatted on the stack and written with
 * one write(), so lines from different threads stay whole; nothing here
 * allocates or takes a lock, so any thread, and an error path, may log. */
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void ep_log(int prio, const char *fmt, ...) {
  if (prio >= EP_LOG_DEBUG && getenv("EDGEPULL_DEBUG") == NULL)
    return;
  char line[2048];
  int n;
  /* Under systemd, journald adds its own timestamps; on a terminal we do. */
  if (getenv("JOURNAL_STREAM") != NULL) {
    n = snprintf(line, sizeof line, "<%d>", prio);
  } else {
    static const char *const lv[] = {"", "", "", "error", "warning", "notice", "info", "debug"};
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = snprintf(line, sizeof line, "%02d:%02d:%02d.%03ld %s: ", tm.tm_hour, tm.tm_min, tm.tm_sec,
                 ts.tv_nsec / 1000000, lv[prio & 7]);
  }
  va_list ap;
  va_start(ap, fmt);
  if (n > 0 && (size_t)n < sizeof line)
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
  va_end(ap);
  size_t len = strnlen(line, sizeof line - 2);
  line[len++] = '\n';
  /* One write() per line keeps lines from different threads whole. */
  ssize_t w = write(STDERR_FILENO, line, len);
  (void)w;
}
