/* Unit tests for common/escape: both kinds at their bounds, hostile bytes,
 * tiny outputs, in-place masking, and the cases the six older escapers
 * (ref_quote, proto_quote, digest's quote_input, upstream_sanitize,
 * ctl_sanitize, proto_text_sanitize) are tested with. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/escape.h"

static void test_quote_basic(void **state) {
  char out[32];
  (void)state;
  assert_int_equal(ep_escape(out, sizeof out, "ab\x01\"\\", 5, EP_ESCAPE_QUOTE), 14);
  assert_string_equal(out, "ab\\x01\\x22\\x5c");
  ep_escape(out, sizeof out, "a\0b", 3, EP_ESCAPE_QUOTE); /* a NUL is a byte like any other */
  assert_string_equal(out, "a\\x00b");
  ep_escape(out, sizeof out, "\xff\x80\x7f", 3, EP_ESCAPE_QUOTE);
  assert_string_equal(out, "\\xff\\x80\\x7f");
  ep_escape(out, sizeof out, "", 0, EP_ESCAPE_QUOTE);
  assert_string_equal(out, "");
  ep_quote(out, sizeof out, "plain text ~");
  assert_string_equal(out, "plain text ~");
  ep_quote(out, sizeof out, NULL);
  assert_string_equal(out, "(null)");
  ep_escape(out, sizeof out, NULL, 5, EP_ESCAPE_MASK);
  assert_string_equal(out, "(null)");
}

static void test_quote_bounds(void **state) {
  char out[EP_QUOTE_BUF];
  char in[200];
  (void)state;
  /* a whole digest string is shown whole */
  const char *dg = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  ep_quote(out, sizeof out, dg);
  assert_string_equal(out, dg);
  /* EP_ESCAPE_SHOW bytes shown, then "..." */
  memset(in, 'a', sizeof in);
  in[sizeof in - 1] = '\0';
  ep_quote(out, sizeof out, in);
  assert_int_equal(strlen(out), EP_ESCAPE_SHOW + 3);
  assert_memory_equal(out + EP_ESCAPE_SHOW, "...", 3);
  /* exactly EP_ESCAPE_SHOW: no dots */
  in[EP_ESCAPE_SHOW] = '\0';
  ep_quote(out, sizeof out, in);
  assert_int_equal(strlen(out), EP_ESCAPE_SHOW);
  /* the worst case fits EP_QUOTE_BUF whole */
  memset(in, 0x01, sizeof in);
  assert_int_equal(ep_escape(out, sizeof out, in, sizeof in, EP_ESCAPE_QUOTE),
                   EP_ESCAPE_SHOW * 4 + 3);
  /* small outputs: cut with what dots fit, never overrun */
  for (size_t cap = 1; cap < 40; cap++) {
    char small[40];
    memset(small, 'Z', sizeof small);
    size_t n = ep_escape(small, cap,
                         "0123456789\x01\x02\x03"
                         "abcdefghijklmnop",
                         29, EP_ESCAPE_QUOTE);
    assert_true(n < cap);
    assert_int_equal(strlen(small), n);
    assert_int_equal(small[cap], 'Z');
  }
  char four[4];
  ep_escape(four, sizeof four, "abcdef", 6, EP_ESCAPE_QUOTE);
  assert_true(strlen(four) < 4);
  char q32[32];
  ep_escape(q32, sizeof q32, "0123456789012345678901234567890123456789", 40, EP_ESCAPE_QUOTE);
  assert_non_null(strstr(q32, "..."));
  /* an escape is never split */
  ep_escape(q32, 9, "a\x01\x02", 3, EP_ESCAPE_QUOTE);
  assert_null(strstr(q32, "\\x0..."));
  assert_int_equal(ep_escape(NULL, 10, "a", 1, EP_ESCAPE_QUOTE), 0);
  assert_int_equal(ep_escape(q32, 0, "a", 1, EP_ESCAPE_QUOTE), 0);
}

static void test_mask(void **state) {
  char out[16];
  (void)state;
  assert_int_equal(ep_escape(out, sizeof out, "bell\a\x1b[2J\xc3\xa9", 11, EP_ESCAPE_MASK), 11);
  assert_string_equal(out, "bell??[2J??");
  /* cut at the output's size */
  assert_int_equal(ep_escape(out, 4, "abcdef", 6, EP_ESCAPE_MASK), 3);
  assert_string_equal(out, "abc");
  assert_int_equal(ep_escape(out, 1, "abcdef", 6, EP_ESCAPE_MASK), 0);
  assert_string_equal(out, "");
  /* upstream_sanitize's strip_query: the caller passes the length up to '?' */
  const char *url = "https://cdn/x?sig=SECRET";
  ep_escape(out, sizeof out, url, strcspn(url, "?"), EP_ESCAPE_MASK);
  assert_string_equal(out, "https://cdn/x");
  /* in place */
  char s[] = "a\nb\tc\x7f";
  ep_escape(s, sizeof s, s, strlen(s), EP_ESCAPE_MASK);
  assert_string_equal(s, "a?b?c?");
}

static void test_sanitize(void **state) {
  (void)state;
  char b[16];
  snprintf(b, sizeof b, "bell\a");
  ep_sanitize(b, 255);
  assert_string_equal(b, "bell?");
  snprintf(b, sizeof b, "0123456789");
  ep_sanitize(b, 4);
  assert_string_equal(b, "0123");
  snprintf(b, sizeof b, "ok");
  ep_sanitize(b, SIZE_MAX);
  assert_string_equal(b, "ok");
  b[0] = '\0';
  ep_sanitize(b, 0);
  assert_string_equal(b, "");
  ep_sanitize(NULL, 3);
  char hi[] = "\x80\xff ~";
  ep_sanitize(hi, SIZE_MAX);
  assert_string_equal(hi, "?? ~");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_quote_basic),
      cmocka_unit_test(test_quote_bounds),
      cmocka_unit_test(test_mask),
      cmocka_unit_test(test_sanitize),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
