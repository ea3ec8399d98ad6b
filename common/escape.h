/* One escaper for text that did not come from us: a name in an error
 * message, a registry's error body in the log, a node's reason on a
 * terminal. Two kinds cover every use:
 *  - EP_ESCAPE_QUOTE, for messages that quote input: printable ASCII is
 *    kept, every other byte and '"' and '\\' become \xNN, at most
 *    EP_ESCAPE_SHOW input bytes are shown and "..." marks a cut;
 *  - EP_ESCAPE_MASK, for display of free text: every byte outside
 *    0x20..0x7e becomes '?', one output byte per input byte, cut silently
 *    at the output's size (so it may run in place).
 * Both always NUL-terminate dst (dstlen > 0) and never write past dstlen. */
#ifndef EP_COMMON_ESCAPE_H
#define EP_COMMON_ESCAPE_H

#include <stddef.h>

/* Input bytes shown by EP_ESCAPE_QUOTE: a whole "sha256:<64 hex>" fits. */
#define EP_ESCAPE_SHOW 72
/* A dst that holds any quote whole: 4 bytes per shown byte, "...", NUL. */
#define EP_QUOTE_BUF (EP_ESCAPE_SHOW * 4 + 8)

enum ep_escape_kind {
  EP_ESCAPE_QUOTE,
  EP_ESCAPE_MASK,
};

/* Escapes exactly srclen bytes of src (NUL bytes included) into dst.
 * src NULL writes "(null)". Returns the length written (without the NUL).
 * With EP_ESCAPE_MASK dst may be src. */
size_t ep_escape(char *dst, size_t dstlen, const char *src, size_t srclen,
                 enum ep_escape_kind kind);
/* EP_ESCAPE_QUOTE of a C string (read at most EP_ESCAPE_SHOW + 1 bytes). */
size_t ep_quote(char *dst, size_t dstlen, const char *s);
/* EP_ESCAPE_MASK in place, and cut s to at most max bytes. */
void ep_sanitize(char *s, size_t max);

#endif
