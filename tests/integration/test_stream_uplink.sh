#!/usr/bin/env bash
# The uplink drops during a deploy (issue 4, points 4 and 6). 6 nodes +
# gateway, tree:2, an image with a ~64 MB layer. While the gateway's
# ingest/<hex>.partial of the large layer holds about a third of it, the
# gateway's uplink veth goes down.
#  a. `edgepullctl deploy --wait --json` ends (not by our timeout) with exit
#     ≠ 0 and a final report that names the failure;
#  b. the partial is kept in the gateway's ingest/ (nothing committed of it);
#  c. after the link comes back, the same deploy exits 0, every node holds
#     every blob verified, the registry got a Range request (206) for the
#     large layer and no GET for any blob the gateway already had, and the
#     uplink carried about what was missing only (≤ 1.05 × (image − kept
#     bytes) + 64 KiB of payload).
. "$(dirname "$0")/../lib/common.sh"
. "$EP_SOURCE_DIR/tests/lib/mkimage.sh"
. "$EP_SOURCE_DIR/tests/lib/locality.sh"
. "$EP_SOURCE_DIR/tests/lib/netlocality.sh"
ep_init test_stream_uplink 420
nl_require

BIG_SIZE=${STREAM_BIG:-64M}
nl_create "${STREAM_NODES:-6}"
nl_start_registry
ep_mkimage "$EP_TMP/img" v1 amd64 gzip:2M "gzip:$BIG_SIZE"
ep_push_image "$EP_TMP/img" v1 stream/up
BLOBS=("${EP_PUSHED_BLOBS[@]}")
BIG=${EP_IMG_LAYERS[1]}
BIG_BYTES=$(nl_blob_size "$BIG")
SIZE=$(nl_blobs_size "${BLOBS[@]}")
FRAME=$(nl_frame_factor)
REF=$REGISTRY_HOST/stream/up:v1

nl_start_broker
nl_start_coordinator tree:2
# A fetch waits --fetch-budget (60 s) for its source to come back; here the
# point is the failure report, so the budget is short.
nl_start_all --fetch-budget 15
nl_wait_topology 60

# --- a. the cut ------------------------------------------------------------------------

NL_DEPLOY_TIMEOUT=240
t0=$SECONDS
nl_deploy "$REF" --wait --json --import none >"$EP_TMP/deploy1.json" 2>"$EP_TMP/deploy1.err" &
DEPLOY_PID=$!
cut=
deadline=$((SECONDS + 60))
while [ "$SECONDS" -lt "$deadline" ]; do
  have=$(nl_partial_size gw "$BIG")
  if [ "$have" -ge $((BIG_BYTES / 3)) ]; then
    nl_cut_uplink
    cut=$(nl_ratio "$have" "$BIG_BYTES")
    break
  fi
  kill -0 "$DEPLOY_PID" 2>/dev/null || break
  sleep 0.02
done
if [ -n "$cut" ]; then
  echo "uplink cut with $cut of the large layer in the gateway's ingest/"
else
  nl_cut_uplink
  ep_fail "a: the gateway never held a third of the large layer in ingest/ (deploy running: $(
    kill -0 "$DEPLOY_PID" 2>/dev/null && echo yes || echo no))"
fi
rc=0
wait "$DEPLOY_PID" || rc=$?
echo "deploy with the uplink cut: exit $rc after $((SECONDS - t0)) s; final line:"
echo "  $(tail -n 1 "$EP_TMP/deploy1.json" | cut -c1-800)"
[ ! -s "$EP_TMP/deploy1.err" ] || echo "  stderr: $(tail -n 3 "$EP_TMP/deploy1.err" | cut -c1-300)"
ep_assert_ne 0 "$rc" "a: the deploy exits non-zero"
ep_assert_ne 124 "$rc" "a: the deploy ends by itself (not killed by the ${NL_DEPLOY_TIMEOUT} s bound)"
ep_assert "a: its last line is a JSON report" nl_json_report "$EP_TMP/deploy1.json"
ep_assert_match '[Ff]ail|[Ee]rror' "$(tail -n 1 "$EP_TMP/deploy1.json")" \
  "a: the report names the failure"
echo "errors in the report:"
tail -n 1 "$EP_TMP/deploy1.json" | jq -r '.nodes[]? | select(.error) | "  \(.node): \(.error)"' |
  head -n 3 || true
gw_error=$(tail -n 1 "$EP_TMP/deploy1.json" | jq -r '.nodes[]? | select(.node == "gw") | .error // ""' \
  2>/dev/null || true)
ep_assert_match '([Cc]onnect|[Uu]nreachable|[Tt]imed? ?out|[Ss]tall|[Rr]eset|[Rr]efused|[Nn]etwork|[Uu]plink)' \
  "$gw_error" "a: the gateway's error in the report says why (the link)"

# --- b. partials kept --------------------------------------------------------------------

# The report can come before the gateway's own fetch of the large layer gives
# up (the nodes below it fail on their budget at about the same time). Wait
# for every fetch to end: restored under a still-running fetch, the uplink
# would carry bytes that fetch resumes before the second deploy starts
# counting. Children that still retry their parent start new fetches there,
# each waiting out its --fetch-budget: the gateway's first failure is not the
# end of it.
ep_assert "b: every node's fetches end by themselves" nl_wait_fetches_idle 120

KEPT=$(nl_partial_size gw "$BIG")
echo "kept in ingest/: gw $KEPT B of $BIG_BYTES; nodes:$(for id in "${NL_NODES[@]}"; do
  printf ' %s=%s' "$id" "$(nl_partial_size "$id" "$BIG")"
done)"
ep_assert "b: the gateway keeps a partial of the large layer ($KEPT B)" [ "$KEPT" -gt 0 ]
ep_assert_not "b: the large layer is not committed on the gateway" \
  test -f "${NODE_STATE[gw]}/blobs/sha256/${BIG#sha256:}"
HAD=()
for d in "${BLOBS[@]}"; do
  [ ! -f "${NODE_STATE[gw]}/blobs/sha256/${d#sha256:}" ] || HAD+=("$d")
done

# --- c. again, with the link back ---------------------------------------------------------

nl_restore_uplink
LOG0=$(($(wc -l <"$REGISTRY_LOG") + 1))
up0=$(nl_uplink_bytes)
t1=$(date +%s.%N)
rc=0
nl_deploy "$REF" --wait --json --import none >"$EP_TMP/deploy2.json" 2>"$EP_TMP/deploy2.err" || rc=$?
wall=$(awk -v a="$t1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
uplink=$(($(nl_uplink_bytes) - up0))
echo "deploy after the restore: exit $rc in $wall s; final line:"
echo "  $(tail -n 1 "$EP_TMP/deploy2.json" | cut -c1-800)"
ep_assert_eq 0 "$rc" "c: the second deploy exits 0"
problems=$(nl_wait_stores 15 "${NL_ALL[*]}" "${BLOBS[@]}")
ep_assert_eq "" "$(head -n 5 <<<"$problems")" "c: all 7 nodes hold all ${#BLOBS[@]} blobs, verified"
since=$(tail -n +"$LOG0" "$REGISTRY_LOG")
ranges=$(grep -F "/blobs/$BIG " <<<"$since" | grep -cE '"GET [^"]*" 206 ' || true)
ep_assert "c: the registry answered a Range request for the large layer ($ranges × 206)" \
  [ "$ranges" -ge 1 ]
for d in "${HAD[@]}"; do
  ep_assert_eq 0 "$(grep -F "/blobs/$d " <<<"$since" | grep -c '"GET ' || true)" \
    "c: no GET for ${d:0:19}, complete before the cut"
done
payload=$(awk -v b="$uplink" -v f="$FRAME" 'BEGIN { printf "%d", b / f }')
# (Not the registry's log: the GET cut off by the link logs its bytes when
# its connection finally dies, which may be after the restore.)
reported=$(tail -n 1 "$EP_TMP/deploy2.json" | jq -r '.uplink_bytes' 2>/dev/null || echo 0)
echo "the report's uplink_bytes: $reported; measured payload ~$payload"
ep_assert "c: the report's uplink_bytes ($reported) is what crossed the uplink (~$payload ±5 %)" \
  awk -v r="$reported" -v p="$payload" 'BEGIN { d = r - p; if (d < 0) d = -d; exit !(d <= 0.05 * p + 65536) }'
missing=$((SIZE - KEPT))
echo "after the restore: uplink ~$payload B payload for $missing B missing" \
  "(image $SIZE B, ×$(nl_ratio "$payload" "$SIZE") of the image)"
ep_assert "c: uplink payload ≤ 1.05 × missing + 64 KiB ($(nl_ratio "$payload" "$missing"))" \
  nl_le "$payload" "$((missing + 65536))" 1.05
left=$(for id in "${NL_ALL[@]}"; do ls "${NODE_STATE[$id]}/ingest/" 2>/dev/null | sed "s/^/$id: /"; done)
ep_assert_eq "" "$left" "c: no partial left in ingest/"

nl_stop_all
ep_finish
