#!/usr/bin/env bash
# Single-node smoke test of a cross-built edgepulld under qemu user emulation
# (run by scripts/test's cross step, not by the native ctest):
#   EP_BUILD_DIR=build-armhf EP_EMULATOR=qemu-arm-static bash tests/cross/smoke.sh
# A local docker-registry holds a small image; the emulated daemon pulls its
# manifest and blobs through (curl against it), the bytes match the digests,
# the store holds verified copies, and SIGTERM stops it with status 0.
# shellcheck source=../lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source=../lib/mkimage.sh
. "$EP_SOURCE_DIR/tests/lib/mkimage.sh"

ep_init "cross_smoke${EP_EMULATOR:+_${EP_EMULATOR%%-static}}" 300
ep_require_cmd docker-registry skopeo jq curl
[ -z "${EP_EMULATOR:-}" ] || ep_require_cmd "$EP_EMULATOR"

ep_start_registry
layout=$(ep_tmpdir layout)
ep_mkimage "$layout" v1 arm64 gzip:3M tar:1M
ep_push_image "$layout" v1 edge/smoke
blobs=("${EP_PUSHED_BLOBS[@]}")

ep_start_edgepulld --registry "$REGISTRY_HOST=$REGISTRY_URL"
ep_log "edgepulld: ${EP_EMULATOR:-native} $EP_BUILD_DIR/plugin/edgepulld"

m=$EP_TMP/manifest
code=$(ep_http "$m" -H "Accept: $EP_MT_MANIFEST" "$(ep_manifest_url edge/smoke v1)")
ep_assert_eq 200 "$code" "GET manifest through the emulated edgepulld"
ep_assert_eq "$EP_PUSHED_DIGEST" "$(ep_sha256 "$m")" "manifest bytes match its digest"
for d in "${blobs[@]}"; do
  f=$EP_TMP/blob
  code=$(ep_http "$f" "$(ep_blob_url edge/smoke "$d")")
  ep_assert_eq 200 "$code" "GET blob ${d:0:19}"
  ep_assert_eq "$d" "$(ep_sha256 "$f")" "blob ${d:0:19} bytes match its digest"
done
ep_assert_stored "${blobs[@]}"
# A second pass comes from the store: the registry saw one GET per blob.
for d in "${blobs[@]}"; do
  ep_http "$EP_TMP/again" "$(ep_blob_url edge/smoke "$d")" >/dev/null
done
ep_assert_gets 1 "${blobs[@]}"
ep_stop_edgepulld
ep_finish
