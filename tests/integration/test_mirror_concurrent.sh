#!/usr/bin/env bash
# Single flight: many clients pull the same cold image through edgepulld at
# the same moment — containerd in five namespaces and five curl clients
# fetching every blob. The registry must see exactly one GET per blob, every
# client must get verified content, and the store must hold each blob once.
# shellcheck source=../lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source=../lib/mkimage.sh
. "$EP_SOURCE_DIR/tests/lib/mkimage.sh"

ep_init test_mirror_concurrent 400
ep_require_root
ep_require_cmd docker-registry containerd ctr skopeo jq curl

# Everything runs in a private namespace whose loopback is shaped to 1 Gbit/s,
# so the fetch from the registry is still running when the last client asks.
ep_netns_create
ep_start_registry
layout=$(ep_tmpdir layout)
ep_mkimage "$layout" v1 amd64 gzip:24M tar:16M gzip:4M
ep_push_image "$layout" v1 edge/busy
digest=$EP_PUSHED_DIGEST
blobs=("${EP_PUSHED_BLOBS[@]}")
rm -rf "$layout"
ep_shape_lo 1gbit

ep_start_edgepulld --registry "$REGISTRY_HOST=$REGISTRY_URL"
ep_start_containerd
hosts=$(ep_hosts_dir "$REGISTRY_HOST" "$REGISTRY_URL" "$EP_URL")
ref=$REGISTRY_HOST/edge/busy:v1

# curl_client N: fetch every blob through edgepulld, in a shuffled order.
curl_client() {
  local n=$1 d dir=$EP_TMP/curl.$1
  mkdir -p "$dir"
  for d in $(printf '%s\n' "${blobs[@]}" | shuf); do
    ep_curl -f -o "$dir/${d#sha256:}" "$(ep_blob_url edge/busy "$d")" ||
      { echo "curl client $n: GET $d failed" >&2; return 1; }
  done
}

pids=()
names=()
for i in 1 2 3 4 5; do
  ep_ctr_pull "ns$i" "$hosts" "$ref" &
  pids+=($!)
  names+=("ctr pull in namespace ns$i")
  curl_client "$i" &
  pids+=($!)
  names+=("curl client $i")
done
for i in "${!pids[@]}"; do
  if wait "${pids[i]}"; then
    ep_pass "${names[i]} succeeded"
  else
    ep_fail "${names[i]} failed"
  fi
done

for i in 1 2 3 4 5; do
  ep_assert_eq "$digest" "$(ep_ctr_image_digest "ns$i" "$ref")" "ns$i records the upstream digest"
  bad=0
  for d in "${blobs[@]}"; do
    f=$EP_TMP/curl.$i/${d#sha256:}
    if [ ! -f "$f" ] || [ "$(ep_sha256 "$f")" != "$d" ]; then
      echo "curl client $i: $d does not verify" >&2
      bad=$((bad + 1))
    fi
  done
  ep_assert_eq 0 "$bad" "curl client $i: all ${#blobs[@]} blobs verify"
done

ep_assert_gets 1 "${blobs[@]}"
ep_assert_stored "${blobs[@]}"
ep_assert_eq 0 "$(find "$EP_STATE" -name '*.partial' | wc -l)" "no partial left in ingest/"
ep_assert_eq 0 "$(grep -cE '^[^ ]+ - - \[.*"containerd/' "$REGISTRY_LOG" || true)" \
  "containerd never went to the registry itself"

ep_stop_edgepulld
ep_finish
