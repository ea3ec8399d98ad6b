#!/usr/bin/env bash
# Serving a cached blob: download throughput of one large blob that edgepulld
# already holds complete in its store (answered with sendfile), against
# docker-registry serving the same blob from its own storage, on this machine,
# both over loopback with curl into /dev/null. Both copies sit in the page
# cache (each side is read once before measuring), so this compares the
# serving paths, not the disks. Repetitions alternate registry and edgepulld.
# Reports edgepulld/registry throughput (aim: >= 1.0).
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BENCH_SIZE=1024
# shellcheck disable=SC2034 # read by bench_parse_args
BENCH_OPTS="--size:BENCH_SIZE"
bench_parse_args "Throughput of edgepulld serving a cached blob vs docker-registry." \
  "  --size MIB         blob size in MiB (default $BENCH_SIZE)
" "$@"

ep_init bench_serve_cached $((600 + BENCH_REPS * BENCH_SIZE / 10))
ep_require_cmd docker-registry curl
bench_ensure_build

ep_start_registry
blob=$EP_TMP/blob.bin
ep_log "making a ${BENCH_SIZE} MiB random blob"
digest=$(bench_random_file "$blob" "$BENCH_SIZE")
size=$(stat -c %s "$blob")
bench_push_blob bench/blob "$blob" "$digest"
rm -f "$blob"
ep_start_edgepulld --registry "$REGISTRY_HOST=$REGISTRY_URL"

reg_url=$REGISTRY_URL/v2/bench/blob/blobs/$digest
ep_url=$(ep_blob_url bench/blob "$digest")

# fetch URL: prints the download speed in bytes/s; checks status and length.
fetch() {
  local out code got speed
  out=$(timeout -k 5 600 curl -s -o /dev/null -w '%{http_code} %{size_download} %{speed_download}' "$1")
  read -r code got speed <<<"$out"
  if [ "$code" != 200 ] || [ "$got" != "$size" ]; then
    ep_fail "GET $1: status $code, $got of $size bytes"
    return 1
  fi
  echo "$speed"
}

# The first GET through edgepulld fills its store (and is reported apart);
# one GET from the registry warms its copy too.
cold=$(fetch "$ep_url")
bench_wait_stored "$digest" 60 || ep_die "edgepulld did not commit $digest"
ep_assert_eq "$digest" "$(ep_sha256 "$(ep_store_blob "$digest")")" "edgepulld stored the verified blob"
fetch "$reg_url" >/dev/null
gets_before=$(ep_count_blob_gets "$digest")

reg=() epd=() ratio=()
for ((i = 1; i <= BENCH_REPS; i++)); do
  r=$(fetch "$reg_url")
  e=$(fetch "$ep_url")
  reg+=("$(bench_calc "$r / 1048576")")
  epd+=("$(bench_calc "$e / 1048576")")
  ratio+=("$(bench_calc "$e / $r")")
  ep_log "rep $i: registry $(bench_calc "$r / 1048576") MiB/s, edgepulld $(bench_calc "$e / 1048576") MiB/s"
done
ep_assert_eq "$((gets_before + BENCH_REPS))" "$(ep_count_blob_gets "$digest")" \
  "cached GETs through edgepulld never reached the registry"

bench_record "docker-registry (baseline)" MiB/s "%.0f" "${reg[@]}"
bench_record "edgepulld, blob cached" MiB/s "%.0f" "${epd[@]}"
bench_record "**ratio edgepulld / registry** (aim ≥ 1.0)" "×" "%.2f" "${ratio[@]}"
bench_record "edgepulld first (cold) GET, for reference" MiB/s "%.0f" "$(bench_calc "$cold / 1048576")"
bench_note "Blob: $BENCH_SIZE MiB of random bytes; curl -s -o /dev/null over 127.0.0.1, one stream at a time."
bench_report "serve_cached: a cached ${BENCH_SIZE} MiB blob"
ep_finish
