#!/usr/bin/env bash
# `edgepullctl deploy --import containerd`: after the deploy the image is in
# each node's containerd, in the k8s.io namespace, with the registry's
# digest, pulled through the node's own mirror (the registry sees each blob
# once in all). A loopback locality: mosquitto, the coordinator, a gateway
# and one node, each with its own containerd.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/locality.sh"
. "$(dirname "$0")/../lib/mkimage.sh"
ep_init test_deploy_import 300
ep_require_root
ep_loc_require
ep_loc_set imp

ep_start_registry
layout=$(ep_tmpdir layout)
ep_mkimage "$layout" v1 amd64 gzip:2M gzip:1M tar:512K
ep_push_image "$layout" v1 edge/imp
want=$EP_PUSHED_DIGEST
image=$REGISTRY_HOST/edge/imp:v1

ep_mqtt_start
ep_coord_start --topology chain
declare -A CTRD=()
for id in gw n1; do
  ep_start_containerd
  CTRD[$id]=$CTR_ADDRESS
  extra=()
  [ "$id" = gw ] && extra=(--gateway)
  ep_node_start "$id" "${extra[@]}" --registry "$REGISTRY_HOST=$REGISTRY_URL" \
    --containerd-address "$CTR_ADDRESS" # the daemons' defaults otherwise
done

# Both nodes have a parent assignment before the deploy.
deadline=$((SECONDS + 20))
until [ "$(ep_mqtt_retained "$EP_LOC_TOPIC/+/parent" 1 | wc -l)" -ge 2 ]; do
  [ "$SECONDS" -lt "$deadline" ] || ep_die "no topology after 20 s"
  sleep 0.5
done

rc=0
timeout -k 5 180 "$EP_BUILD_DIR/ctl/edgepullctl" deploy "$image" --import containerd --wait \
  --json --broker "127.0.0.1:$MQTT_PORT" --locality "$EP_LOC" >"$EP_TMP/deploy.json" \
  2>"$EP_TMP/deploy.err" || rc=$?
echo "final report: $(tail -n 1 "$EP_TMP/deploy.json" | cut -c1-400)"
ep_assert_eq 0 "$rc" "the deploy with --import containerd succeeded"

for id in gw n1; do
  got=$(ctr --address "${CTRD[$id]}" -n k8s.io images ls 2>/dev/null |
    awk -v r="$image" '$1 == r { print $3 }')
  ep_assert_eq "$want" "$got" "$id: $image is in containerd's k8s.io namespace with the registry's digest"
done
for d in "${EP_PUSHED_BLOBS[@]}"; do
  ep_assert_eq 1 "$(ep_count_blob_gets "$d")" "registry served ${d:7:12} once for the locality"
done
ep_finish
