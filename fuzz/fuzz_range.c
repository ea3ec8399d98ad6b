/* Fuzz target: ref_parse_range, the Range header of a blob GET. Input: 8
 * bytes of blob size (little endian; shorter inputs give 1000) then the
 * header. An accepted range must lie inside the blob: first <= last < size,
 * and -EP_ERANGE / -EP_EINVAL are the only errors. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Includes of the code under test, in one place (paths move with plugin/). */
#include "fuzz/fuzz.h"
#include "plugin/ref/ref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint64_t blob = 1000;
  if (size >= 8) {
    blob = 0;
    for (int i = 7; i >= 0; i--)
      blob = blob << 8 | data[i];
    data += 8;
    size -= 8;
  }
  char *hdr = malloc(size + 1);
  if (hdr == NULL)
    return 0;
  memcpy(hdr, data, size);
  hdr[size] = '\0';
  uint64_t first = UINT64_MAX, last = UINT64_MAX;
  ep_err err = {0};
  int rc = ref_parse_range(hdr, blob, &first, &last, &err);
  fuzz_check_err(rc, &err, "ref_parse_range");
  if (rc == 0 && !(first <= last && last < blob))
    fuzz_fail("range [%llu, %llu] outside a blob of %llu bytes", (unsigned long long)first,
              (unsigned long long)last, (unsigned long long)blob);
  if (rc < 0 && rc != -EP_ERANGE && rc != -EP_EINVAL)
    fuzz_fail("unexpected error %d", rc);
  free(hdr);
  return 0;
}
