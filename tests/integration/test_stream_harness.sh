#!/usr/bin/env bash
# The emulated locality itself (tests/lib/netlocality.sh), before anything is
# streamed through it: 6 nodes + gateway + cloud in network namespaces.
#  a. every namespace has lo up; the registry answers the gateway over the
#     uplink and is unreachable from a node (no route);
#  b. shaping: HTTP downloads between namespaces run at the configured rate
#     ±10 % (wire rate = payload rate × framing): uplink gateway <- cloud,
#     LAN node <- gateway and node <- node, and two nodes downloading from the
#     gateway at once share its port;
#  c. broker, coordinator (chain) and all edgepulld nodes start and every
#     node gets a parent; the chain covers all 7;
#  d. cutting the uplink makes the registry unreachable; restoring it brings
#     it back;
#  e. clean stops: every node exits 0, no sanitizer report.
. "$(dirname "$0")/../lib/common.sh"
. "$EP_SOURCE_DIR/tests/lib/mkimage.sh"
. "$EP_SOURCE_DIR/tests/lib/locality.sh"
. "$EP_SOURCE_DIR/tests/lib/netlocality.sh"
ep_init test_stream_harness 240
nl_require
ep_require_cmd python3

nl_create 6

# --- a. namespaces and reachability ---------------------------------------------

for id in cloud gw lan "${NL_NODES[@]}"; do
  st=$(ip -n "${NL_NS[$id]}" -j link show lo | jq -r '.[0].operstate + "," + (.[0].flags | join("+"))')
  ep_assert_match 'UP' "$st" "a: lo is up in ${NL_NS[$id]}"
done
nl_start_registry
code=$(nl_node_curl gw -o /dev/null -w '%{http_code}' "$REGISTRY_URL/v2/" || true)
ep_assert_eq 200 "$code" "a: the gateway reaches the registry at $REGISTRY_URL"
ep_assert_not "a: n1 cannot reach the registry" \
  nl_node_exec n1 curl -s -o /dev/null --connect-timeout 2 --max-time 3 "$REGISTRY_URL/v2/"

# --- b. shaping -------------------------------------------------------------------

FRAME=$(nl_frame_factor)
SIZE_MB=${NL_HARNESS_MB:-24}
ep_mkimage "$EP_TMP/img" v1 amd64 "tar:${SIZE_MB}M"
ep_push_image "$EP_TMP/img" v1 harness/blob
BIG=${EP_PUSHED_LAYERS[0]}

# serve ID DIR: a python HTTP server on ID's LAN address, port 8080.
serve() {
  nl_node_exec "$1" python3 -m http.server --bind "${NL_ADDR[$1]}" --directory "$2" 8080 \
    >"$EP_TMP/http-$1.log" 2>&1 &
  local pid=$! i
  ep_cleanup_push "ep_stop_pid $pid 5"
  for ((i = 0; i < 50; i++)); do
    nl_node_exec "$1" ss -Hltn "sport = :8080" | grep -q . && return 0
    sleep 0.1
  done
  ep_die "http.server in $1 did not start"
}
WWW=$(ep_tmpdir www)
head -c "${SIZE_MB}M" /dev/urandom >"$WWW/f.bin"
serve gw "$WWW"
serve n1 "$WWW"

# rate_check WHAT WANT_MBIT MEASURED_BYTES_PER_S
rate_check() {
  local wire
  wire=$(awk -v b="$3" -v f="$FRAME" 'BEGIN { printf "%.1f", b * 8 * f / 1e6 }')
  echo "$1: $(awk -v b="$3" 'BEGIN { printf "%.1f", b * 8 / 1e6 }') Mbit/s payload," \
    "$wire Mbit/s on the wire (configured $2)"
  ep_assert "b: $1 at $2 Mbit/s ±10 % ($wire)" \
    awk -v w="$wire" -v r="$2" 'BEGIN { exit !(w >= 0.9 * r && w <= 1.1 * r) }'
}
# best ID URL: the better of two downloads' rates (B/s), so a moment of CPU
# contention on a busy CI machine does not pass for a shaping error.
best() {
  local a b
  a=$(nl_node_curl "$1" -f -o /dev/null -w '%{speed_download}' "$2")
  b=$(nl_node_curl "$1" -f -o /dev/null -w '%{speed_download}' "$2")
  awk -v a="$a" -v b="$b" 'BEGIN { print (a > b ? a : b) }'
}
rate_check "uplink cloud -> gw" "$NL_UPLINK_MBPS" "$(best gw "$REGISTRY_URL/v2/harness/blob/blobs/$BIG")"
rate_check "LAN gw -> n3" "$NL_LAN_MBPS" "$(best n3 "http://$NL_GW_ADDR:8080/f.bin")"
rate_check "LAN n1 -> n2" "$NL_LAN_MBPS" "$(best n2 "http://${NL_ADDR[n1]}:8080/f.bin")"
# Two at once from the gateway: its port is the bottleneck, shared. The
# aggregate is both files' bytes over the time from the first start to the
# last end, which holds however the two transfers happen to overlap (each
# one's own mean rate does not: one that starts late runs alone for a while).
t0=$(date +%s%N)
nl_node_curl n4 -f -o /dev/null "http://$NL_GW_ADDR:8080/f.bin" &
p4=$!
nl_node_curl n5 -f -o /dev/null "http://$NL_GW_ADDR:8080/f.bin" || true
wait "$p4" || true
t1=$(date +%s%N)
total=$(awk -v n="$(stat -c %s "$WWW/f.bin")" -v ns=$((t1 - t0)) 'BEGIN { print 2 * n / (ns / 1e9) }')
echo "LAN gw -> n4 + n5 at once: $((2 * SIZE_MB)) MiB in $(((t1 - t0) / 1000000)) ms"
rate_check "LAN gw -> {n4,n5} together (bytes / elapsed)" "$NL_LAN_MBPS" "$total"

# --- c. the locality forms --------------------------------------------------------

nl_start_broker
nl_start_coordinator chain
t0=$SECONDS
nl_start_all
nl_wait_topology 60
echo "topology formed $((SECONDS - t0)) s after the first node started"
chain=$(nl_chain | tr '\n' ' ')
ep_assert_eq 7 "$(wc -w <<<"$chain")" "c: the chain holds all 7 nodes ($chain)"
for id in "${NL_ALL[@]}"; do
  code=$(nl_node_curl "$id" -o /dev/null -w '%{http_code}' "${NODE_URL[$id]}/v2/" || true)
  ep_assert_eq 200 "$code" "c: $id answers on its loopback endpoint"
done
view=$(ep_node_ctl n6 nodes --json | jq -r '.nodes[] | "\(.id) \(.online)"' | sort | tr '\n' ',')
ep_assert_eq "gw true,n1 true,n2 true,n3 true,n4 true,n5 true,n6 true," "$view" \
  "c: n6's index shows all 7 online"

# --- d. the uplink cut ------------------------------------------------------------

before=$(nl_uplink_bytes)
nl_cut_uplink
ep_assert_not "d: registry unreachable with the uplink cut" \
  nl_node_exec gw curl -s -o /dev/null --connect-timeout 2 --max-time 3 "$REGISTRY_URL/v2/"
nl_restore_uplink
code=$(nl_node_curl gw -o /dev/null -w '%{http_code}' "$REGISTRY_URL/v2/" || true)
ep_assert_eq 200 "$code" "d: registry reachable again after the restore"
ep_assert "d: the uplink counter moves" [ "$(nl_uplink_bytes)" -gt "$before" ]

# --- e. clean stops ---------------------------------------------------------------

for id in "${NL_ALL[@]}"; do
  rc=0
  nl_stop_node "$id" || rc=$?
  ep_assert_eq 0 "$rc" "e: $id exits 0 on SIGTERM"
done
ep_check_sanitizers "${NODE_LOG[@]}"
ep_finish
