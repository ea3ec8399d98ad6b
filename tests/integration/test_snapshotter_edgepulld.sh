#!/usr/bin/env bash
# containerd's own snapshotter test suite (snapshots/testsuite, through containerd's proxy
# snapshotter client) against the snapshotter edgepulld itself serves: edgepulld with its default
# flags plus --snapshotter-socket, the snapshot store under its state dir.
#   1. -isolation prefix: 20 passed, 0 failed (Rename is skipped upstream);
#   2. -isolation exclusive against a fresh edgepulld: the same, with server-side List filters;
#   3. systemd socket activation (systemd-socket-activate): the sockets named "local" and
#      "snapshotter" are served, and a few cases pass on the latter.
# The socket is mode 0600, removed when edgepulld exits; edgepulld stops cleanly.
# shellcheck source=../lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

ep_init test_snapshotter_edgepulld 500
ep_require_root

ep_conformance_dir
if ! ep__overlay_works "$EP_TMP"; then
  echo "test_snapshotter_edgepulld needs overlayfs mounts" >&2
  exit 77
fi

# run NAME FLAGS...: a fresh edgepulld (own state dir and port), run-suite FLAGS against its
# snapshotter socket, then a clean stop.
run() {
  local name=$1 sock=$EP_TMP/$1.sock out summary
  shift
  EP_STATE='' EP_PORT='' # a fresh state dir and port for each run
  ep_start_edgepulld --snapshotter-socket "$sock"
  ep_assert_eq 600 "$(stat -c %a "$sock")" "$name: socket mode 0600"
  ep_assert_eq 700 "$(stat -c %a "$EP_STATE/snapshots")" "$name: snapshot root under the state dir"
  out=$EP_TMP/$name-suite.log
  EP_LOGS+=("$out")
  ep_timeout 400 "$CONF/run-suite" "$sock" "$@" >"$out" 2>&1 || true
  summary=$(grep -E '^conformance: ' "$out" | tail -n 1)
  ep_log "$name: $summary"
  ep_assert_match '^conformance: 20 passed, 0 failed, ' "$summary" "$name: containerd's suite"
  if [[ ! $summary =~ \ 0\ failed ]]; then
    grep -E -- '--- FAIL|Error|error' "$out" | head -n 40
  fi
  ep__umount_under /tmp/snapshot-suite- 2>/dev/null || true
  ep_stop_edgepulld
  ep_assert_eq "" "$(ls "$sock" 2>/dev/null)" "$name: socket removed on exit"
}

run prefix
run exclusive -isolation exclusive
ep_assert_eq "" "$(ls "$EP_STATE/snapshots/snapshots")" \
  "exclusive: every directory removed with its snapshot"

# activated: edgepulld started by systemd-socket-activate with the local and snapshotter sockets
activated() {
  local sock=$EP_TMP/activated.sock port state pid log=$EP_TMP/activated.log out summary rc=0
  command -v systemd-socket-activate >/dev/null || {
    ep_log "no systemd-socket-activate: socket activation not tested"
    return 0
  }
  port=$(ep_free_port)
  state=$(ep_tmpdir state)
  systemd-socket-activate -l "127.0.0.1:$port" -l "$sock" --fdname=local:snapshotter \
    "$EP_BUILD_DIR/plugin/edgepulld" --state-dir "$state" >"$log" 2>&1 &
  pid=$!
  ep_cleanup_push "ep_stop_pid $pid 10"
  EP_LOGS+=("$log")
  ep_wait_http "http://127.0.0.1:$port/v2/" 30 "$pid" || ep_die "activated edgepulld did not start"
  ep_assert_match 'snapshotter on the socket passed by systemd' "$(cat "$log")" \
    "activation: the socket named snapshotter is served"
  out=$EP_TMP/activated-suite.log
  ep_timeout 200 "$CONF/run-suite" "$sock" -test.run 'Conformance/(Basic|Walk)$' >"$out" 2>&1 || true
  summary=$(grep -E '^conformance: ' "$out" | tail -n 1)
  ep_log "activated: $summary"
  ep_assert_match '^conformance: [1-9][0-9]* passed, 0 failed' "$summary" "activation: Basic and Walk pass"
  ep_stop_pid "$pid" 15 || rc=$?
  ep_assert_eq 0 "$rc" "activation: edgepulld exits 0 on SIGTERM"
  ep_check_sanitizers "$log"
}
activated

ep_finish
