/* Unit tests for store/digest: strict parsing (hostile strings never become
 * a digest), known sha256 vectors, streaming equals one-shot. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/unit/ep_test.h"

#include "store/digest.h"

#define HEX64 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define HEX64_UPPER "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"
#define EMPTY_SHA256 HEX64
#define ABC_SHA256 "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

static void test_parse_good(void **state) {
  (void)state;
  digest_t d;
  ep_err e = {0};
  assert_int_equal(digest_parse("sha256:" HEX64, &d, &e), 0);
  assert_string_equal(d.hex, HEX64);
  char s[DIGEST_STR_LEN + 1];
  digest_format(&d, s);
  assert_string_equal(s, "sha256:" HEX64);
  assert_int_equal(strlen(s), DIGEST_STR_LEN);

  digest_t h;
  assert_int_equal(digest_parse_hex(HEX64, &h, &e), 0);
  assert_true(digest_equal(&d, &h));
  digest_t other;
  assert_int_equal(digest_parse("sha256:" ABC_SHA256, &other, NULL), 0);
  assert_false(digest_equal(&d, &other));
  /* A NULL err and a NULL out are allowed (validation only). */
  assert_int_equal(digest_parse("sha256:" HEX64, NULL, NULL), 0);
}

struct hostile {
  const char *s;
  size_t len; /* 0: strlen; else bytes incl. embedded NULs (for the record) */
  int code;
};

static const struct hostile hostile_inputs[] = {
    {"sha256:../../etc/passwd", 0, EP_EINVAL},
    {"sha256:" HEX64_UPPER, 0, EP_EINVAL},
    {"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85", 0, EP_EINVAL},
    {"sha256:" HEX64 "5", 0, EP_EINVAL},
    {"sha512:cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0"
     "ff8318d2877eec2f63b931bd47417a81a538327af927da3e",
     0, EP_EUNSUPPORTED},
    {"sha384:38b060a751ac96384cd9327eb1b1e36a21fdb71114be07434c0cc7bf63f6e1da274edebfe76f65fbd5"
     "1ad2f14898b95b",
     0, EP_EUNSUPPORTED},
    {"md5:d41d8cd98f00b204e9800998ecf8427e", 0, EP_EUNSUPPORTED},
    {"sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564", 0, EP_EUNSUPPORTED},
    {"", 0, EP_EINVAL},
    {"sha256:", 0, EP_EINVAL},
    {"sha256:e3b0c44298fc1c149afbf4c8996fb924\0"
     "27ae41e4649b934ca495991b7852b855",
     72, EP_EINVAL},
    {" sha256:" HEX64, 0, EP_EINVAL},
    {"sha256:" HEX64 " ", 0, EP_EINVAL},
    {"sha256:" HEX64 "\n", 0, EP_EINVAL},
    {"sha256: " HEX64, 0, EP_EINVAL},
    {"SHA256:" HEX64, 0, EP_EINVAL},
    {"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8/5", 0, EP_EINVAL},
    {"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b..", 0, EP_EINVAL},
    {"sha256:../e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b78", 0, EP_EINVAL},
    {"sha256::" HEX64, 0, EP_EINVAL},
    {":" HEX64, 0, EP_EINVAL},
    {HEX64, 0, EP_EINVAL},
    {"../sha256:" HEX64, 0, EP_EINVAL},
    {"sha256:g3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", 0, EP_EINVAL},
    {"sha256:\xff\xfe\x01\x1b[31m", 0, EP_EINVAL},
    {"sha256:0xb0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", 0, EP_EINVAL},
    {"sha256:" HEX64 "%00", 0, EP_EINVAL},
    {"sha256:/etc/passwd", 0, EP_EINVAL},
    {"sha-:" HEX64, 0, EP_EINVAL},
};

static void test_parse_hostile(void **state) {
  (void)state;
  size_t n = sizeof hostile_inputs / sizeof hostile_inputs[0];
  assert_true(n >= 15);
  for (size_t i = 0; i < n; i++) {
    digest_t d;
    memset(&d, 'X', sizeof d);
    ep_err e = {0};
    int r = digest_parse(hostile_inputs[i].s, &d, &e);
    if (r != -hostile_inputs[i].code)
      fail_msg("input %zu (%s): got %d, want %d (%s)", i, hostile_inputs[i].s, r,
               -hostile_inputs[i].code, e.msg);
    assert_int_equal(e.code, hostile_inputs[i].code);
    assert_true(e.msg[0] != '\0');
    /* The message quotes the input escaped: no raw control bytes. */
    for (const char *c = e.msg; *c != '\0'; c++)
      assert_true((unsigned char)*c >= 0x20 && (unsigned char)*c < 0x7f);
    /* Nothing written to out on failure. */
    assert_int_equal(d.hex[0], 'X');
  }
}

static void test_parse_messages(void **state) {
  (void)state;
  ep_err e = {0};
  assert_int_equal(digest_parse("sha512:abcd", NULL, &e), -EP_EUNSUPPORTED);
  assert_non_null(strstr(e.msg, "sha512"));
  assert_non_null(strstr(e.msg, "only sha256"));
  assert_int_equal(digest_parse(NULL, NULL, &e), -EP_EINVAL);
  /* A huge input gives a bounded message. */
  size_t big = 100000;
  char *s = malloc(big + 1);
  assert_non_null(s);
  memcpy(s, "sha256:", 7);
  memset(s + 7, 'a', big - 7);
  s[big] = '\0';
  assert_int_equal(digest_parse(s, NULL, &e), -EP_EINVAL);
  assert_true(strlen(e.msg) < 300);
  memset(s, 'a', big);
  assert_int_equal(digest_parse(s, NULL, &e), -EP_EINVAL);
  free(s);
}

static void test_parse_hex(void **state) {
  (void)state;
  digest_t d;
  ep_err e = {0};
  static const char *const bad[] = {
      "",
      HEX64_UPPER,
      "sha256:" HEX64,
      HEX64 "0",
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",
      "../../../../../../../../../../../../../../../../../etc/passwd",
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8 "};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(digest_parse_hex(bad[i], &d, &e), -EP_EINVAL);
  assert_int_equal(digest_parse_hex(NULL, &d, &e), -EP_EINVAL);
  assert_int_equal(digest_parse_hex(ABC_SHA256, &d, &e), 0);
  assert_string_equal(d.hex, ABC_SHA256);
}

static void test_known_vectors(void **state) {
  (void)state;
  digest_t d;
  digest_buffer("", 0, &d);
  assert_string_equal(d.hex, EMPTY_SHA256);
  digest_buffer(NULL, 0, &d);
  assert_string_equal(d.hex, EMPTY_SHA256);
  digest_buffer("abc", 3, &d);
  assert_string_equal(d.hex, ABC_SHA256);

  digest_ctx *c = digest_ctx_new();
  assert_non_null(c);
  digest_ctx_final(c, &d);
  assert_string_equal(d.hex, EMPTY_SHA256);
  digest_ctx_update(c, "a", 1);
  digest_ctx_update(c, "", 0);
  digest_ctx_update(c, "bc", 2);
  digest_ctx_final(c, &d);
  assert_string_equal(d.hex, ABC_SHA256);
  /* Reset drops what was fed. */
  digest_ctx_update(c, "garbage", 7);
  digest_ctx_reset(c);
  digest_ctx_update(c, "abc", 3);
  digest_ctx_final(c, &d);
  assert_string_equal(d.hex, ABC_SHA256);
  digest_ctx_free(c);
  digest_ctx_free(NULL);
}

/* identity.ChainID of two layers, as containerd computes it */
static void test_chain_id(void **state) {
  (void)state;
  digest_t a, b, c;
  digest_parse("sha256:1111111111111111111111111111111111111111111111111111111111111111", &a, NULL);
  digest_parse("sha256:2222222222222222222222222222222222222222222222222222222222222222", &b, NULL);
  digest_chain_id(&a, &b, &c);
  digest_t want;
  const char *s = "sha256:1111111111111111111111111111111111111111111111111111111111111111 "
                  "sha256:2222222222222222222222222222222222222222222222222222222222222222";
  digest_buffer(s, strlen(s), &want);
  assert_true(digest_equal(&c, &want));
  digest_chain_id(NULL, &b, &c);
  assert_true(digest_equal(&c, &b));
}

static void test_streaming_random_chunks(void **state) {
  (void)state;
  size_t len = 3 * 1024 * 1024 + 17;
  unsigned char *buf = malloc(len);
  assert_non_null(buf);
  uint64_t seed = 0x9e3779b97f4a7c15ULL;
  for (size_t i = 0; i < len; i++)
    buf[i] = (unsigned char)ep_test_xorshift(&seed);
  digest_t once;
  digest_buffer(buf, len, &once);

  digest_ctx *c = digest_ctx_new();
  assert_non_null(c);
  for (int round = 0; round < 4; round++) {
    size_t off = 0;
    while (off < len) {
      size_t max = round == 0 ? 1 : (size_t)1 << (4 * round + 4);
      size_t n = 1 + (size_t)(ep_test_xorshift(&seed) % max);
      if (round == 0 && off > 4096)
        n = len - off; /* byte-at-a-time for a while, then the rest */
      if (n > len - off)
        n = len - off;
      digest_ctx_update(c, buf + off, n);
      off += n;
    }
    digest_t streamed;
    digest_ctx_final(c, &streamed);
    assert_true(digest_equal(&once, &streamed));
  }
  digest_ctx_free(c);
  free(buf);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_good),
      cmocka_unit_test(test_parse_hostile),
      cmocka_unit_test(test_parse_messages),
      cmocka_unit_test(test_parse_hex),
      cmocka_unit_test(test_known_vectors),
      cmocka_unit_test(test_chain_id),
      cmocka_unit_test(test_streaming_random_chunks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
