#!/usr/bin/env bash
# skopeo (the podman/CRI-O client stack) copies images through edgepulld.
# These clients send no ?ns=, so the upstream comes either from
# --default-registry (a plain name) or from the first path component when it
# looks like a host (the registries.conf mirror form 127.0.0.1:5050/registry.test).
# The copies must carry the upstream's manifest bytes and verified blobs, and
# the registry must serve each blob once in all.
# shellcheck source=../lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source=../lib/mkimage.sh
. "$EP_SOURCE_DIR/tests/lib/mkimage.sh"

ep_init test_mirror_skopeo 300
ep_require_root
ep_require_cmd docker-registry skopeo jq curl

ep_start_registry
layout=$(ep_tmpdir layout)
ep_mkimage "$layout" v1 amd64 gzip:2M tar:1M
ep_push_image "$layout" v1 edge/app
app_digest=$EP_PUSHED_DIGEST
app_blobs=("${EP_PUSHED_BLOBS[@]}")

layout=$(ep_tmpdir layout)
ep_mkimage_index "$layout" v1 gzip:512K
ep_push_image "$layout" v1 edge/list --all --format v2s2
list_digest=$EP_PUSHED_DIGEST

ep_start_edgepulld --registry "$REGISTRY_HOST=$REGISTRY_URL" \
  --registry "registry.test=$REGISTRY_URL" --default-registry "$REGISTRY_HOST"

# check_dir WHAT DIR: a skopeo dir: copy of edge/app:v1 is intact.
check_dir() {
  local what=$1 dir=$2 d f ok=1
  ep_assert_eq "$app_digest" "$(ep_sha256 "$dir/manifest.json")" "$what: manifest digest"
  for d in "${app_blobs[@]}"; do
    f=$dir/${d#sha256:}
    if [ ! -f "$f" ] || [ "$(ep_sha256 "$f")" != "$d" ]; then
      ep_fail "$what: blob $d missing or corrupt in $dir"
      ok=0
    fi
  done
  [ "$ok" = 0 ] || ep_pass "$what: all ${#app_blobs[@]} blobs verify"
}

# shellcheck disable=SC2317 # called through ep_assert
skopeo_copy() { # SRC DEST
  ep_timeout 120 skopeo --tmpdir "$EP_TMP" copy --quiet --src-tls-verify=false "$1" "$2" \
    >>"$EP_TMP/skopeo.log" 2>&1
}
EP_LOGS+=("$EP_TMP/skopeo.log")

out=$(ep_tmpdir copy)
ep_assert "skopeo copies a plain name (default registry) through edgepulld" \
  skopeo_copy "docker://127.0.0.1:$EP_PORT/edge/app:v1" "dir:$out"
check_dir "default registry" "$out"

out=$(ep_tmpdir copy)
ep_assert "skopeo copies registry.test/edge/app (mirror path form)" \
  skopeo_copy "docker://127.0.0.1:$EP_PORT/registry.test/edge/app:v1" "dir:$out"
check_dir "path form" "$out"

out=$(ep_tmpdir copy)
ep_assert "skopeo copies by digest" \
  skopeo_copy "docker://127.0.0.1:$EP_PORT/edge/app@$app_digest" "dir:$out"
check_dir "by digest" "$out"

raw=$(ep_timeout 60 skopeo inspect --raw --tls-verify=false \
  "docker://127.0.0.1:$EP_PORT/registry.test/edge/list:v1" 2>>"$EP_TMP/skopeo.log" |
  sha256sum | cut -d' ' -f1) || raw="(skopeo inspect failed, see skopeo.log)"
ep_assert_eq "$list_digest" "sha256:$raw" "the manifest list comes through byte for byte"

out=$(ep_tmpdir copy)
ep_assert "skopeo copies one platform of the list" \
  skopeo_copy "docker://127.0.0.1:$EP_PORT/edge/list:v1" "dir:$out"

ep_assert_stored "${app_blobs[@]}"
ep_assert_gets 1 "${app_blobs[@]}"

ep_stop_edgepulld
ep_finish
