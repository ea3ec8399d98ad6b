#!/usr/bin/env bash
# A real containerd with edgepull as its proxy snapshotter (the containerd-conformance tool's
# e2e-pull): a CRI-style pull of a two-layer image, in two namespaces, then
# `ctr run --snapshotter edgepull` runs a command in the image. Run twice:
# - plain: no layer source, so containerd fetches every layer and applies it into edgepull's
#   snapshots;
# - remote: edgepull-snapshotd --layers-from the test registry, so each Prepare carrying the layer
#   labels makes edgepull fetch the layer itself, unpack it while it streams in, verify and commit
#   it and answer AlreadyExists: containerd fetches no layer, in either namespace.
# shellcheck source=../lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

ep_init test_snapshot_e2e 500
ep_require_root
ep_require_cmd containerd ctr runc docker-registry skopeo curl
[ -x /bin/busybox ] || {
  echo "test_snapshot_e2e needs busybox-static" >&2
  exit 77
}

SNAPD=$EP_BUILD_DIR/plugin/snapshot/edgepull-snapshotd
[ -x "$SNAPD" ] || ep_die "no $SNAPD (build with -DEDGEPULL_TESTS=ON)"
ep_conformance_dir

# run_e2e MODE (plain|remote): a fresh snapshotter, e2e-pull against it, the checks of MODE.
run_e2e() {
  local mode=$1 dir=$EP_TMP/$1 port out summary snapd_pid rc=0 extra=()
  port=$(ep_free_port)
  [ "$mode" = remote ] && extra=(--layers-from "http://127.0.0.1:$port")
  mkdir -p "$dir"
  "$SNAPD" --root "$dir/root" --socket "$dir/snap.sock" "${extra[@]}" >"$dir/snapd.log" 2>&1 &
  snapd_pid=$!
  ep_cleanup_push "kill -KILL $snapd_pid"
  EP_LOGS+=("$dir/snapd.log")
  for ((i = 0; i < 100; i++)); do
    [ -S "$dir/snap.sock" ] && break
    sleep 0.1
  done

  out=$dir/e2e.log
  REGISTRY_PORT=$port ep_timeout 300 "$CONF/e2e-pull" "$dir/snap.sock" edgepull >"$out" 2>&1 || true
  summary=$(grep -E '^e2e-pull: ' "$out" | tail -n 1)
  ep_log "$mode: $summary"
  ep_assert_eq "e2e-pull: 3 passed, 0 failed" "$summary" "$mode: pull twice and ctr run through edgepull"
  if [ "$mode" = plain ]; then
    ep_assert_match 'layers: 2, fetched: 2, skipped: 0, unpacked in edgepull: true' \
      "$(grep -m1 '^layers:' "$out")" "plain: both layers unpacked into edgepull's snapshots"
  else
    ep_assert_match 'layers: 2, fetched: 0, skipped: 2, unpacked in edgepull: true' \
      "$(grep -m1 '^layers:' "$out")" "remote: containerd fetched no layer, edgepull unpacked both"
    ep_assert_match 'layers: 2, fetched: 0, skipped: 2' "$(grep '^layers:' "$out" | sed -n 2p)" \
      "remote: second namespace, no layer fetched either"
  fi
  ep_assert_match '^hello from layer 2$' "$(grep -x 'hello from layer 2' "$out" || true)" \
    "$mode: ctr run read the top layer's file"
  if [[ ! $summary =~ \ 0\ failed ]]; then
    tail -n 40 "$out"
  fi

  ep_stop_pid "$snapd_pid" 20 || rc=$?
  ep_assert_eq 0 "$rc" "$mode: edgepull-snapshotd exits 0 on SIGTERM"
  if [ "$mode" = remote ]; then
    ep_assert_match 'remote unpacked 2, existed [1-9]' \
      "$(grep -o 'remote unpacked.*' "$dir/snapd.log" || true)" \
      "remote: each layer fetched and unpacked once; the second namespace found them"
    ep_assert_eq 0 "$(grep -c 'fetches the layer itself' "$dir/snapd.log" || true)" "remote: no fallback"
  fi
  ep_check_sanitizers "$dir/snapd.log"
}

run_e2e plain
run_e2e remote
ep_finish
