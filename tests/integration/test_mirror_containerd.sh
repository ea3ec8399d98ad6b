#!/usr/bin/env bash
# A real containerd pulls two images through edgepulld, configured the way a
# node is (hosts.toml: edgepulld as a pull+resolve mirror of the registry):
# a multi-layer OCI image (one gzip and one uncompressed layer) and a
# linux/amd64+arm64 Docker manifest list. containerd must record the
# upstream's digests, edgepulld's store must hold every blob verified, the
# registry must have served each blob exactly once and only to edgepulld
# (containerd never fell back to the upstream), and a second namespace pulls
# without any new blob GET upstream.
# shellcheck source=../lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source=../lib/mkimage.sh
. "$EP_SOURCE_DIR/tests/lib/mkimage.sh"

ep_init test_mirror_containerd 400
ep_require_root
ep_require_cmd docker-registry containerd ctr skopeo jq curl

ep_start_registry
layout=$(ep_tmpdir layout)
ep_mkimage "$layout" v1 amd64 gzip:3M tar:2M gzip:512K
ep_push_image "$layout" v1 edge/multi
multi_digest=$EP_PUSHED_DIGEST
multi_blobs=("${EP_PUSHED_BLOBS[@]}")
multi_layers=("${EP_PUSHED_LAYERS[@]}")
ep_assert_eq "$EP_IMG_DIGEST" "$multi_digest" "registry keeps the built OCI manifest"
types=$(ep_curl -f -H "Accept: $EP_MT_MANIFEST" "$REGISTRY_URL/v2/edge/multi/manifests/v1" |
  jq -r '[.layers[].mediaType] | unique | join(" ")')
ep_assert_eq "$EP_MT_TAR $EP_MT_GZIP" "$types" "the image has gzip and uncompressed layers"

layout=$(ep_tmpdir layout)
ep_mkimage_index "$layout" v1 gzip:1M gzip:256K
ep_push_image "$layout" v1 edge/list --all --format v2s2
list_digest=$EP_PUSHED_DIGEST
list_blobs=("${EP_PUSHED_BLOBS[@]}")
layers=("${multi_layers[@]}" "${EP_PUSHED_LAYERS[@]}")
list_type=$(ep_curl -f -H 'Accept: application/vnd.docker.distribution.manifest.list.v2+json' \
  "$REGISTRY_URL/v2/edge/list/manifests/v1" | jq -r .mediaType)
ep_assert_eq application/vnd.docker.distribution.manifest.list.v2+json "$list_type" \
  "upstream holds a Docker manifest list"

ep_start_edgepulld --registry "$REGISTRY_HOST=$REGISTRY_URL"
ep_start_containerd
hosts=$(ep_hosts_dir "$REGISTRY_HOST" "$REGISTRY_URL" "$EP_URL")

ep_assert "ctr pulls the multi-layer image through edgepulld" \
  ep_ctr_pull one "$hosts" "$REGISTRY_HOST/edge/multi:v1"
ep_assert_eq "$multi_digest" "$(ep_ctr_image_digest one "$REGISTRY_HOST/edge/multi:v1")" \
  "containerd records the upstream digest of the multi-layer image"

ep_assert "ctr pulls the manifest list (all platforms) through edgepulld" \
  ep_ctr_pull one "$hosts" "$REGISTRY_HOST/edge/list:v1" --all-platforms
ep_assert_eq "$list_digest" "$(ep_ctr_image_digest one "$REGISTRY_HOST/edge/list:v1")" \
  "containerd records the upstream digest of the manifest list"

ep_assert_stored "${multi_blobs[@]}" "${list_blobs[@]}"
ep_assert_gets 1 "${multi_blobs[@]}" "${list_blobs[@]}"
ep_assert_eq 0 "$(grep -cE '^[^ ]+ - - \[.*"containerd/' "$REGISTRY_LOG" || true)" \
  "containerd never went to the registry itself"

json=$EP_TMP/layers.json
if ep_edgepullctl layers --json >"$json"; then
  ep_pass "edgepullctl layers --json runs"
  if jq -e . "$json" >/dev/null; then ep_pass "layers --json is JSON"; else ep_fail "layers --json is not JSON"; fi
  for d in "${layers[@]}"; do
    if jq -r '.. | strings' "$json" 2>/dev/null | grep -qF "${d#sha256:}"; then
      ep_pass "edgepullctl lists layer ${d:0:19}"
    else
      ep_fail "edgepullctl layers --json does not list layer $d"
    fi
  done
else
  ep_fail "edgepullctl --state-dir $EP_STATE layers --json failed"
fi

# A second namespace is served entirely from edgepulld's store.
ep_assert "a second namespace pulls both images" \
  ep_ctr_pull two "$hosts" "$REGISTRY_HOST/edge/multi:v1"
ep_assert "a second namespace pulls the list" \
  ep_ctr_pull two "$hosts" "$REGISTRY_HOST/edge/list:v1" --all-platforms
ep_assert_eq "$multi_digest" "$(ep_ctr_image_digest two "$REGISTRY_HOST/edge/multi:v1")" \
  "second namespace records the same digest"
ep_assert_gets 1 "${multi_blobs[@]}" "${list_blobs[@]}"

ep_stop_edgepulld
ep_finish
