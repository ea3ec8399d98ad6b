#!/usr/bin/env bash
# Hostile requests against edgepulld's local endpoint: path traversal (raw and
# percent-encoded), malformed names, digests, ns values and ranges, huge
# headers and URLs, write methods. Every answer must be a 4xx (never 2xx or
# 5xx where a client error is at fault) with OCI error JSON where edgepulld
# itself answers; valid ranges must work exactly; afterwards the daemon must
# still be serving and nothing may have been written outside its state dir.
# shellcheck source=../lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source=../lib/mkimage.sh
. "$EP_SOURCE_DIR/tests/lib/mkimage.sh"

ep_init test_mirror_hostile 300
ep_require_root
ep_require_cmd docker-registry skopeo jq curl

ep_start_registry
layout=$(ep_tmpdir layout)
ep_mkimage "$layout" v1 amd64 gzip:1M tar:2M
ep_push_image "$layout" v1 edge/app
blob=${EP_PUSHED_LAYERS[0]}
cold=${EP_PUSHED_LAYERS[1]}
digest=$EP_PUSHED_DIGEST
ep_start_edgepulld --registry "$REGISTRY_HOST=$REGISTRY_URL"

ns=$REGISTRY_HOST
out=$(ep_tmpdir out)
b=$out/body
n=0

# Warm the cache so range requests hit a stored blob.
code=$(ep_http "$b" "$(ep_blob_url edge/app "$blob")")
ep_assert_eq 200 "$code" "GET of a valid blob"
size=$(stat -c %s "$b")
cp "$b" "$out/blob"

touch "$out/marker"
sleep 1 # mtime granularity: anything written from now on is newer

# expect_4xx WHAT CURL_ARGS...: a 4xx whose body is OCI error JSON.
expect_4xx() {
  local what=$1 code
  shift
  code=$(ep_http "$b" "$@")
  if [[ $code =~ ^4[0-9][0-9]$ ]]; then
    ep_pass "$what -> $code"
    ep_assert_error_json "$b" "$what"
  else
    ep_fail "$what: expected 4xx, got $code: $(head -c 200 "$b" 2>/dev/null | tr -c '[:print:]' '?')"
  fi
}

base=$EP_URL/v2
# Path traversal.
expect_4xx "raw ../ traversal" --path-as-is "$base/../../etc/passwd"
expect_4xx "raw ../ traversal in a name" --path-as-is "$base/edge/../../../etc/passwd/blobs/$blob?ns=$ns"
expect_4xx "%2e%2e traversal" --path-as-is "$base/%2e%2e/%2e%2e/etc/passwd"
expect_4xx "%2f traversal in a digest" --path-as-is "$base/edge/app/blobs/..%2f..%2f..%2fetc%2fpasswd?ns=$ns"
expect_4xx "%2f traversal in a tag" --path-as-is "$base/edge/app/manifests/..%2F..%2Findex.db?ns=$ns"
expect_4xx "traversal in ns" "$base/edge/app/blobs/$blob?ns=..%2F..%2Fetc"
expect_4xx "NUL byte in the name" --path-as-is "$base/edge%00/app/blobs/$blob?ns=$ns"
# Malformed names, digests, references.
expect_4xx "digest sha256:xyz" "$base/edge/app/blobs/sha256:xyz?ns=$ns"
expect_4xx "short sha256 digest" "$base/edge/app/blobs/sha256:abcd?ns=$ns"
hex=${blob#sha256:}
expect_4xx "upper-case hex digest" "$base/edge/app/blobs/sha256:${hex^^}?ns=$ns"
expect_4xx "over-long hex digest" "$base/edge/app/blobs/${blob}0?ns=$ns"
expect_4xx "sha512 digest" "$base/edge/app/blobs/sha512:$(printf 'a%.0s' $(seq 128))?ns=$ns"
expect_4xx "digest without algorithm" "$base/edge/app/blobs/${blob#sha256:}?ns=$ns"
expect_4xx "upper-case repository" "$base/Edge/App/blobs/$blob?ns=$ns"
expect_4xx "empty name component" "$base/edge//app/blobs/$blob?ns=$ns"
expect_4xx "tag of 300 chars" "$base/edge/app/manifests/$(printf 't%.0s' $(seq 300))?ns=$ns"
expect_4xx "name of 4000 chars" "$base/$(printf 'a%.0s' $(seq 4000))/blobs/$blob?ns=$ns"
expect_4xx "ns with spaces" "$base/edge/app/blobs/$blob?ns=a%20b"
expect_4xx "empty ns" "$base/edge/app/blobs/$blob?ns="
expect_4xx "unknown route" "$base/edge/app/tags/list/extra?ns=$ns"
expect_4xx "unknown blob" "$base/edge/app/blobs/sha256:$(printf '0%.0s' $(seq 64))?ns=$ns"

# Write methods: 404 or 405, never 2xx.
for m in PUT POST DELETE PATCH; do
  for p in "edge/app/manifests/v1" "edge/app/blobs/$blob" "edge/app/blobs/uploads/"; do
    code=$(ep_http "$b" -X "$m" --data-binary 'x' "$base/$p?ns=$ns")
    if [ "$code" = 404 ] || [ "$code" = 405 ]; then
      ep_pass "$m /v2/$p -> $code"
      ep_assert_error_json "$b" "$m /v2/$p"
    else
      ep_fail "$m /v2/$p: expected 404 or 405, got $code"
    fi
  done
done

# A Range on a blob not stored yet (answered while it streams in).
code=$(ep_http "$b" -H 'Range: bytes=1000-1999' "$(ep_blob_url edge/app "$cold")")
ep_assert_eq 206 "$code" "Range bytes=1000-1999 on a cold blob"
ep_curl -f -o "$out/cold" "$REGISTRY_URL/v2/edge/app/blobs/$cold"
ep_assert_eq "$(head -c 2000 "$out/cold" | tail -c 1000 | sha256sum)" "$(sha256sum <"$b")" \
  "cold range bytes are right"

# Ranges on a stored blob.
burl=$(ep_blob_url edge/app "$blob")
code=$(ep_http "$b" -H 'Range: bytes=0-9' "$burl")
ep_assert_eq 206 "$code" "Range bytes=0-9"
ep_assert_eq "bytes 0-9/$size" "$(ep_header "$b.h" Content-Range)" "Content-Range for 0-9"
ep_assert_eq "$(head -c 10 "$out/blob" | sha256sum)" "$(sha256sum <"$b")" "bytes 0-9 are right"
code=$(ep_http "$b" -H 'Range: bytes=-5' "$burl")
ep_assert_eq 206 "$code" "Range bytes=-5"
ep_assert_eq "$(tail -c 5 "$out/blob" | sha256sum)" "$(sha256sum <"$b")" "last 5 bytes are right"
code=$(ep_http "$b" -H "Range: bytes=100-" "$burl")
ep_assert_eq 206 "$code" "Range bytes=100-"
ep_assert_eq "$(tail -c +101 "$out/blob" | sha256sum)" "$(sha256sum <"$b")" "bytes 100- are right"
for r in "bytes=$size-" "bytes=$((size + 10))-$((size + 20))" "bytes=99999999999-"; do
  code=$(ep_http "$b" -H "Range: $r" "$burl")
  ep_assert_eq 416 "$code" "unsatisfiable Range: $r"
  ep_assert_eq "bytes */$size" "$(ep_header "$b.h" Content-Range)" "Content-Range for $r"
done
for r in "bytes=abc" "bytes=5-2" "bytes=--1" "items=0-1" "bytes=0-1,5-6" \
  "bytes=18446744073709551615-18446744073709551616" "bytes=-0"; do
  code=$(ep_http "$b" -H "Range: $r" "$burl")
  case $code in
  416 | 400) ep_pass "malformed Range '$r' -> $code" ;;
  200)
    ep_assert_eq "$blob" "$(ep_sha256 "$b")" "malformed Range '$r' ignored: full blob"
    ;;
  *) ep_fail "malformed Range '$r': expected 416, 400 or the full blob, got $code" ;;
  esac
done

# Oversized requests: the HTTP layer may answer on its own (no JSON needed).
big=$(head -c 65536 /dev/zero | tr '\0' 'a')
code=$(ep_http "$b" -H "X-Big: $big" "$burl")
ep_assert_match '^4[0-9][0-9]$' "$code" "64 KiB header -> 4xx"
code=$(ep_http "$b" "$base/edge/app/manifests/v1?ns=$ns&pad=${big}")
ep_assert_match '^4[0-9][0-9]$' "$code" "64 KiB URL -> 4xx"
many=()
for i in $(seq 200); do many+=(-H "X-H$i: $i"); done
code=$(ep_http "$b" "${many[@]}" "$burl")
ep_assert_match '^(200|4[0-9][0-9])$' "$code" "200 headers -> 200 or 4xx"

# Half-sent and garbage requests on raw sockets must not hurt the daemon.
for junk in 'GET /v2/ HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n' \
  '\x00\x01\x02\xff\xfe garbage\r\n\r\n' 'GET /v2/edge/app/blobs/'"$blob"'?ns='"$ns"' HTTP/1.1\r\n'; do
  # shellcheck disable=SC2059 # the escapes are the point
  printf "$junk" | ep_timeout 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$EP_PORT; cat >&3; sleep 1" \
    2>/dev/null || true
  n=$((n + 1))
done
ep_pass "sent $n junk requests on raw sockets"

# Still alive, still right.
ep_assert "edgepulld is alive" ep_edgepulld_alive
code=$(ep_http "$b" "$burl")
ep_assert_eq 200 "$code" "valid blob GET still works"
ep_assert_eq "$blob" "$(ep_sha256 "$b")" "valid blob still verifies"
code=$(ep_http "$b" -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
  "$(ep_manifest_url edge/app v1)")
ep_assert_eq 200 "$code" "valid manifest GET still works"
ep_assert_eq "$digest" "$(ep_sha256 "$b")" "manifest still verifies"

# Nothing written outside the state dir (our own logs and outputs excepted).
stray=$(find "$EP_TMP" -newer "$out/marker" -type f ! -path "$EP_STATE/*" ! -path "$out/*" \
  ! -name '*.log' -print)
ep_assert_eq "" "$stray" "no file written outside the state dir"
ep_assert_eq "" "$(find "$EP_STATE" -newer "$out/marker" -type f -name 'passwd*' -print)" \
  "nothing named passwd in the state dir"

ep_stop_edgepulld
ep_finish
