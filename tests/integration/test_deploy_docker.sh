#!/usr/bin/env bash
# `edgepullctl deploy --import docker`: a real Docker Engine (Debian's
# dockerd, started by the test with its own data and exec roots) gets the
# image through the node's own mirror over the Engine API, tagged with its
# original name and with that name only (issue 14 point 7). The registry is reached through an alias with a dot
# (registry.test) because Docker refuses a port inside a repository path.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/locality.sh"
. "$(dirname "$0")/../lib/mkimage.sh"
ep_init test_deploy_docker 300
ep_require_root
ep_loc_require
ep_require_cmd dockerd
ep_loc_set dock

ep_start_registry
layout=$(ep_tmpdir layout)
ep_mkimage "$layout" v1 amd64 gzip:2M gzip:1M
ep_push_image "$layout" v1 edge/dock

ep_start_dockerd
dk=$(dirname "$DOCKER_SOCK")

ep_mqtt_start
ep_coord_start --topology chain
ep_node_start gw --gateway --registry "registry.test=$REGISTRY_URL" \
  --docker-socket "$dk/docker.sock" # the daemons' defaults otherwise
deadline=$((SECONDS + 20))
until [ "$(ep_mqtt_retained "$EP_LOC_TOPIC/+/parent" 1 | wc -l)" -ge 1 ]; do
  [ "$SECONDS" -lt "$deadline" ] || ep_die "no topology after 20 s"
  sleep 0.5
done

rc=0
timeout -k 5 180 "$EP_BUILD_DIR/ctl/edgepullctl" deploy registry.test/edge/dock:v1 \
  --import docker --wait --json --broker "127.0.0.1:$MQTT_PORT" --locality "$EP_LOC" \
  >"$EP_TMP/deploy.json" 2>"$EP_TMP/deploy.err" || rc=$?
echo "final report: $(tail -n 1 "$EP_TMP/deploy.json" | cut -c1-400)"
ep_assert_eq 0 "$rc" "the deploy with --import docker succeeded"

images=$(curl -sf --unix-socket "$dk/docker.sock" http://docker/images/json)
tags=$(jq -r '.[].RepoTags[]?' <<<"$images" | sort | tr '\n' ' ')
ep_assert_eq 'registry.test/edge/dock:v1 ' "$tags" \
  "Docker has the image under its original name only (no 127.0.0.1:<port>/registry.test/... tag left)"
ids=$(jq -r '.[].Id' <<<"$images" | tr '\n' ' ')
ep_assert_eq "${EP_PUSHED_CONFIGS[0]} " "$ids" "Docker's one image is the pushed one (its config digest)"
for d in "${EP_PUSHED_BLOBS[@]}"; do
  ep_assert_eq 1 "$(ep_count_blob_gets "$d")" "registry served ${d:7:12} once"
done
ep_finish
