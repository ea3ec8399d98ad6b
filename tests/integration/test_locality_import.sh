#!/usr/bin/env bash
# `edgepullctl deploy --import containerd` in the emulated locality (issue 10, "in the netns
# locality"): a gateway and 4 nodes in network namespaces (tests/lib/netlocality.sh: uplink
# 200 Mbit/s to a docker-registry in the "cloud", LAN 100 Mbit/s per port, coordinator with a
# chain), every one with a containerd of its own in its namespace whose proxy snapshotter
# "edgepull" is that node's edgepulld (--snapshotter-socket, --containerd-address; otherwise the
# daemons' default flags). The image: busybox, three random layers of 4 MB, /marker.txt last.
#  a. the deploy with --import containerd exits 0, every node done;
#  b. on every node `ctr run --snapshotter edgepull` runs the image and reads /marker.txt (the
#     last layer) and sees the three random files;
#  c. every node's containerd content store holds the manifest and the config, no layer;
#  d. every node's snapshotter holds one committed snapshot per layer, each labelled
#     containerd.io/snapshot.ref with the layer's chain ID (computed from the config's diff_ids),
#     and containerd sees them as committed edgepull snapshots;
#  e. the uplink carried 1.00 copies of the image: the registry served each blob once, its blob
#     bytes equal the image, and the uplink's payload is at most 1.05 times the image.
# Containers, containerds, mounts and namespaces go with the cleanup stack, also on failure.
# shellcheck source=../lib/common.sh
. "$(dirname "$0")/../lib/common.sh"
# shellcheck source=../lib/mkimage.sh
. "$EP_SOURCE_DIR/tests/lib/mkimage.sh"
# shellcheck source=../lib/locality.sh
. "$EP_SOURCE_DIR/tests/lib/locality.sh"
# shellcheck source=../lib/netlocality.sh
. "$EP_SOURCE_DIR/tests/lib/netlocality.sh"
ep_init test_locality_import 420
nl_require
ep_require_cmd containerd ctr runc jq
[ -x /bin/busybox ] || {
  echo "test_locality_import needs busybox-static" >&2
  exit 77
}
if ! ep__overlay_works "$EP_TMP"; then
  echo "test_locality_import needs overlayfs mounts" >&2
  exit 77
fi

NODES=${LI_NODES:-4}
MARKER="edgepull import in the locality"
nl_create "$NODES"
nl_start_registry
ep_mkimage_runnable "$EP_TMP/img" 1 "$(dpkg --print-architecture)" "$MARKER" gzip:4M gzip:4M gzip:4M
ep_push_image "$EP_TMP/img" 1 edge/locimp
want=$EP_PUSHED_DIGEST
image=$REGISTRY_HOST/edge/locimp:1
nlayers=${#EP_PUSHED_LAYERS[@]}
ep_assert_eq 5 "$nlayers" "the image has 5 layers"
config=$(ep_registry_blob_path "${EP_PUSHED_CONFIGS[0]}")
# The chain IDs containerd names the layers by: sha256(parent chain + " " + diffID).
mapfile -t CHAINS < <(jq -r '.rootfs.diff_ids[]' "$config" | {
  c=
  while read -r d; do
    if [ -z "$c" ]; then c=$d; else c=sha256:$(printf '%s %s' "$c" "$d" | sha256sum | cut -d' ' -f1); fi
    echo "$c"
  done
})
ep_assert_eq "$nlayers" "${#CHAINS[@]}" "one chain ID per layer"
SIZE=$(nl_blobs_size "${EP_PUSHED_BLOBS[@]}")
FRAME=$(nl_frame_factor)

nl_start_broker
nl_start_coordinator chain
for id in "${NL_ALL[@]}"; do
  sock=$EP_TMP/snap-$id.sock
  nl_start_containerd "$id" "$(ep_tmpdir "ctrd-$id")" "$sock"
  nl_start_node "$id" --snapshotter-socket "$sock" --containerd-address "${NL_CTR_ADDR[$id]}"
done
nl_wait_topology 60
for id in "${NL_ALL[@]}"; do
  ep_assert_match ok "$(nl_ctr "$id" plugins ls | awk '$2 == "edgepull" { print $NF }')" \
    "$id's containerd loaded the edgepull proxy snapshotter"
done

# --- a. the deploy ---------------------------------------------------------------------------

log0=$(($(wc -l <"$REGISTRY_LOG") + 1))
up0=$(nl_uplink_bytes)
t0=$EPOCHREALTIME
rc=0
nl_deploy "$image" --import containerd --wait --json >"$EP_TMP/deploy.json" 2>"$EP_TMP/deploy.err" || rc=$?
wall=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
uplink=$(($(nl_uplink_bytes) - up0))
ep_log "deploy: exit $rc in $wall s; report $(tail -n 1 "$EP_TMP/deploy.json" | cut -c1-600)"
[ ! -s "$EP_TMP/deploy.err" ] || ep_log "deploy stderr: $(tail -n 5 "$EP_TMP/deploy.err" | cut -c1-300)"
ep_assert_eq 0 "$rc" "a: deploy --import containerd exits 0"
ep_assert_eq "true ${#NL_ALL[@]}/${#NL_ALL[@]}" \
  "$(tail -n 1 "$EP_TMP/deploy.json" | jq -r '"\(.ok) \(.nodes_done)/\(.nodes_total)"' 2>/dev/null || echo unparsable)" \
  "a: the report says ok, every node done"

# --- b-d. every node -------------------------------------------------------------------------

want_chains=$(printf '%s\n' "${CHAINS[@]}" | sort)
for id in "${NL_ALL[@]}"; do
  ep_assert_eq "$want" "$(nl_ctr "$id" -n k8s.io images ls | awk -v r="$image" '$1 == r { print $3 }')" \
    "b: $id: $image is in its containerd with the registry's digest"
  cid=li$$-$id
  # After a failed run only: `run --rm` removes its container.
  ep_cleanup_push "timeout 10 ctr --address ${NL_CTR_ADDR[$id]} -n k8s.io tasks rm -f $cid 2>/dev/null;
    timeout 10 ctr --address ${NL_CTR_ADDR[$id]} -n k8s.io containers rm $cid 2>/dev/null"
  out=$(NL_CTR_TIMEOUT=60 nl_ctr "$id" -n k8s.io run --rm --snapshotter edgepull "$image" "$cid" \
    /bin/sh -c 'cat /marker.txt && ls /data | wc -l' 2>&1 || true)
  ep_assert_eq "$MARKER 3" "$(echo "$out" | tr -s ' \n' ' ' | sed 's/ $//')" \
    "b: $id: ctr run --snapshotter edgepull reads /marker.txt and sees the 3 data files"

  content=$(nl_ctr "$id" -n k8s.io content ls -q | sort)
  ep_assert_eq "$(printf '%s\n' "$want" "${EP_PUSHED_CONFIGS[0]}" | sort | tr '\n' ' ')" \
    "$(echo "$content" | tr '\n' ' ')" "c: $id: containerd's content store holds the manifest and the config only"
  for l in "${EP_PUSHED_LAYERS[@]}"; do
    ep_assert_eq 0 "$(grep -c "$l" <<<"$content" || true)" "c: $id: no layer ${l:7:12} in containerd's content"
  done

  snaps=$(ep_node_ctl "$id" snapshots --json)
  ep_assert_eq "$want_chains" \
    "$(jq -r '.snapshots[] | select(.kind == "committed") | .labels["containerd.io/snapshot.ref"] // "none"' \
      <<<"$snaps" | sort)" "d: $id: one committed snapshot per layer, labelled snapshot.ref = its chain ID"
  ep_assert_eq "$nlayers" "$(nl_ctr "$id" -n k8s.io snapshots --snapshotter edgepull ls | grep -c Committed)" \
    "d: $id: containerd sees $nlayers committed edgepull snapshots"
done

# --- e. one copy over the uplink ---------------------------------------------------------------

for d in "${EP_PUSHED_BLOBS[@]}"; do
  ep_assert_eq 1 "$(ep_count_blob_gets "$d")" "e: the registry served ${d:7:12} once"
done
served=$(ep_registry_blob_bytes "$log0")
copies=$(awk -v a="$served" -v b="$SIZE" 'BEGIN { printf "%.2f", a / b }')
payload=$(awk -v b="$uplink" -v f="$FRAME" 'BEGIN { printf "%d", b / f }')
echo "image $SIZE B; registry served $served B of blobs = $copies copies; uplink $uplink B on the wire," \
  "~$payload B payload (x$(nl_ratio "$payload" "$SIZE")); deploy + import on ${#NL_ALL[@]} nodes in $wall s"
ep_assert_eq 1.00 "$copies" "e: the uplink carried 1.00 copies of the image (registry's blob bytes)"
ep_assert "e: uplink payload <= 1.05 x image ($(nl_ratio "$payload" "$SIZE"))" nl_le "$payload" "$SIZE" 1.05

for id in "${NL_ALL[@]}"; do nl_stop_containerd "$id"; done
nl_stop_all
ep_finish
