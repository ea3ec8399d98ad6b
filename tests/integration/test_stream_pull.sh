#!/usr/bin/env bash
# Transparent rollout (issue 4, point 7): every node's runtime pulls the same
# image at once, with no deploy. One containerd (content sharing "isolated",
# one containerd namespace per node) and one `ctr images pull --hosts-dir`
# per node, run inside the node's network namespace against its own edgepulld
# on 127.0.0.1:5050 (the hosts.toml a node would have; the registry itself is
# unreachable from a node, so everything must come through edgepulld).
#  a. all 7 pulls succeed and containerd records the registry's digest;
#  b. the registry served each blob exactly once (access log);
#  c. every node's store holds every blob, each file hashing to its name;
#  d. the uplink carried about one image (≤ 1.05 × payload).
. "$(dirname "$0")/../lib/common.sh"
. "$EP_SOURCE_DIR/tests/lib/mkimage.sh"
. "$EP_SOURCE_DIR/tests/lib/locality.sh"
. "$EP_SOURCE_DIR/tests/lib/netlocality.sh"
ep_init test_stream_pull 240
nl_require
ep_require_cmd containerd ctr

LAYER=${STREAM_LAYER:-8M}
nl_create "${STREAM_NODES:-6}"
nl_start_registry
ep_mkimage "$EP_TMP/img" v1 amd64 "gzip:$LAYER" "gzip:$LAYER" "gzip:$LAYER"
ep_push_image "$EP_TMP/img" v1 stream/pull
BLOBS=("${EP_PUSHED_BLOBS[@]}")
DIGEST=$EP_PUSHED_DIGEST
SIZE=$(nl_blobs_size "${BLOBS[@]}")
REF=$REGISTRY_HOST/stream/pull:v1
FRAME=$(nl_frame_factor)

nl_start_broker
nl_start_coordinator tree:2
nl_start_all
nl_wait_topology 60

# containerd only stores; ctr fetches, so ctr runs in each node's namespace.
ep_start_containerd
HOSTS=$(ep_hosts_dir "$REGISTRY_HOST" "$REGISTRY_URL" "http://127.0.0.1:$NL_LOCAL_PORT")

up0=$(nl_uplink_bytes)
t0=$(date +%s.%N)
declare -A PULL_PID=()
for id in "${NL_ALL[@]}"; do
  nl_node_exec "$id" timeout -k 5 180 ctr --address "$CTR_ADDRESS" -n "$id" images pull \
    --hosts-dir "$HOSTS" --snapshotter "$CTR_SNAPSHOTTER" "$REF" >"$EP_TMP/ctr-$id.log" 2>&1 &
  PULL_PID[$id]=$!
done
for id in "${NL_ALL[@]}"; do
  rc=0
  wait "${PULL_PID[$id]}" || rc=$?
  ep_assert_eq 0 "$rc" "a: ctr pull in $id exits 0"
  [ "$rc" -eq 0 ] || echo "  $(tail -n 3 "$EP_TMP/ctr-$id.log" | cut -c1-300 | tr '\n' ' ')"
done
wall=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
uplink=$(($(nl_uplink_bytes) - up0))
for id in "${NL_ALL[@]}"; do
  got=$(ctr --address "$CTR_ADDRESS" -n "$id" images ls | awk -v r="$REF" '$1 == r { print $3 }')
  ep_assert_eq "$DIGEST" "$got" "a: containerd namespace $id has $REF at the registry's digest"
done

for d in "${BLOBS[@]}"; do
  ep_assert_eq 1 "$(ep_count_blob_gets "$d")" "b: registry GETs for ${d:0:19} ($(nl_blob_size "$d") B)"
done
problems=$(nl_wait_stores 15 "${NL_ALL[*]}" "${BLOBS[@]}")
ep_assert_eq "" "$(head -n 5 <<<"$problems")" "c: all 7 stores hold all ${#BLOBS[@]} blobs, verified"

payload=$(awk -v b="$uplink" -v f="$FRAME" 'BEGIN { printf "%d", b / f }')
echo "7 runtimes pulling $SIZE B at once: wall $wall s, uplink $uplink B on the wire," \
  "~$payload B payload (×$(nl_ratio "$payload" "$SIZE") of the image)"
ep_assert "d: uplink payload ≤ 1.05 × image ($(nl_ratio "$payload" "$SIZE"))" \
  nl_le "$payload" "$SIZE" 1.05
for id in "${NL_ALL[@]}"; do
  printf '  %s: LAN rx %s B\n' "$id" "$(nl_lan_rx_bytes "$id")"
done

nl_stop_all
ep_finish
