/* The escaper (see escape.h): one loop per kind, both bounded by the
 * output's size and, for quotes, by EP_ESCAPE_SHOW input bytes, so a
 * hostile string of any length costs a fixed amount to report. */
#include "common/escape.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static bool printable(unsigned char c) {
  return c >= 0x20 && c < 0x7f;
}

static size_t quote(char *dst, size_t dstlen, const char *src, size_t srclen) {
  static const char hex[] = "0123456789abcdef";
  size_t o = 0;
  for (size_t i = 0; i < srclen; i++) {
    unsigned char c = (unsigned char)src[i];
    bool plain = printable(c) && c != '"' && c != '\\';
    size_t need = plain ? 1 : 4;
    /* keep room for "..." and the NUL */
    if (i >= EP_ESCAPE_SHOW || o + need + 4 > dstlen) {
      for (int k = 0; k < 3 && o + 1 < dstlen; k++)
        dst[o++] = '.';
      break;
    }
    if (plain) {
      dst[o++] = (char)c;
    } else {
      dst[o++] = '\\';
      dst[o++] = 'x';
      dst[o++] = hex[c >> 4];
      dst[o++] = hex[c & 15];
    }
  }
  dst[o] = '\0';
  return o;
}

static size_t mask(char *dst, size_t dstlen, const char *src, size_t srclen) {
  size_t n = srclen < dstlen - 1 ? srclen : dstlen - 1;
  for (size_t i = 0; i < n; i++)
    dst[i] = printable((unsigned char)src[i]) ? src[i] : '?';
  dst[n] = '\0';
  return n;
}

size_t ep_escape(char *dst, size_t dstlen, const char *src, size_t srclen,
                 enum ep_escape_kind kind) {
  if (dst == NULL || dstlen == 0)
    return 0;
  if (src == NULL) {
    snprintf(dst, dstlen, "(null)");
    return strlen(dst);
  }
  return kind == EP_ESCAPE_QUOTE ? quote(dst, dstlen, src, srclen) : mask(dst, dstlen, src, srclen);
}

size_t ep_quote(char *dst, size_t dstlen, const char *s) {
  size_t n = s != NULL ? strnlen(s, EP_ESCAPE_SHOW + 1) : 0;
  return ep_escape(dst, dstlen, s, n, EP_ESCAPE_QUOTE);
}

void ep_sanitize(char *s, size_t max) {
  if (s == NULL)
    return;
  size_t n = strnlen(s, max);
  ep_escape(s, n + 1, s, n, EP_ESCAPE_MASK);
}
