#!/usr/bin/env bash
# Cold pull: wall time of `skopeo copy docker://… dir:…` of a multi-layer
# image of random (incompressible) gzip layers through edgepulld with an empty
# store (a fresh state dir and daemon for every repetition, so every blob
# streams from the upstream while skopeo reads it), against the same copy
# straight from docker-registry. Same client, same machine, same run;
# repetitions alternate the two, after one untimed warm-up of each.
# Reports edgepulld/direct time (aim: <= 1.05).
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BENCH_SIZE=200
BENCH_LAYERS=4
# shellcheck disable=SC2034 # read by bench_parse_args
BENCH_OPTS="--size:BENCH_SIZE --layers:BENCH_LAYERS"
bench_parse_args "Cold pull of a multi-layer image through edgepulld vs straight from the registry." \
  "  --size MIB         total size of the layers in MiB (default $BENCH_SIZE)
  --layers N         number of layers (default $BENCH_LAYERS)
" "$@"

ep_init bench_cold_pull $((600 + BENCH_REPS * BENCH_SIZE / 5))
ep_require_cmd docker-registry skopeo jq curl gzip tar
bench_ensure_build

ep_start_registry
layout=$(ep_tmpdir layout)
specs=()
for ((i = 0; i < BENCH_LAYERS; i++)); do
  specs+=("gzip:$((BENCH_SIZE * 1024 / BENCH_LAYERS))K")
done
ep_log "making a ${BENCH_LAYERS}-layer image of ${BENCH_SIZE} MiB"
ep_mkimage "$layout" v1 amd64 "${specs[@]}"
ep_push_image "$layout" v1 bench/image
rm -rf "$layout"
image_bytes=0
for d in "${EP_PUSHED_BLOBS[@]}"; do
  image_bytes=$((image_bytes + $(stat -c %s "$(ep_registry_blob_path "$d")")))
done

EDGEPULLD_ARGS=(--registry "$REGISTRY_HOST=$REGISTRY_URL" --default-registry "$REGISTRY_HOST")
bench_fresh_edgepulld "${EDGEPULLD_ARGS[@]}"
EP_LOGS+=("$EP_TMP/skopeo.log")

# pull SRC_HOST: one skopeo copy into a new dir; its wall time (s) in PULL_TIME.
pull() {
  local out t0 t1
  out=$(ep_tmpdir copy)
  t0=$(bench_now)
  ep_timeout 600 skopeo --tmpdir "$EP_TMP" copy --quiet --src-tls-verify=false \
    "docker://$1/bench/image:v1" "dir:$out" >>"$EP_TMP/skopeo.log" 2>&1 ||
    ep_die "skopeo copy from $1 failed"
  t1=$(bench_now)
  check_copy "$1" "$out"
  rm -rf "$out"
  PULL_TIME=$(bench_calc "$t1 - $t0")
}

# cpu_ticks PID: user + system CPU time of PID so far, in clock ticks.
cpu_ticks() {
  sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}
HZ=$(getconf CLK_TCK)

# check_copy SRC DIR: the manifest and every blob arrived intact (once per source).
CHECKED=" "
check_copy() {
  local d f bad=0
  [[ $CHECKED != *" $1 "* ]] || return 0
  CHECKED+="$1 "
  for d in "${EP_PUSHED_BLOBS[@]}"; do
    f=$2/${d#sha256:}
    [ -f "$f" ] && [ "$(ep_sha256 "$f")" = "$d" ] || bad=1
  done
  [ "$(ep_sha256 "$2/manifest.json")" = "$EP_PUSHED_DIGEST" ] || bad=1
  if [ "$bad" = 0 ]; then
    ep_pass "copy from $1 is intact"
  else
    ep_fail "copy from $1 is not intact"
  fi
}

pull "$REGISTRY_HOST"
pull "127.0.0.1:$EP_PORT"

direct=() epd=() ratio=() upstream=() cpu_direct=() cpu_epd=() cpu_ratio=()
for ((i = 1; i <= BENCH_REPS; i++)); do
  bench_fresh_edgepulld
  r0=$(cpu_ticks "$REGISTRY_PID")
  pull "$REGISTRY_HOST"
  d=$PULL_TIME
  r1=$(cpu_ticks "$REGISTRY_PID")
  e0=$(cpu_ticks "$EP_PID")
  from=$(($(wc -l <"$REGISTRY_LOG") + 1))
  pull "127.0.0.1:$EP_PORT"
  e=$PULL_TIME
  r2=$(cpu_ticks "$REGISTRY_PID")
  e1=$(cpu_ticks "$EP_PID")
  cpu_direct+=("$(bench_calc "($r1 - $r0) / $HZ")")
  cpu_epd+=("$(bench_calc "($r2 - $r1 + $e1 - $e0) / $HZ")")
  cpu_ratio+=("$(bench_calc "($r2 - $r1 + $e1 - $e0) / ($r1 - $r0 > 0 ? $r1 - $r0 : 1)")")
  sent=$(ep_registry_blob_bytes "$from")
  direct+=("$d")
  epd+=("$e")
  ratio+=("$(bench_calc "$e / $d")")
  upstream+=("$(bench_calc "$sent / $image_bytes")")
  ep_log "rep $i: direct ${d}s, through edgepulld ${e}s (upstream sent $sent of $image_bytes bytes)"
done

bench_record "straight from docker-registry (baseline)" s "%.2f" "${direct[@]}"
bench_record "through edgepulld, empty store" s "%.2f" "${epd[@]}"
bench_record "**ratio edgepulld / direct** (aim ≤ 1.05)" "×" "%.3f" "${ratio[@]}"
bench_record "server CPU per pull, direct: docker-registry" s "%.2f" "${cpu_direct[@]}"
bench_record "server CPU per pull, via edgepulld: docker-registry + edgepulld" s "%.2f" "${cpu_epd[@]}"
bench_record "ratio of server CPU, via edgepulld / direct" "×" "%.2f" "${cpu_ratio[@]}"
bench_record "upstream blob bytes / image size, per edgepulld pull" "×" "%.2f" "${upstream[@]}"
bench_note "Image: $BENCH_LAYERS gzip layers of random bytes, $image_bytes bytes of blobs in all;" \
  "client: skopeo copy --src-tls-verify=false docker://HOST/bench/image:v1 dir:… (skopeo $(skopeo --version | awk '{ print $3 }'))."
bench_report "cold_pull: a ${BENCH_SIZE} MiB, ${BENCH_LAYERS}-layer image"
ep_finish
