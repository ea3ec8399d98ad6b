#!/usr/bin/env bash
# kill -9 of edgepulld during a remote unpack (issue 10: "a kill -9 during an unpack leaves nothing
# half-visible after the restart, and the test suite still passes"). test_snapshot_conformance
# kills the standalone snapshotter during containerd's suite (Prepare, Commit, Remove); this test
# kills edgepulld itself while its remote path fetches and unpacks a layer.
#
# The registry sits behind an emulated 16 Mbit/s uplink; three images have one gzip layer each
# of 200 random 64 KiB files (13 MB, ~7 s on that link). edgepulld runs with its default flags
# plus --registry and --snapshotter-socket. tests/tools/snap-client sends it the Prepare
# containerd's CRI pull sends (snapshot.ref, cri.layer-digest, cri.image-ref), and edgepulld is
# killed with SIGKILL, one image per point:
#   early   some files unpacked, less than 20 % of the blob received;
#   middle  40-60 % of the blob received;
#   commit  every file unpacked and every byte received: the checks, syncfs, usage and the
#           commit still to do.
# After each kill it restarts on the same state dir, and:
#   - List shows no snapshot (none carries the chain's snapshot.ref, none is half-made);
#   - the kill left an orphan directory, and Cleanup removes it: snapshots/ is empty again.
# Then the same Prepares succeed (AlreadyExists, each layer committed with its label and all its
# files), containerd's snapshotter suite passes against the restarted daemon (20 passed), and
# edgepulld stops cleanly.
# shellcheck source=../lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source=../lib/mkimage.sh
. "$EP_SOURCE_DIR/tests/lib/mkimage.sh"

ep_init test_snapshot_kill 500
ep_require_root
ep_require_cmd docker-registry skopeo curl jq tc ip numfmt go
ep_conformance_dir
SNAP_CLIENT=$(ep_build_go_tool snap-client)
if ! ep__overlay_works "$EP_TMP"; then
  echo "test_snapshot_kill needs overlayfs mounts" >&2
  exit 77
fi

FILES=200
POINTS=(early middle commit)
declare -A LAYER CHAIN SIZE

ep_uplink_create
ep_start_registry
for p in "${POINTS[@]}"; do
  ep_mkimage "$EP_TMP/img-$p" 1 "$(dpkg --print-architecture)" "gzfiles:${FILES}x64K"
  ep_push_image "$EP_TMP/img-$p" 1 "library/kill-$p"
  LAYER[$p]=${EP_IMG_LAYERS[0]}
  CHAIN[$p]=${EP__DIFF_IDS[0]} # one layer: the chain ID is its diffID
  SIZE[$p]=$(stat -c %s "$EP_TMP/img-$p/blobs/sha256/${LAYER[$p]#sha256:}")
done
ep_uplink_shape 16mbit

SNAP_SOCK=$EP_TMP/snap.sock
SNAPDIR= # set once edgepulld runs: its snapshot directories
ep_start_edgepulld --registry "docker.io=$REGISTRY_URL" --snapshotter-socket "$SNAP_SOCK"
SNAPDIR=$EP_STATE/snapshots/snapshots

snapc() { ep_timeout 120 "$SNAP_CLIENT" -socket "$SNAP_SOCK" -timeout 100s "$@"; }

# prepare POINT N: containerd's unpack Prepare of the point's layer, as CRI labels it
prepare() {
  snapc prepare "k8s.io/$2/extract-$2 ${CHAIN[$1]}" "" \
    "containerd.io/snapshot.ref=${CHAIN[$1]}" \
    "containerd.io/snapshot/cri.layer-digest=${LAYER[$1]}" \
    "containerd.io/snapshot/cri.image-ref=docker.io/library/kill-$1:1"
}

# reached POINT: 0 once the moment to kill at has come
reached() {
  local p=$1 got files
  got=$(stat -c %s "$EP_STATE/ingest/${LAYER[$p]#sha256:}.partial" 2>/dev/null || echo 0)
  files=$(find "$SNAPDIR" -path '*/new-*/fs/data/*' -type f 2>/dev/null | wc -l)
  case $p in
  early) [ "$files" -gt 0 ] && [ $((5 * got)) -lt "${SIZE[$p]}" ] ;;
  middle) [ $((10 * got)) -ge $((4 * SIZE[$p])) ] && [ $((10 * got)) -le $((6 * SIZE[$p])) ] ;;
  esac
}

# kill_at_commit POINT: SIGKILL edgepulld the moment the layer's last file is in the snapshot being
# unpacked and every byte of the blob has arrived (polled every millisecond: what is left then,
# the digest and chain ID checks, syncfs, usage and the commit, takes longer than that).
kill_at_commit() {
  python3 - "$SNAPDIR" "$(printf 'f%06d' $((FILES - 1)))" "$EP_PID" \
    "$EP_STATE/ingest/${LAYER[$1]#sha256:}.partial" "${SIZE[$1]}" <<'PY'
import glob, os, signal, sys, time
root, last, pid, partial, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
deadline = time.monotonic() + 60
def received():
    try:
        return os.stat(partial).st_size
    except FileNotFoundError:
        return size  # renamed into the store: complete
while time.monotonic() < deadline:
    if glob.glob(os.path.join(root, "new-*", "fs", "data", last)) and received() >= size:
        break
    time.sleep(0.001)
os.kill(pid, signal.SIGKILL)
PY
}

n=0
for p in "${POINTS[@]}"; do
  n=$((n + 1))
  out=$EP_TMP/prepare-$p.log
  prepare "$p" "$n" >"$out" 2>&1 &
  cpid=$!
  deadline=$((SECONDS + 60))
  if [ "$p" = commit ]; then
    kill_at_commit "$p"
  else
    until reached "$p"; do
      kill -0 "$cpid" 2>/dev/null || break
      [ "$SECONDS" -lt "$deadline" ] || break
      sleep 0.01
    done
    kill -KILL "$EP_PID"
  fi
  wait "$EP_PID" 2>/dev/null || true
  wait "$cpid" 2>/dev/null || true
  ep_assert_not "$p: edgepulld was killed before it answered the Prepare ($(tr '\n' ' ' <"$out"))" \
    grep -qx exists "$out"
  orphans=$(find "$SNAPDIR" -mindepth 1 -maxdepth 1 | wc -l)
  ep_log "$p: killed with $(stat -c %s "$EP_STATE/ingest/${LAYER[$p]#sha256:}.partial" 2>/dev/null || echo '(no partial)') of ${SIZE[$p]} bytes received; $orphans directories left"

  ep_start_edgepulld # the same state dir, port and flags
  listed=$(snapc list)
  ep_assert_eq "" "$listed" "$p: after the restart List shows no snapshot (nothing half-visible)"
  ep_assert_ne 0 "$orphans" "$p: the kill left an orphan directory"
  snapc cleanup || ep_fail "$p: Cleanup failed"
  ep_assert_eq "" "$(ls -A "$SNAPDIR")" "$p: Cleanup removed every orphan directory"
done

# --- the same chains again, on the restarted daemon
n=10
for p in "${POINTS[@]}"; do
  n=$((n + 1))
  ep_assert_eq exists "$(prepare "$p" "$n" 2>&1)" "$p: the next Prepare of the chain succeeds (AlreadyExists)"
done
listed=$(snapc list)
for p in "${POINTS[@]}"; do
  ep_assert_match "^edgepull/remote/root/${CHAIN[$p]} Committed \"\" .*containerd.io/snapshot.ref=${CHAIN[$p]}" \
    "$(grep -F "${CHAIN[$p]}" <<<"$listed")" "$p: the layer is committed with its chain ID"
done
ep_assert_eq $((3 * FILES)) "$(find "$SNAPDIR" -path '*/fs/data/*' -type f | wc -l)" \
  "every file of the three layers is in the snapshots"

# --- containerd's snapshotter suite against the restarted daemon
out=$EP_TMP/suite.log
EP_LOGS+=("$out")
ep_timeout 400 "$CONF/run-suite" "$SNAP_SOCK" >"$out" 2>&1 || true
summary=$(grep -E '^conformance: ' "$out" | tail -n 1)
ep_log "after the kills: $summary"
ep_assert_match '^conformance: 20 passed, 0 failed, ' "$summary" "containerd's suite after kill -9 and restart"
ep__umount_under /tmp/snapshot-suite- 2>/dev/null || true

ep_stop_edgepulld
ep_finish
