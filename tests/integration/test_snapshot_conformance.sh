#!/usr/bin/env bash
# containerd's own snapshotter test suite (snapshots/testsuite, 21 cases, through containerd's
# proxy snapshotter client) against edgepull's snapshot service, served by the standalone
# edgepull-snapshotd on a temp socket:
#   1. -isolation prefix: every case passes that containerd's overlay passes (20, Rename skipped);
#   2. -isolation exclusive against a fresh daemon: the same, with server-side List filters;
#   3. kill -9 of the daemon in the middle of a run, a restart on the same root, and the suite
#      passes again (nothing half-made is visible, nothing is in the way).
# The socket must be mode 0600, and the daemon must stop cleanly with no sanitizer report.
# shellcheck source=../lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

ep_init test_snapshot_conformance 500
ep_require_root

SNAPD=$EP_BUILD_DIR/plugin/snapshot/edgepull-snapshotd
[ -x "$SNAPD" ] || ep_die "no $SNAPD (build with -DEDGEPULL_TESTS=ON)"
ep_conformance_dir
if ! ep__overlay_works "$EP_TMP"; then
  echo "test_snapshot_conformance needs overlayfs mounts" >&2
  exit 77
fi

SNAPD_PID=
# start_snapd NAME: serves $EP_TMP/NAME/root on $EP_TMP/NAME.sock
start_snapd() {
  local name=$1 i
  mkdir -p "$EP_TMP/$name"
  "$SNAPD" --root "$EP_TMP/$name/root" --socket "$EP_TMP/$name.sock" \
    >>"$EP_TMP/$name/snapd.log" 2>&1 &
  SNAPD_PID=$!
  ep_cleanup_push "kill -KILL $SNAPD_PID"
  EP_LOGS+=("$EP_TMP/$name/snapd.log")
  for ((i = 0; i < 100; i++)); do
    [ -S "$EP_TMP/$name.sock" ] && return 0
    sleep 0.1
  done
  ep_die "edgepull-snapshotd did not create $EP_TMP/$name.sock"
}

# suite NAME WHAT [FLAGS...]: runs run-suite, asserts every reference case passes
suite() {
  local name=$1 what=$2 out summary
  shift 2
  out=$EP_TMP/$name/suite.log
  ep_timeout 400 "$CONF/run-suite" "$EP_TMP/$name.sock" "$@" >"$out" 2>&1 || true
  summary=$(grep -E '^conformance: ' "$out" | tail -n 1)
  ep_log "$what: $summary"
  ep_assert_match '^conformance: ([2-9][0-9]) passed, 0 failed, ' "$summary" "$what: $summary"
  if [[ ! $summary =~ \ 0\ failed ]]; then
    grep -E -- '--- FAIL|Error|error' "$out" | head -n 40
  fi
}

stop_snapd() {
  local name=$1 rc=0
  ep_stop_pid "$SNAPD_PID" 20 || rc=$?
  ep_assert_eq 0 "$rc" "$name: edgepull-snapshotd exits 0 on SIGTERM"
  ep_assert_eq "" "$(ls "$EP_TMP/$name.sock" 2>/dev/null)" "$name: socket removed on exit"
  ep_check_sanitizers "$EP_TMP/$name/snapd.log"
}

start_snapd prefix
ep_assert_eq 600 "$(stat -c %a "$EP_TMP/prefix.sock")" "socket mode 0600"
ep_assert_eq 700 "$(stat -c %a "$EP_TMP/prefix/root")" "root dir mode 0700"
suite prefix "isolation prefix"
stop_snapd prefix

start_snapd exclusive
suite exclusive "isolation exclusive" -isolation exclusive
ep_assert_eq "" "$(ls "$EP_TMP/exclusive/root/snapshots")" \
  "exclusive: every directory removed with its snapshot"
stop_snapd exclusive

# kill -9 while the suite runs (the parallel cases prepare, commit and remove all the time)
start_snapd crash
(ep_timeout 60 "$CONF/run-suite" "$EP_TMP/crash.sock" >"$EP_TMP/crash/killed-suite.log" 2>&1 || true) &
suite_pid=$!
sleep 3
kill -KILL "$SNAPD_PID"
wait "$SNAPD_PID" 2>/dev/null || true
wait "$suite_pid" 2>/dev/null || true
ep__umount_under /tmp/snapshot-suite- 2>/dev/null || true
start_snapd crash
suite crash "after kill -9 and restart"
stop_snapd crash

ep_finish
