#!/usr/bin/env bash
# A real containerd with edgepull as its proxy snapshotter (the containerd-conformance tool's
# e2e-pull): a CRI-style pull of a two-layer image unpacks every layer into edgepull's snapshots
# (in two namespaces), and `ctr run --snapshotter edgepull` runs a command in the image.
# Without layer labels handled (the remote path), containerd fetches every layer itself.
# shellcheck source=../lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

ep_init test_snapshot_e2e 400
ep_require_root
ep_require_cmd containerd ctr runc docker-registry skopeo curl
[ -x /bin/busybox ] || {
  echo "test_snapshot_e2e needs busybox-static" >&2
  exit 77
}

SNAPD=$EP_BUILD_DIR/plugin/snapshot/edgepull-snapshotd
[ -x "$SNAPD" ] || ep_die "no $SNAPD (build with -DEDGEPULL_TESTS=ON)"
CONF=
for d in "${EP_CONFORMANCE_DIR:-}" "$EP_SOURCE_DIR/../shared/tools/containerd-conformance" \
  /work/shared/tools/containerd-conformance; do
  if [ -n "$d" ] && [ -x "$d/e2e-pull" ]; then
    CONF=$d
    break
  fi
done
if [ -z "$CONF" ]; then
  echo "test_snapshot_e2e needs the containerd-conformance tool (EP_CONFORMANCE_DIR)" >&2
  exit 77
fi

mkdir -p "$EP_TMP/snapd"
"$SNAPD" --root "$EP_TMP/snapd/root" --socket "$EP_TMP/snap.sock" >"$EP_TMP/snapd/snapd.log" 2>&1 &
snapd_pid=$!
ep_cleanup_push "kill -KILL $snapd_pid"
EP_LOGS+=("$EP_TMP/snapd/snapd.log")
for ((i = 0; i < 100; i++)); do
  [ -S "$EP_TMP/snap.sock" ] && break
  sleep 0.1
done

port=$(ep_free_port)
out=$EP_TMP/e2e.log
REGISTRY_PORT=$port ep_timeout 300 "$CONF/e2e-pull" "$EP_TMP/snap.sock" edgepull >"$out" 2>&1 || true
summary=$(grep -E '^e2e-pull: ' "$out" | tail -n 1)
ep_log "$summary"
ep_assert_eq "e2e-pull: 3 passed, 0 failed" "$summary" "pull twice and ctr run through edgepull"
ep_assert_match 'layers: 2, fetched: 2, skipped: 0, unpacked in edgepull: true' \
  "$(grep -m1 '^layers:' "$out")" "both layers unpacked into edgepull's snapshots"
ep_assert_match '^hello from layer 2$' "$(grep -x 'hello from layer 2' "$out" || true)" \
  "ctr run read the top layer's file"
if [[ ! $summary =~ \ 0\ failed ]]; then
  tail -n 40 "$out"
fi

rc=0
ep_stop_pid "$snapd_pid" 20 || rc=$?
ep_assert_eq 0 "$rc" "edgepull-snapshotd exits 0 on SIGTERM"
ep_check_sanitizers "$EP_TMP/snapd/snapd.log"
ep_finish
