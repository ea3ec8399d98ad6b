#!/usr/bin/env bash
# `edgepullctl deploy --import containerd` on a node that serves containerd's snapshotter (issue 10
# point 5): the image lands in containerd through its API and edgepull's snapshotter, never as
# layer blobs in containerd's content store.
#   - a gateway node (mirror + --snapshotter-socket) and its own containerd with edgepulld's socket
#     as proxy snapshotter "edgepull"; a two-layer runnable image (busybox, then a file);
#   - after the deploy: `ctr images ls` shows the image with the registry's digest; `ctr content
#     ls` holds the manifest and the config and no layer; containerd sees two committed snapshots
#     in the edgepull snapshotter; `ctr run --snapshotter edgepull` runs in the image;
#   - `edgepullctl layers` shows both layers unpacked; the registry served each blob once;
#   - a second deploy of the same image succeeds (labels through Content.Update, Images.Update).
# shellcheck source=../lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source=../lib/locality.sh
. "$EP_SOURCE_DIR/tests/lib/locality.sh"
# shellcheck source=../lib/mkimage.sh
. "$EP_SOURCE_DIR/tests/lib/mkimage.sh"
ep_init test_deploy_import_snapshotter 300
ep_require_root
ep_require_cmd containerd ctr runc jq
ep_loc_require
[ -x /bin/busybox ] || {
  echo "test_deploy_import_snapshotter needs busybox-static" >&2
  exit 77
}
if ! ep__overlay_works "$EP_TMP"; then
  echo "test_deploy_import_snapshotter needs overlayfs mounts" >&2
  exit 77
fi
ep_loc_set imps

# mk_image LAYOUT: busybox, then /hello.txt; config and manifest, tagged 1.
mk_image() {
  local layout=$1 w=$EP_TMP/img diffs='' layers='' l
  ep__layout_init "$layout"
  mkdir -p "$w/l1/bin" "$w/l2"
  cp /bin/busybox "$w/l1/bin/busybox"
  ln -s busybox "$w/l1/bin/sh"
  ln -s busybox "$w/l1/bin/cat"
  echo "hello from an edgepull import" >"$w/l2/hello.txt"
  for l in l1 l2; do
    chmod 755 "$w/$l"
    tar --sort=name --mtime=@1000000 --numeric-owner -C "$w/$l" -cf "$w/$l.tar" .
    diffs+="${diffs:+,}\"sha256:$(sha256sum "$w/$l.tar" | cut -d' ' -f1)\""
    gzip -n -c "$w/$l.tar" >"$w/$l.tar.gz"
    ep__blob_put "$layout" "$w/$l.tar.gz"
    layers+="${layers:+,}{\"mediaType\":\"$EP_MT_GZIP\",\"digest\":\"$EP__DIGEST\",\"size\":$EP__SIZE}"
  done
  printf '{"architecture":"%s","os":"linux","config":{"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":[%s]}}' \
    "$(dpkg --print-architecture)" "$diffs" >"$w/config.json"
  ep__blob_put "$layout" "$w/config.json"
  printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"%s","digest":"%s","size":%s},"layers":[%s]}' \
    "$EP_MT_MANIFEST" "$EP_MT_CONFIG" "$EP__DIGEST" "$EP__SIZE" "$layers" >"$w/manifest.json"
  ep__blob_put "$layout" "$w/manifest.json"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"%s","digest":"%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"1"}}]}' \
    "$EP_MT_MANIFEST" "$EP__DIGEST" "$EP__SIZE" >"$layout/index.json"
}

ep_start_registry
mk_image "$EP_TMP/layout"
ep_push_image "$EP_TMP/layout" 1 edge/snapimp
want=$EP_PUSHED_DIGEST
image=$REGISTRY_HOST/edge/snapimp:1

SNAP_SOCK=$EP_TMP/snap.sock
EP_CTRD_SNAP_SOCK=$SNAP_SOCK ep_start_containerd
ep_mqtt_start
ep_coord_start --topology chain
ep_node_start gw --gateway --registry "$REGISTRY_HOST=$REGISTRY_URL" \
  --containerd-address "$CTR_ADDRESS" --snapshotter-socket "$SNAP_SOCK"
k8s() { ctr --address "$CTR_ADDRESS" -n k8s.io "$@"; }
ep_assert_match 'ok' "$(k8s plugins ls | awk '$2 == "edgepull" { print $NF }')" \
  "containerd loaded the edgepull proxy snapshotter"

deadline=$((SECONDS + 20))
until [ "$(ep_mqtt_retained "$EP_LOC_TOPIC/+/parent" 1 | wc -l)" -ge 1 ]; do
  [ "$SECONDS" -lt "$deadline" ] || ep_die "no topology after 20 s"
  sleep 0.5
done

deploy() { # N: one deploy with --import containerd; prints its exit status
  local rc=0
  ep_timeout 180 "$EP_BUILD_DIR/ctl/edgepullctl" deploy "$image" --import containerd --wait \
    --json --broker "127.0.0.1:$MQTT_PORT" --locality "$EP_LOC" >"$EP_TMP/deploy$1.json" \
    2>"$EP_TMP/deploy$1.err" || rc=$?
  ep_log "deploy $1 final report: $(tail -n 1 "$EP_TMP/deploy$1.json" | cut -c1-400)"
  echo "$rc"
}
ep_assert_eq 0 "$(deploy 1)" "the deploy with --import containerd succeeded"

ep_assert_eq "$want" "$(k8s images ls | awk -v r="$image" '$1 == r { print $3 }')" \
  "$image is in containerd's k8s.io namespace with the registry's digest"
content=$(k8s content ls -q | sort)
ep_log "containerd's content store: $(echo "$content" | tr '\n' ' ')"
ep_assert_eq 2 "$(echo "$content" | grep -c sha256)" "containerd's content store holds two blobs"
ep_assert_match "$want" "$content" "one of them is the manifest"
for l in "${EP_PUSHED_LAYERS[@]}"; do
  ep_assert_eq 0 "$(echo "$content" | grep -c "$l" || true)" \
    "layer ${l:7:12} is not in containerd's content store"
done
ep_assert_eq 2 "$(k8s snapshots --snapshotter edgepull ls | grep -c Committed)" \
  "two committed snapshots in containerd's view of the edgepull snapshotter"

ep_cleanup_push "k8s tasks kill -s SIGKILL impr; sleep 1; k8s tasks rm -f impr; k8s containers rm impr"
out=$(ep_timeout 60 ctr --address "$CTR_ADDRESS" -n k8s.io run --rm --snapshotter edgepull \
  "$image" impr /bin/cat /hello.txt 2>&1 || true)
ep_assert_eq "hello from an edgepull import" "$out" "ctr run --snapshotter edgepull ran in the image"

layers=$(ep_node_ctl gw layers --json)
for l in "${EP_PUSHED_LAYERS[@]}"; do
  ep_assert_eq true "$(echo "$layers" | jq -r --arg d "$l" '.layers[] | select(.digest == $d) | .unpacked')" \
    "edgepullctl layers: ${l:7:12} unpacked"
done
ep_assert_eq 2 "$(ep_node_ctl gw images --json | jq '[.images[].layers_unpacked] | max')" \
  "edgepullctl images: the image's two layers unpacked"
for d in "${EP_PUSHED_BLOBS[@]}"; do
  ep_assert_eq 1 "$(ep_count_blob_gets "$d")" "registry served ${d:7:12} once"
done

ep_assert_eq 0 "$(deploy 2)" "a second deploy of the same image succeeded"
ep_assert_eq 2 "$(k8s content ls -q | grep -c sha256)" "still only two blobs in containerd"
ep_finish
