#!/usr/bin/env bash
# Offline locality: once an image went through edgepulld, it stays pullable
# when the upstream is gone. The tag was resolved with a 1 s TTL, so after the
# registry stops edgepulld must serve the stale tag (HEAD and GET, with the
# right Docker-Content-Digest) and the cached blobs; an unknown tag or blob
# is a 404 with OCI error JSON; containerd still pulls the cached image.
# shellcheck source=../lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source=../lib/mkimage.sh
. "$EP_SOURCE_DIR/tests/lib/mkimage.sh"

ep_init test_mirror_offline 300
ep_require_root
ep_require_cmd docker-registry containerd ctr skopeo jq curl

ep_start_registry
layout=$(ep_tmpdir layout)
ep_mkimage "$layout" v1 amd64 gzip:2M tar:1M
ep_push_image "$layout" v1 edge/off
digest=$EP_PUSHED_DIGEST
blobs=("${EP_PUSHED_BLOBS[@]}")
mt=application/vnd.oci.image.manifest.v1+json
ep_mkimage "$layout" v2 amd64 gzip:256K
ep_push_image "$layout" v2 edge/off
v2_blobs=("${EP_PUSHED_LAYERS[@]}")

ep_start_edgepulld --registry "$REGISTRY_HOST=$REGISTRY_URL" --tag-ttl 1
ep_start_containerd
hosts=$(ep_hosts_dir "$REGISTRY_HOST" "$REGISTRY_URL" "$EP_URL")
ep_assert "ctr pulls edge/off:v1 through edgepulld while online" \
  ep_ctr_pull one "$hosts" "$REGISTRY_HOST/edge/off:v1"
ep_assert_stored "${blobs[@]}"

ep_stop_registry
sleep 2 # the tag's TTL has expired: only the stale entry can answer
ep_assert_not "the registry is down" curl -fs --max-time 2 -o /dev/null "$REGISTRY_URL/v2/"

body=$EP_TMP/body
accept=(-H "Accept: $mt" -H 'Accept: application/vnd.oci.image.index.v1+json'
  -H 'Accept: application/vnd.docker.distribution.manifest.v2+json'
  -H 'Accept: application/vnd.docker.distribution.manifest.list.v2+json')
code=$(ep_http "$body" -I "${accept[@]}" "$(ep_manifest_url edge/off v1)")
ep_assert_eq 200 "$code" "HEAD manifests/v1 offline"
ep_assert_eq "$digest" "$(ep_header "$body.h" Docker-Content-Digest)" \
  "HEAD offline: Docker-Content-Digest"
code=$(ep_http "$body" "${accept[@]}" "$(ep_manifest_url edge/off v1)")
ep_assert_eq 200 "$code" "GET manifests/v1 offline"
ep_assert_eq "$digest" "$(ep_header "$body.h" Docker-Content-Digest)" \
  "GET offline: Docker-Content-Digest"
ep_assert_eq "$digest" "$(ep_sha256 "$body")" "GET offline: body has the digest"
ep_assert_eq "$mt" "$(ep_header "$body.h" Content-Type)" "GET offline: Content-Type"

code=$(ep_http "$body" "${accept[@]}" "$(ep_manifest_url edge/off "$digest")")
ep_assert_eq 200 "$code" "GET manifest by digest offline"

code=$(ep_http "$body" "$(ep_blob_url edge/off "${blobs[0]}")")
ep_assert_eq 200 "$code" "GET cached blob offline"
ep_assert_eq "${blobs[0]}" "$(ep_sha256 "$body")" "cached blob offline: content verifies"

code=$(ep_http "$body" "${accept[@]}" "$(ep_manifest_url edge/off v2)")
ep_assert_eq 404 "$code" "GET of an uncached tag offline"
ep_assert_error_json "$body" "uncached tag"
code=$(ep_http "$body" -I "${accept[@]}" "$(ep_manifest_url edge/off v2)")
ep_assert_eq 404 "$code" "HEAD of an uncached tag offline"
code=$(ep_http "$body" "$(ep_blob_url edge/off "${v2_blobs[0]}")")
# Unknown here and upstream unreachable: 404, or 502/503 (cannot tell).
ep_assert_match '^(404|502|503)$' "$code" "GET of an uncached blob offline"
ep_assert_error_json "$body" "uncached blob"

ep_assert "ctr pulls edge/off:v1 offline in a new namespace" \
  ep_ctr_pull two "$hosts" "$REGISTRY_HOST/edge/off:v1"
ep_assert_eq "$digest" "$(ep_ctr_image_digest two "$REGISTRY_HOST/edge/off:v1")" \
  "offline pull records the upstream digest"
ep_assert "edgepulld is alive" ep_edgepulld_alive

ep_stop_edgepulld
ep_finish
