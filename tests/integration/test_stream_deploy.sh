#!/usr/bin/env bash
# Streamed deployment (issue 4) in the emulated locality: 6 nodes + gateway
# in network namespaces, uplink 200 Mbit/s to a docker-registry in the
# "cloud", LAN 100 Mbit/s per port, coordinator with tree:2.
#  a. `edgepullctl deploy IMAGE --wait --json --import none` (in the gateway)
#     of a 4-blob image (~24 MB) exits 0 with a final report;
#  b. every node holds every blob of the image, each file hashing to its name;
#  c. the registry served each blob exactly once (access log);
#  d. the gateway's uplink received at most 1.05 × the image (payload; the
#     wire bytes are divided by the Ethernet/IP/TCP framing factor);
#  e. a second image sharing the three base layers: the registry gets no GET
#     for a shared layer, each new blob once, and the uplink carries about the
#     new blobs only; every node holds the second image too.
# Figures (wall time, uplink bytes, ratios) are printed.
. "$(dirname "$0")/../lib/common.sh"
. "$EP_SOURCE_DIR/tests/lib/mkimage.sh"
. "$EP_SOURCE_DIR/tests/lib/locality.sh"
. "$EP_SOURCE_DIR/tests/lib/netlocality.sh"
ep_init test_stream_deploy 240
nl_require

LAYER=${STREAM_LAYER:-8M}
nl_create "${STREAM_NODES:-6}"
nl_start_registry
ep_mkimage "$EP_TMP/img" v1 amd64 "gzip:$LAYER" "gzip:$LAYER" "gzip:$LAYER"
ep_push_image "$EP_TMP/img" v1 stream/app
IMG1=("${EP_PUSHED_BLOBS[@]}")
MAN1=$EP_PUSHED_DIGEST
nl_mkimage_on "$EP_TMP/img" v1 v2 amd64 "gzip:$LAYER"
ep_push_image "$EP_TMP/img" v2 stream/app
IMG2=("${EP_PUSHED_BLOBS[@]}")
SHARED=()
NEW2=()
for d in "${IMG2[@]}"; do
  if printf '%s\n' "${IMG1[@]}" | grep -qx "$d"; then SHARED+=("$d"); else NEW2+=("$d"); fi
done
[ ${#SHARED[@]} -eq 3 ] && [ ${#NEW2[@]} -eq 2 ] ||
  ep_die "v2 should share 3 blobs with v1 and add 2: shared ${#SHARED[@]}, new ${#NEW2[@]}"
FRAME=$(nl_frame_factor)

nl_start_broker
nl_start_coordinator tree:2
nl_start_all
nl_wait_topology 60

# deploy TAG LABEL: run the deploy, print its figures; DEPLOY_RC, DEPLOY_OUT,
# DEPLOY_WALL, DEPLOY_UPLINK (rx bytes of the gateway's uplink), DEPLOY_LOG0
# (first registry log line of this deploy).
deploy() {
  local tag=$1 t0 up0
  DEPLOY_OUT=$EP_TMP/deploy-$2.json
  DEPLOY_LOG0=$(($(wc -l <"$REGISTRY_LOG") + 1))
  up0=$(nl_uplink_bytes)
  t0=$(date +%s.%N)
  DEPLOY_RC=0
  nl_deploy "$REGISTRY_HOST/stream/app:$tag" --wait --json --import none >"$DEPLOY_OUT" \
    2>"$DEPLOY_OUT.err" || DEPLOY_RC=$?
  DEPLOY_WALL=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
  DEPLOY_UPLINK=$(($(nl_uplink_bytes) - up0))
  echo "deploy $tag: exit $DEPLOY_RC in $DEPLOY_WALL s, $(wc -l <"$DEPLOY_OUT") JSON lines," \
    "uplink rx $DEPLOY_UPLINK bytes"
  echo "final report: $(tail -n 1 "$DEPLOY_OUT" | cut -c1-600)"
  [ ! -s "$DEPLOY_OUT.err" ] || echo "stderr: $(tail -n 5 "$DEPLOY_OUT.err" | cut -c1-300)"
}

# report_check TAG: the final report says all 7 done, ok, and its uplink
# bytes are what the registry's access log shows it served for blobs.
report_check() {
  local last served
  last=$(tail -n 1 "$DEPLOY_OUT")
  served=$(ep_registry_blob_bytes "$DEPLOY_LOG0")
  ep_assert_eq "true ${#NL_ALL[@]}/${#NL_ALL[@]}" \
    "$(jq -r '"\(.ok) \(.nodes_done)/\(.nodes_total)"' <<<"$last" 2>/dev/null || echo unparsable)" \
    "a: $1: the report says ok, every node done"
  ep_assert_eq "$served" "$(jq -r '.uplink_bytes' <<<"$last" 2>/dev/null || echo unparsable)" \
    "a: $1: the report's uplink_bytes = blob bytes in the registry's log"
}

# --- a-d. the first image -----------------------------------------------------------

SIZE1=$(nl_blobs_size "${IMG1[@]}")
deploy v1 1
ep_assert_eq 0 "$DEPLOY_RC" "a: deploy v1 --wait exits 0"
ep_assert "a: the last line of the output is a JSON report" nl_json_report "$DEPLOY_OUT"
report_check v1
problems=$(nl_wait_stores 15 "${NL_ALL[*]}" "${IMG1[@]}")
ep_assert_eq "" "$(head -n 5 <<<"$problems")" "b: all 7 nodes hold all ${#IMG1[@]} blobs of v1, verified"
for d in "${IMG1[@]}"; do
  ep_assert_eq 1 "$(ep_count_blob_gets "$d")" "c: registry GETs for ${d:0:19} ($(nl_blob_size "$d") B)"
done
payload=$(awk -v b="$DEPLOY_UPLINK" -v f="$FRAME" 'BEGIN { printf "%d", b / f }')
echo "v1: image $SIZE1 B, uplink $DEPLOY_UPLINK B on the wire, ~$payload B payload" \
  "(×$(nl_ratio "$payload" "$SIZE1") of the image), wall $DEPLOY_WALL s for 7 nodes"
ep_assert "d: uplink payload ≤ 1.05 × image ($(nl_ratio "$payload" "$SIZE1"))" \
  nl_le "$payload" "$SIZE1" 1.05
for id in "${NL_ALL[@]}"; do
  printf '  %s: LAN rx %s B\n' "$id" "$(nl_lan_rx_bytes "$id")"
done

# --- e. the second image, sharing the base layers -------------------------------------

SIZE_NEW=$(nl_blobs_size "${NEW2[@]}")
deploy v2 2
ep_assert_eq 0 "$DEPLOY_RC" "e: deploy v2 --wait exits 0"
report_check v2
problems=$(nl_wait_stores 15 "${NL_ALL[*]}" "${IMG2[@]}")
ep_assert_eq "" "$(head -n 5 <<<"$problems")" "e: all 7 nodes hold all ${#IMG2[@]} blobs of v2, verified"
for d in "${SHARED[@]}"; do
  ep_assert_eq 0 "$(tail -n +"$DEPLOY_LOG0" "$REGISTRY_LOG" | grep -F "/blobs/$d " |
    grep -c '"GET ' || true)" "e: no GET for shared ${d:0:19} during deploy v2"
done
for d in "${NEW2[@]}"; do
  ep_assert_eq 1 "$(ep_count_blob_gets "$d")" "e: registry GETs for new ${d:0:19}"
done
payload=$(awk -v b="$DEPLOY_UPLINK" -v f="$FRAME" 'BEGIN { printf "%d", b / f }')
echo "v2: new blobs $SIZE_NEW B, uplink ~$payload B payload (×$(nl_ratio "$payload" "$SIZE_NEW")" \
  "of the new blobs, ×$(nl_ratio "$payload" "$(nl_blobs_size "${IMG2[@]}")") of the image)"
ep_assert "e: uplink payload ≤ 1.05 × new blobs + 64 KiB ($(nl_ratio "$payload" "$SIZE_NEW"))" \
  nl_le "$payload" "$((SIZE_NEW + 65536))" 1.05
ep_log "manifest v1 $MAN1"

nl_stop_all
ep_finish
