#!/usr/bin/env bash
# An upstream that serves wrong bytes for a layer (same size, some bytes
# changed inside the registry's storage) must never get them into the store:
# the pull through edgepulld fails, no blob and no partial for that digest
# are left, the daemon keeps serving. Once the registry's file is repaired the
# same pull succeeds and the blob is stored verified.
# shellcheck source=../lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source=../lib/mkimage.sh
. "$EP_SOURCE_DIR/tests/lib/mkimage.sh"

ep_init test_mirror_corrupt 300
ep_require_root
ep_require_cmd docker-registry containerd ctr skopeo jq curl

ep_start_registry
layout=$(ep_tmpdir layout)
ep_mkimage "$layout" v1 amd64 gzip:2M tar:3M
ep_push_image "$layout" v1 edge/bad
digest=$EP_PUSHED_DIGEST
victim=${EP_PUSHED_LAYERS[1]}
hex=${victim#sha256:}
data=$(ep_registry_blob_path "$victim")
[ -f "$data" ] || ep_die "no registry data file for $victim at $data"
size=$(stat -c %s "$data")

# Corrupt 4 KiB in the middle, keeping the size.
cp "$data" "$EP_TMP/victim.orig"
head -c 4096 /dev/urandom |
  dd of="$data" bs=4096 seek=$((size / 2 / 4096)) conv=notrunc status=none
ep_assert_ne "$victim" "$(ep_sha256 "$data")" "the registry's copy of the layer is corrupt"
ep_assert_eq "$size" "$(stat -c %s "$data")" "the corrupt copy has the same size"

ep_start_edgepulld --registry "$REGISTRY_HOST=$REGISTRY_URL"
out=$EP_TMP/out
rc=0
ep_curl -f -o "$out" "$(ep_blob_url edge/bad "$victim")" || rc=$?
ep_assert_ne 0 "$rc" "GET of the corrupt blob through edgepulld fails (curl exit $rc)"
if [ "$rc" -eq 0 ]; then
  ep_log "client received $(stat -c %s "$out") bytes with sha $(ep_sha256 "$out")"
fi

# containerd: the mirror fails, and so does the (corrupt) upstream.
ep_start_containerd
hosts=$(ep_hosts_dir "$REGISTRY_HOST" "$REGISTRY_URL" "$EP_URL")
ep_assert_not "ctr pull of the image with the corrupt layer fails" \
  ep_ctr_pull one "$hosts" "$REGISTRY_HOST/edge/bad:v1"

# The fetcher may need a moment to discard the partial after the abort.
for _ in $(seq 50); do
  [ -e "$EP_STATE/ingest/$hex.partial" ] || break
  sleep 0.1
done
ep_assert_not "no blobs/sha256/<hex> for the corrupt digest" test -e "$EP_STATE/blobs/sha256/$hex"
ep_assert_not "no ingest/<hex>.partial left for the corrupt digest" \
  test -e "$EP_STATE/ingest/$hex.partial"
ep_assert "edgepulld is alive and serving" ep_edgepulld_alive
ep_log "edgepulld log on the mismatch: $(grep -iE 'mismatch|digest|verif' "$EP_LOG" | tail -n 3)"

# Repair the upstream: the same requests now succeed.
cp "$EP_TMP/victim.orig" "$data"
rm -f "$out"
rc=0
ep_curl -f -o "$out" "$(ep_blob_url edge/bad "$victim")" || rc=$?
ep_assert_eq 0 "$rc" "GET through edgepulld succeeds after the repair"
[ ! -f "$out" ] || ep_assert_eq "$victim" "$(ep_sha256 "$out")" "the client gets the right bytes"
ep_assert_stored "$victim"
ep_assert "ctr pull succeeds after the repair" ep_ctr_pull two "$hosts" "$REGISTRY_HOST/edge/bad:v1"
ep_assert_eq "$digest" "$(ep_ctr_image_digest two "$REGISTRY_HOST/edge/bad:v1")" \
  "containerd records the upstream digest"
ep_assert_stored "${EP_PUSHED_BLOBS[@]}"

ep_stop_edgepulld
ep_finish
