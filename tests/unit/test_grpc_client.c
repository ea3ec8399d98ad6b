/* plugin/grpc's unary client against peers that misbehave on purpose: raw sockets that write
 * hand-made HTTP/2 frames (or nothing) and never read, and the grpc-message it hands back. The
 * well-behaved server side is test_grpc's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/escape.h"
#include "plugin/grpc/grpc_client.h"
#include "plugin/grpc/grpc_int.h"

#include "ep_test.h"

static void test_percent_decode(void **state) {
  (void)state;
  char out[32];
  const char *in = "caf%C3%a9 100%25 %zz %4 %";
  size_t n = grpc_percent_decode((const uint8_t *)in, strlen(in), out, sizeof out);
  assert_int_equal(n, 19);
  assert_memory_equal(out, "caf\xc3\xa9 100% %zz %4 %", n);
  /* NUL and escape bytes decode like any other; the cap holds */
  n = grpc_percent_decode((const uint8_t *)"%00%1B[2J", 9, out, 3);
  assert_int_equal(n, 3);
  assert_memory_equal(out, "\0\x1b[", 3);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_percent_decode),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
