#!/usr/bin/env bash
# The remote path unpacks a layer WHILE it streams in (issue 10 point 3), shown on the way, not
# only by the result. The registry sits behind an emulated uplink (a veth into a network
# namespace, tc tbf at 16 Mbit/s); the image has one gzip layer of 400 random files of 64 KiB
# (~26 MB, ~13 s on that link). edgepulld runs with its default flags plus --registry and
# --snapshotter-socket; a real containerd pulls the image CRI-style (cri-pull) into the edgepull
# snapshotter. While the pull runs, the test samples how many bytes of the layer edgepulld has
# received (ingest/<hex>.partial) and how many of its files are already in the snapshot being
# unpacked (snapshots/snapshots/new-*/fs/data):
#   - at some moment, at least 10 % of the layer's files are unpacked while less than 50 % of the
#     blob has arrived;
#   - the pull ends with containerd skipping the layer, and the snapshot holds all 400 files;
#   - the compressed layer is on disk once, in edgepull's store: containerd's content store has
#     no copy (nor any file with its bytes), and the registry served it once.
# shellcheck source=../lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source=../lib/mkimage.sh
. "$EP_SOURCE_DIR/tests/lib/mkimage.sh"

ep_init test_snapshot_streaming 500
ep_require_root
ep_require_cmd containerd ctr docker-registry skopeo curl jq tc ip numfmt
ep_conformance_dir
CRI_PULL=$CONF_BIN/cri-pull
if ! ep__overlay_works "$EP_TMP"; then
  echo "test_snapshot_streaming needs overlayfs mounts" >&2
  exit 77
fi

FILES=400
REF=docker.io/library/streamed:1

ep_uplink_create
ep_start_registry
ep_mkimage "$EP_TMP/img" 1 "$(dpkg --print-architecture)" "gzfiles:${FILES}x64K"
ep_push_image "$EP_TMP/img" 1 library/streamed
LAYER=${EP_IMG_LAYERS[0]}
LAYER_SIZE=$(stat -c %s "$EP_TMP/img/blobs/sha256/${LAYER#sha256:}")
ep_uplink_shape 16mbit
ep_log "layer $LAYER: $LAYER_SIZE bytes, $FILES files, uplink 16 Mbit/s"

SNAP_SOCK=$EP_TMP/snap.sock
ep_start_edgepulld --registry "docker.io=$REGISTRY_URL" --snapshotter-socket "$SNAP_SOCK"
EP_CTRD_SNAP_SOCK=$SNAP_SOCK ep_start_containerd
HOSTS=$(ep_hosts_dir docker.io "$REGISTRY_URL" "$EP_URL")

# --- the pull, sampled while it runs
out=$EP_TMP/cri-pull.log
EP_LOGS+=("$out")
ep_timeout 300 "$CRI_PULL" -address "$CTR_ADDRESS" -namespace k8s.io -snapshotter edgepull \
  -hosts-dir "$HOSTS" -timeout 4m "$REF" >"$out" 2>&1 &
pull_pid=$!
partial=$EP_STATE/ingest/${LAYER#sha256:}.partial
samples=$EP_TMP/samples.txt
: >"$samples"
while kill -0 "$pull_pid" 2>/dev/null; do
  # files first, then bytes: a sample never counts files that came after the bytes it reports
  files=$(find "$EP_STATE/snapshots/snapshots" -path '*/new-*/fs/data/*' -type f 2>/dev/null | wc -l)
  got=$(stat -c %s "$partial" 2>/dev/null || echo -1)
  [ "$got" -lt 0 ] || echo "$got $files" >>"$samples"
  sleep 0.2
done
wait "$pull_pid" || ep_fail "cri-pull failed: $(tail -n 3 "$out")"
ep_log "$(wc -l <"$samples") samples (received bytes, files unpacked); e.g. $(awk 'NR % 10 == 1' "$samples" | tr '\n' ';')"

early=$(awk -v size="$LAYER_SIZE" -v files="$FILES" \
  '2 * $1 < size && 10 * $2 >= files { print; exit }' "$samples")
ep_assert_ne "" "$early" \
  "files were unpacked while the layer streamed in: ≥ 10 % of files with < 50 % of the blob received"
[ -z "$early" ] || ep_log "first such sample: ${early% *} of $LAYER_SIZE bytes received, ${early#* } of $FILES files unpacked"

line=$(grep -m1 '^layers:' "$out" || true)
ep_assert_match '^layers: 1, fetched: 0, skipped: 1, unpacked in edgepull: true' "$line" \
  "containerd skipped the layer: edgepulld unpacked it"
ep_assert_eq "$FILES" "$(find "$EP_STATE/snapshots/snapshots" -path '*/fs/data/*' -type f | wc -l)" \
  "the committed snapshot holds every file of the layer"

# --- one compressed copy on disk, in edgepull's store
ep_assert "edgepull's store holds the layer" test -f "$(ep_store_blob "$LAYER")"
ep_assert_not "containerd's content store does not list the layer" \
  grep -qx "$LAYER" <<<"$(ep_ctr -n k8s.io content ls -q)"
copies=$(find "$EP_STATE" "$CTR_ROOT" -xdev -type f -size "${LAYER_SIZE}c" -exec sha256sum {} + |
  awk -v h="${LAYER#sha256:}" '$1 == h' | wc -l)
ep_assert_eq 1 "$copies" "the compressed layer is on disk once (edgepull's store, not containerd's)"
ep_assert_eq 1 "$(ep_count_blob_gets "$LAYER")" "registry: one GET for the layer"

ep_stop_edgepulld
ep_assert_match 'remote unpacked 1, existed [0-9]+, joined [0-9]+, unknown 0, fallbacks 0' \
  "$(grep -o 'remote unpacked.*' "$EP_LOG" || true)" "one remote unpack, no fallback"
ep_finish
