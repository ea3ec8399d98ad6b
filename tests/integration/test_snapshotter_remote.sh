#!/usr/bin/env bash
# edgepulld as both the registry mirror and containerd's snapshotter (issue 10's remote path), with
# a real containerd and the CRI-style pull client cri-pull:
#   - a three-layer image (busybox, then a whiteout, an opaque dir, a symlink, a hardlink, a
#     setuid file and a user xattr) is pushed with skopeo to a docker-registry, which edgepulld
#     (default flags plus --registry and --snapshotter-socket) uses as docker.io;
#   - containerd pulls docker.io/library/snapdemo:1 (CRI style, into its own overlayfs) through
#     edgepulld as its mirror, so edgepull's store holds the image;
#   - a pull with containerd's unpacker and no CRI labels (tests/tools/nolabel-pull, as CRI with
#     its default disable_snapshot_annotations = true or nerdctl pull; Prepare carries only
#     snapshot.ref=<chainID>) then skips every layer: edgepulld finds each layer by its chain ID
#     in the manifest and config it holds and unpacks it from its store, and containerd's content
#     store of that namespace gets the manifest and config only;
#   - a CRI-style pull into the edgepull snapshotter skips every layer too (they exist), and the
#     registry saw exactly one GET per blob;
#   - `ctr run --snapshotter edgepull` runs a command in the image;
#   - the same image pulled into containerd's own overlayfs snapshotter (another namespace) gives
#     the same root tree: paths, types, modes, owners, link targets, file sizes, link counts,
#     mtimes, contents and xattrs, and the same whiteout device and opaque xattr in the layer.
# shellcheck source=../lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source=../lib/mkimage.sh
. "$EP_SOURCE_DIR/tests/lib/mkimage.sh"

ep_init test_snapshotter_remote 500
ep_require_root
ep_require_cmd containerd ctr runc docker-registry skopeo curl jq python3
[ -x /bin/busybox ] || {
  echo "test_snapshotter_remote needs busybox-static" >&2
  exit 77
}
ep_conformance_dir
CRI_PULL=$CONF_BIN/cri-pull
NOLABEL_PULL=$(ep_build_go_tool nolabel-pull)
if ! ep__overlay_works "$EP_TMP"; then
  echo "test_snapshotter_remote needs overlayfs mounts" >&2
  exit 77
fi

REF=docker.io/library/snapdemo:1

# mk_layer DIR LAYOUT: tar DIR (deterministic, with user xattrs) into a gzip layer of LAYOUT;
# appends to LAYERS (descriptors) and DIFFS (diff ids).
mk_layer() {
  local dir=$1 layout=$2 tarf=$1.tar
  chmod 755 "$dir"
  tar --sort=name --mtime=@1000000 --numeric-owner --format=posix --xattrs \
    --xattrs-include='user.*' --pax-option=delete=atime,delete=ctime -C "$dir" -cf "$tarf" .
  DIFFS+="${DIFFS:+,}\"sha256:$(sha256sum "$tarf" | cut -d' ' -f1)\""
  gzip -n -c "$tarf" >"$tarf.gz"
  ep__blob_put "$layout" "$tarf.gz"
  LAYERS+="${LAYERS:+,}{\"mediaType\":\"$EP_MT_GZIP\",\"digest\":\"$EP__DIGEST\",\"size\":$EP__SIZE}"
}

# mk_image LAYOUT: the three layers, config, manifest, tagged 1.
mk_image() {
  local layout=$1 w=$EP_TMP/img a
  LAYERS='' DIFFS=''
  ep__layout_init "$layout"
  mkdir -p "$w/l1/bin" "$w/l1/opq" "$w/l1/etc/data" "$w/l2/opq" "$w/l2/etc/data" "$w/l3/srv"
  cp /bin/busybox "$w/l1/bin/busybox"
  for a in sh cat ls; do ln -s busybox "$w/l1/bin/$a"; done
  echo gone >"$w/l1/gone.txt"
  echo x >"$w/l1/opq/x"
  echo y >"$w/l1/opq/y"
  echo a >"$w/l1/etc/data/a.txt"
  echo b >"$w/l1/etc/data/b.txt"
  echo "hello from layer 2" >"$w/l2/hello.txt"
  : >"$w/l2/.wh.gone.txt"
  : >"$w/l2/opq/.wh..wh..opq"
  echo z >"$w/l2/opq/z"
  : >"$w/l2/etc/data/.wh.b.txt"
  ln -s ../hello.txt "$w/l2/etc/link"
  echo "setuid" >"$w/l3/srv/suid"
  chmod 4755 "$w/l3/srv/suid"
  echo "linked" >"$w/l3/srv/hl1"
  ln "$w/l3/srv/hl1" "$w/l3/srv/hl2"
  echo "attr" >"$w/l3/srv/attr"
  python3 -c 'import os, sys; os.setxattr(sys.argv[1], "user.edgepull", b"snap")' "$w/l3/srv/attr"
  chown 1000:1001 "$w/l3/srv/hl1"
  chmod 0640 "$w/l3/srv/hl1"
  for a in l1 l2 l3; do mk_layer "$w/$a" "$layout"; done
  printf '{"architecture":"%s","os":"linux","config":{"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":[%s]}}' \
    "$(dpkg --print-architecture)" "$DIFFS" >"$w/config.json"
  ep__blob_put "$layout" "$w/config.json"
  printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"%s","digest":"%s","size":%s},"layers":[%s]}' \
    "$EP_MT_MANIFEST" "$EP_MT_CONFIG" "$EP__DIGEST" "$EP__SIZE" "$LAYERS" >"$w/manifest.json"
  ep__blob_put "$layout" "$w/manifest.json"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"%s","digest":"%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"1"}}]}' \
    "$EP_MT_MANIFEST" "$EP__DIGEST" "$EP__SIZE" >"$layout/index.json"
}

# start_containerd: a private containerd (root, state, socket in the temp dir, CRI off) with
# edgepulld's socket as proxy snapshotter "edgepull" and its own overlayfs.
start_containerd() {
  local dir
  dir=$(ep_tmpdir containerd)
  CTR_ROOT=$dir/root CTR_ADDRESS=$dir/c.sock CTR_LOG=$dir/containerd.log
  mkdir -p "$CTR_ROOT" "$dir/state" "$dir/opt"
  cat >"$dir/config.toml" <<EOT
version = 2
root = "$CTR_ROOT"
state = "$dir/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$CTR_ADDRESS"
[ttrpc]
  address = "$CTR_ADDRESS.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/opt"
[plugins."io.containerd.metadata.v1.bolt"]
  content_sharing_policy = "isolated"
[proxy_plugins.edgepull]
  type = "snapshot"
  address = "$SNAP_SOCK"
EOT
  containerd --config "$dir/config.toml" >"$CTR_LOG" 2>&1 &
  CTR_PID=$!
  export CTR_ROOT CTR_ADDRESS CTR_PID
  ep_cleanup_push "ep_stop_pid $CTR_PID 10"
  EP_LOGS+=("$CTR_LOG")
  ep_wait_containerd "$CTR_ADDRESS" "$CTR_PID" "$CTR_LOG"
  ep_assert_match 'ok' "$(ep_ctr plugins ls | awk '$2 == "edgepull" { print $NF }')" \
    "containerd loaded the edgepull proxy snapshotter"
}

# cri_pull NAMESPACE SNAPSHOTTER: prints cri-pull's "layers:" line.
cri_pull() {
  local out=$EP_TMP/cri-pull-$1.log
  EP_LOGS+=("$out")
  ep_timeout 300 "$CRI_PULL" -address "$CTR_ADDRESS" -namespace "$1" -snapshotter "$2" \
    -hosts-dir "$HOSTS" -timeout 4m "$REF" >"$out" 2>&1 || echo "cri-pull failed: $(tail -n 3 "$out")" >&2
  grep -m1 '^layers:' "$out" || true
}

# mount_view NAMESPACE SNAPSHOTTER DIR: a read-only view of the image's top snapshot at DIR.
mount_view() {
  local ns=$1 sn=$2 dir=$3 top cmd
  top=$(ep_ctr -n "$ns" snapshots --snapshotter "$sn" ls |
    awk 'NR > 1 { key[$1] = 1; if ($2 != "") par[$2] = 1 } END { for (k in key) if (!(k in par)) print k }')
  [ -n "$top" ] || ep_die "no snapshot in $ns/$sn"
  mkdir -p "$dir"
  # The mount command comes from the View call itself (-t), not from a second
  # `mounts` call: `ctr run --rm` just made containerd schedule a GC, which
  # may collect the unreferenced view before a second call looks it up
  # ("snapshot view-edgepull does not exist"). The mount holds the parents.
  cmd=$(ep_ctr -n "$ns" snapshots --snapshotter "$sn" view -t "$dir" "view-$sn" "$top")
  ep_cleanup_push "umount -l '$dir'"
  eval "$cmd"
}

# tree DIR: every entry with type, mode, owner, link target; files with size, links, mtime,
# sha256 and user xattrs.
tree() {
  (cd "$1" && find . -xdev -printf '%p %y %m %U %G %l\n' | sort)
  (cd "$1" && find . -xdev -type f -printf '%p %s %n %T@\n' | sort)
  (cd "$1" && find . -xdev -type f -exec sha256sum {} + | sort -k2)
  python3 - "$1" <<'PY'
import os, sys
root = sys.argv[1]
for d, dirs, files in sorted(os.walk(root)):
    for n in sorted(dirs + files):
        p = os.path.join(d, n)
        for a in sorted(os.listxattr(p, follow_symlinks=False)):
            print(os.path.relpath(p, root), a, os.getxattr(p, a, follow_symlinks=False))
PY
}

# layer_marks ROOT: the whiteout device and opaque xattr as stored in a snapshotter's layers.
layer_marks() {
  python3 - "$1" <<'PY'
import os, stat, sys
for d, dirs, files in os.walk(sys.argv[1]):
    for n in files:
        st = os.lstat(os.path.join(d, n))
        if n == "gone.txt" and stat.S_ISCHR(st.st_mode):
            print("whiteout gone.txt", os.major(st.st_rdev), os.minor(st.st_rdev))
        if n == "b.txt" and stat.S_ISCHR(st.st_mode):
            print("whiteout b.txt", os.major(st.st_rdev), os.minor(st.st_rdev))
    if os.path.basename(d) == "opq":
        try:
            print("opaque opq", os.getxattr(d, "trusted.overlay.opaque"))
        except OSError:
            pass
PY
}

# --- the registry, the image, edgepulld, containerd
ep_start_registry
mk_image "$EP_TMP/layout"
ep_push_image "$EP_TMP/layout" 1 library/snapdemo
ep_assert_eq 3 "${#EP_PUSHED_LAYERS[@]}" "image has three layers"

SNAP_SOCK=$EP_TMP/snap.sock
ep_start_edgepulld --registry "docker.io=$REGISTRY_URL" --snapshotter-socket "$SNAP_SOCK"
ep_assert_eq 600 "$(stat -c %a "$SNAP_SOCK")" "snapshotter socket mode 0600"
start_containerd
HOSTS=$(ep_hosts_dir docker.io "$REGISTRY_URL" "$EP_URL")

# --- containerd's own pull into overlayfs, through edgepulld as mirror
line=$(cri_pull overlay overlayfs)
ep_log "overlayfs: $line"
ep_assert_match '^layers: 3, fetched: 3, skipped: 0' "$line" \
  "overlayfs namespace: containerd fetched the layers (through edgepulld)"

# --- a pull without CRI labels: edgepulld finds the layers by chain ID in its store
out=$EP_TMP/nolabel-pull.log
EP_LOGS+=("$out")
ep_timeout 300 "$NOLABEL_PULL" -address "$CTR_ADDRESS" -namespace plain -snapshotter edgepull \
  -hosts-dir "$HOSTS" "$REF" >"$out" 2>&1 || ep_fail "nolabel-pull failed: $(tail -n 3 "$out")"
line=$(grep -m1 '^layers:' "$out" || true)
ep_log "no CRI labels: $line"
ep_assert_match '^layers: 3, fetched: 0, skipped: 3, unpacked in edgepull: true' "$line" \
  "no CRI labels: containerd skipped every layer, edgepulld found them by chain ID"
plain_content=$(ep_ctr -n plain content ls -q)
ep_assert_eq 2 "$(grep -c . <<<"$plain_content")" "no CRI labels: containerd got manifest and config only"
ep_assert_match 'remote snapshot edgepull/remote/.*from docker.io/library/snapdemo' \
  "$(cat "$EP_LOG")" "edgepulld unpacked the layers it found by chain ID"

# --- the remote path with CRI labels: containerd skips every layer (they exist)
line=$(cri_pull k8s.io edgepull)
ep_log "edgepull: $line"
ep_assert_match '^layers: 3, fetched: 0, skipped: 3, unpacked in edgepull: true' "$line" \
  "containerd skipped every layer: edgepulld fetched and unpacked them"
for b in "${EP_PUSHED_BLOBS[@]}"; do
  ep_assert_eq 1 "$(ep_count_blob_gets "$b")" "registry: one GET for $b"
done
# the snapshotter's figures in GET /metrics (docs/metrics.md)
prom=$EP_TMP/metrics.prom
curl -fsS --max-time 10 -o "$prom" "$EP_URL/metrics" || ep_fail "GET /metrics failed"
ep_assert_eq 3 "$(awk '$1 == "edgepull_unpack_duration_seconds_count" { print $2 }' "$prom")" \
  "/metrics: three remote unpacks"
ep_assert "/metrics: containerd's Prepare calls are timed" test \
  "$(awk '$1 == "edgepull_snapshot_duration_seconds_count{op=\"prepare\"}" { print $2 }' "$prom")" -ge 3
if command -v promtool >/dev/null; then
  ep_assert "/metrics passes promtool check metrics" promtool check metrics <"$prom"
fi

# the disk GC sees the three layers as unpacked (found by chain ID: the first pull into edgepull
# had no CRI labels), so under a quota they would go first (docs/operations.md); a dry run
# removes nothing
layer_bytes=0
for d in "${EP_PUSHED_LAYERS[@]}"; do
  layer_bytes=$((layer_bytes + $(stat -c %s "$(ep_store_blob "$d")")))
done
gc_json=$(ep_edgepullctl --endpoint "127.0.0.1:$EP_PORT" gc --dry-run --json) ||
  ep_fail "edgepullctl gc --dry-run failed"
ep_assert_eq "$layer_bytes" "$(jq .unpacked_bytes <<<"$gc_json")" \
  "gc: the three layers count as unpacked ($layer_bytes bytes)"

# --- ctr run with the edgepull snapshotter
ep_cleanup_push "ep_ctr -n k8s.io tasks kill -s SIGKILL snaprun; sleep 1; ep_ctr -n k8s.io tasks rm -f snaprun; ep_ctr -n k8s.io containers rm snaprun"
out=$(ep_ctr -n k8s.io run --rm --snapshotter edgepull "$REF" snaprun \
  /bin/sh -c 'cat /hello.txt /etc/link; ls /opq; ls /gone.txt /etc/data/b.txt 2>&1' 2>&1 || true)
ep_assert_eq "hello from layer 2
hello from layer 2
z
ls: /gone.txt: No such file or directory
ls: /etc/data/b.txt: No such file or directory" "$out" "ctr run --snapshotter edgepull ran in the image"

# --- the same tree as containerd's overlayfs
mount_view k8s.io edgepull "$EP_TMP/m-edgepull"
mount_view overlay overlayfs "$EP_TMP/m-overlayfs"
tree "$EP_TMP/m-edgepull" >"$EP_TMP/tree-edgepull.txt"
tree "$EP_TMP/m-overlayfs" >"$EP_TMP/tree-overlayfs.txt"
ep_assert_ne 0 "$(grep -c ' user.edgepull ' "$EP_TMP/tree-overlayfs.txt" || true)" "the reference tree has the xattr"
ep_assert "root tree equals containerd's overlayfs (diff $EP_TMP/tree-*.txt)" \
  diff -u "$EP_TMP/tree-overlayfs.txt" "$EP_TMP/tree-edgepull.txt"
marks=$(layer_marks "$EP_STATE/snapshots/snapshots" | sort)
ep_assert_eq "opaque opq b'y'
whiteout b.txt 0 0
whiteout gone.txt 0 0" "$marks" "edgepull's layers hold overlay whiteouts and the opaque xattr"
ep_assert_eq "$(layer_marks "$CTR_ROOT/io.containerd.snapshotter.v1.overlayfs/snapshots" | sort)" \
  "$marks" "the same marks as containerd's overlayfs layers"
umount "$EP_TMP/m-edgepull" "$EP_TMP/m-overlayfs"

ep_stop_edgepulld
ep_assert_match 'remote unpacked 3, existed [1-9][0-9]*, joined [0-9]+, unknown 0, fallbacks 0' \
  "$(grep -o 'remote unpacked.*' "$EP_LOG" || true)" "edgepulld unpacked each layer once, no fallback"
ep_finish
