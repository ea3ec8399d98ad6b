#include "common/size.h"

#include <ctype.h>
#include <stddef.h>
#include <strings.h>

#define SIZE_MAX_VALUE ((uint64_t)1 << 62)

/* The multiplier a suffix names ("", "k", "MiB", ...), 0 when none. */
static uint64_t suffix_mult(const char *s) {
  static const char units[] = "kmgt";
  uint64_t mult = 1;
  if (*s == '\0' || strcasecmp(s, "b") == 0)
    return 1;
  const char *u = NULL;
  for (const char *p = units; *p != '\0'; p++)
    if (tolower((unsigned char)*s) == *p)
      u = p;
  if (u == NULL)
    return 0;
  int binary = s[1] == 'i' || s[1] == 'I';
  const char *rest = s + 1 + binary;
  if (*rest != '\0' && strcasecmp(rest, "b") != 0)
    return 0;
  for (const char *p = units; p <= u; p++)
    mult *= binary ? 1024 : 1000;
  return mult;
}

int ep_size_parse(const char *s, uint64_t *out) {
  uint64_t whole = 0, frac = 0, frac_div = 1;
  const char *p = s;
  if (!isdigit((unsigned char)*p))
    return -1;
  for (; isdigit((unsigned char)*p); p++) {
    whole = whole * 10 + (uint64_t)(*p - '0');
    if (whole > SIZE_MAX_VALUE)
      return -1;
  }
  if (*p == '.') {
    p++;
    if (!isdigit((unsigned char)*p))
      return -1;
    for (; isdigit((unsigned char)*p); p++)
      if (frac_div < 1000000000) /* finer digits cannot matter to a byte count */
        frac = frac * 10 + (uint64_t)(*p - '0'), frac_div *= 10;
  }
  uint64_t mult = suffix_mult(p);
  if (mult == 0 || whole > SIZE_MAX_VALUE / mult)
    return -1;
  uint64_t v = whole * mult + (uint64_t)((double)frac / (double)frac_div * (double)mult);
  if (v > SIZE_MAX_VALUE)
    return -1;
  *out = v;
  return 0;
}
