#!/usr/bin/env bash
# `edgepullctl setup` against real configuration files that already hold
# other settings, then the real runtimes pull through edgepulld:
# - containerd: `containerd config default` plus comments and a CRLF-free
#   edit elsewhere; setup; `containerd config dump` accepts the result and
#   shows config_path; containerd starts with it and `ctr images pull
#   --hosts-dir` (the directory setup wrote) gets the image from edgepulld;
#   --snapshotter adds the proxy snapshotter (config dump again); --undo
#   restores the file byte for byte and removes certs.d.
# - Docker: daemon.json with other keys and a mirror of its own; setup keeps
#   them; dockerd starts with it, `docker info` lists the mirror and a
#   Docker Hub pull is served by edgepulld (edgepulld maps docker.io to the
#   test registry); undo + cmp.
# - podman/skopeo: the drop-in in a temp /etc/containers (bind-mounted over
#   the real one in a private mount namespace); skopeo and podman pull
#   docker.io/... and reg.example/... (names that only edgepulld can serve);
#   undo removes the drop-in.
# Each runtime: a second setup changes nothing; --dry-run writes nothing.
# shellcheck source=../lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source=../lib/mkimage.sh
. "$EP_SOURCE_DIR/tests/lib/mkimage.sh"

ep_init test_setup 500
ep_require_root
ep_require_cmd docker-registry containerd ctr skopeo jq curl dockerd unshare
ctl=$EP_BUILD_DIR/ctl/edgepullctl

ep_start_registry
layout=$(ep_tmpdir layout)
ep_mkimage "$layout" v1 amd64 gzip:1M gzip:256K
ep_push_image "$layout" v1 library/app --format v2s2
app_blobs=("${EP_PUSHED_BLOBS[@]}")
ep_push_image "$layout" v1 edge/app --format v2s2
ep_start_edgepulld --registry "$REGISTRY_HOST=$REGISTRY_URL" \
  --registry "docker.io=$REGISTRY_URL" --registry "reg.example=$REGISTRY_URL"
mirror=127.0.0.1:$EP_PORT

# setup_twice NAME ARGS...: dry run (nothing written), setup, setup again
# (nothing changed). Output in $EP_TMP/NAME.*.out.
setup_twice() {
  local name=$1 before after
  shift
  before=$(find "$root" -type f -exec sha256sum {} + | sort)
  ep_assert "$name: --dry-run succeeds" \
    sh -c "'$ctl' setup $* --dry-run --mirror $mirror --root '$root' >'$EP_TMP/$name.dry.out' 2>&1"
  after=$(find "$root" -type f -exec sha256sum {} + | sort)
  ep_assert_eq "$before" "$after" "$name: --dry-run writes nothing"
  ep_assert "$name: setup succeeds" \
    sh -c "'$ctl' setup $* --mirror $mirror --root '$root' >'$EP_TMP/$name.1.out' 2>&1"
  cat "$EP_TMP/$name.1.out"
  ep_assert "$name: a second setup succeeds" \
    sh -c "'$ctl' setup $* --mirror $mirror --root '$root' >'$EP_TMP/$name.2.out' 2>&1"
  ep_assert_match 'nothing changed' "$(cat "$EP_TMP/$name.2.out")" "$name: the second run changes nothing"
}

# --- containerd --------------------------------------------------------------
root=$(ep_tmpdir root-containerd)
cdir=$(ep_tmpdir containerd)
mkdir -p "$root/etc/containerd" "$cdir/root" "$cdir/state"
conf=$root/etc/containerd/config.toml
{
  echo "# A node's containerd configuration: café ☕ (kept as it is)"
  containerd config default |
    sed -e "s|^root = .*|root = \"$cdir/root\"|" -e "s|^state = .*|state = \"$cdir/state\"|" \
      -e "s|^  address = \"/run/containerd/containerd.sock\"|  address = \"$cdir/c.sock\"|" \
      -e 's|^  level = ""|  level = "info"  # operators like logs|' \
      -e "s|^    path = \"/opt/containerd\"|    path = \"$cdir/opt\"|"
} >"$conf"
chmod 0600 "$conf"
cp -p "$conf" "$EP_TMP/config.toml.orig"
setup_twice containerd containerd
ep_assert_match 'hosts-dir' "$(cat "$EP_TMP/containerd.1.out")" "setup tells that ctr needs --hosts-dir"
ep_assert_match 'systemctl restart containerd' "$(cat "$EP_TMP/containerd.1.out")" \
  "setup says what to restart"
ep_assert_eq 600 "$(stat -c %a "$conf")" "config.toml keeps its mode"
diff "$EP_TMP/config.toml.orig" "$conf" >"$EP_TMP/containerd.diff" || true
ep_assert_eq 2 "$(grep -c '^[<>]' "$EP_TMP/containerd.diff")" "only the config_path line changed"
dump=$(containerd --config "$conf" config dump 2>&1)
ep_assert_match 'config_path = "/etc/containerd/certs.d"' "$dump" "containerd reads config_path"
ep_assert_match "address = \"$cdir/c.sock\"" "$dump" "containerd keeps the other settings"
certs=$root/etc/containerd/certs.d
ep_assert_match "http://$mirror" "$(cat "$certs/_default/hosts.toml")" "hosts.toml names edgepulld"

containerd --config "$conf" >"$EP_TMP/containerd.log" 2>&1 &
cpid=$!
ep_cleanup_push "ep_stop_pid $cpid 10"
EP_LOGS+=("$EP_TMP/containerd.log")
ep_wait_containerd "$cdir/c.sock" "$cpid" "$EP_TMP/containerd.log"
ep_pass "containerd starts with the edited config.toml"
ref=$REGISTRY_HOST/edge/app:v1
ep_assert "ctr pulls $ref with --hosts-dir $certs" \
  ep_timeout 120 ctr --address "$cdir/c.sock" -n setup images pull --hosts-dir "$certs" "$ref"
ep_assert_stored "${app_blobs[@]}"
ep_assert_eq 0 "$(grep -cE '^[^ ]+ - - \[.*"containerd/' "$REGISTRY_LOG" || true)" \
  "containerd never went to the registry itself"
ep_stop_pid "$cpid" 10 || true

ep_assert "containerd --snapshotter succeeds" \
  sh -c "'$ctl' setup containerd --snapshotter --mirror $mirror --root '$root' >'$EP_TMP/snap.out' 2>&1"
dump=$(containerd --config "$conf" config dump 2>&1)
ep_assert_match 'snapshotter = "edgepull"' "$dump" "containerd reads the CRI snapshotter"
ep_assert_match 'address = "/run/edgepull/snapshotter.sock"' "$dump" "containerd reads the proxy plugin"
ep_assert_match 'disable_snapshot_annotations = false' "$dump" "snapshot annotations enabled"
containerd --config "$conf" >"$EP_TMP/containerd-snap.log" 2>&1 &
cpid=$!
ep_cleanup_push "ep_stop_pid $cpid 10"
EP_LOGS+=("$EP_TMP/containerd-snap.log")
ep_wait_containerd "$cdir/c.sock" "$cpid" "$EP_TMP/containerd-snap.log"
ep_assert_match 'io.containerd.snapshotter.v1 +edgepull ' \
  "$(ctr --address "$cdir/c.sock" plugins ls 2>&1)" "containerd registers the edgepull proxy snapshotter"
ep_stop_pid "$cpid" 10 || true
ep_assert "containerd --undo succeeds" "$ctl" setup containerd --undo --root "$root"
ep_assert "--undo restores config.toml byte for byte" cmp "$EP_TMP/config.toml.orig" "$conf"
ep_assert_eq 600 "$(stat -c %a "$conf")" "the restored config.toml keeps its mode"
ep_assert_not "--undo removes the certs.d it created" test -e "$certs"
ep_assert_eq "config.toml" "$(ls "$root/etc/containerd")" "no backup or record left behind"

# Debian 12's packaged config.toml (nested table headers, no registry table).
root=$(ep_tmpdir root-debian)
mkdir -p "$root/etc/containerd"
conf=$root/etc/containerd/config.toml
cat >"$conf" <<'EOF'
version = 2

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "/etc/cni/net.d"
  [plugins."io.containerd.internal.v1.opt"]
    path = "/var/lib/containerd/opt"
EOF
cp "$conf" "$EP_TMP/debian.orig"
ep_assert "setup --snapshotter on Debian's config.toml" \
  sh -c "'$ctl' setup containerd --snapshotter --root '$root' >'$EP_TMP/debian.out' 2>&1"
dump=$(containerd --config "$conf" config dump 2>&1)
ep_assert_match 'config_path = "/etc/containerd/certs.d"' "$dump" "Debian's file: containerd reads config_path"
ep_assert_match 'snapshotter = "edgepull"' "$dump" "Debian's file: containerd reads the snapshotter"
ep_assert_match 'bin_dir = "/usr/lib/cni"' "$dump" "Debian's file: the CNI settings stay"
ep_assert "Debian's file: --undo" "$ctl" setup containerd --undo --root "$root"
ep_assert "Debian's file: restored byte for byte" cmp "$EP_TMP/debian.orig" "$conf"

# --- Docker ------------------------------------------------------------------
root=$(ep_tmpdir root-docker)
mkdir -p "$root/etc/docker"
djson=$root/etc/docker/daemon.json
cat >"$djson" <<'EOF'
{
	"log-level": "info",
	"max-concurrent-downloads": 2,
	"registry-mirrors": ["http://127.0.0.1:9/"],
	"log-opts": {"max-size": "10m", "labels": "café"}
}
EOF
cp -p "$djson" "$EP_TMP/daemon.json.orig"
setup_twice docker docker
ep_assert_eq '["log-level","max-concurrent-downloads","registry-mirrors","log-opts"]' \
  "$(jq -c keys_unsorted "$djson")" "daemon.json keeps its keys in their order"
ep_assert_eq "[\"http://127.0.0.1:9/\",\"http://$mirror\"]" "$(jq -c '.["registry-mirrors"]' "$djson")" \
  "the existing mirror is kept, ours added once"
ep_start_dockerd --config-file "$djson"
dk=$(dirname "$DOCKER_SOCK")
ep_pass "dockerd starts with the merged daemon.json"
mirrors=$(curl -sf --unix-socket "$dk/docker.sock" http://docker/info | jq -c .RegistryConfig.Mirrors)
ep_assert_match "http://$mirror/" "$mirrors" "docker info lists edgepulld as a mirror"
log_before=$(wc -l <"$REGISTRY_LOG")
ep_timeout 120 curl -sf --unix-socket "$dk/docker.sock" -X POST \
  "http://docker/images/create?fromImage=library/app&tag=v1" >"$EP_TMP/docker-pull.json" || true
ep_assert_match '"id":"v1"|Downloaded newer image|Image is up to date' "$(cat "$EP_TMP/docker-pull.json")" \
  "docker pull of a Docker Hub name succeeds (only edgepulld can serve it)"
ep_assert "Docker has library/app:v1" \
  sh -c "curl -sf --unix-socket '$dk/docker.sock' http://docker/images/json | jq -e '.[].RepoTags[]? | select(. == \"app:v1\")' >/dev/null"
# edgepulld resolves the tag upstream (its blobs are in the store already).
asked=$(tail -n +"$((log_before + 1))" "$REGISTRY_LOG" | grep -c '/v2/library/app/manifests/v1 ' || true)
ep_assert_ne 0 "$asked" "edgepulld asked the registry for library/app:v1 on Docker's behalf"
ep_stop_pid "$DOCKER_PID" 20 || true
ep_assert "docker --undo succeeds" "$ctl" setup docker --undo --root "$root"
ep_assert "--undo restores daemon.json byte for byte" cmp "$EP_TMP/daemon.json.orig" "$djson"
ep_assert_eq "daemon.json" "$(ls "$root/etc/docker")" "no backup or record left behind"

# --- podman, skopeo ----------------------------------------------------------
root=$(ep_tmpdir root-podman)
mkdir -p "$root/etc/containers"
cp /etc/containers/policy.json "$root/etc/containers/" 2>/dev/null ||
  echo '{"default": [{"type": "insecureAcceptAnything"}]}' >"$root/etc/containers/policy.json"
cat >"$root/etc/containers/registries.conf" <<'EOF'
# An administrator's registries.conf (kept as it is)
unqualified-search-registries = ["docker.io"]

[[registry]]
prefix = "docker.io"
location = "docker.io"
EOF
cp -p "$root/etc/containers/registries.conf" "$EP_TMP/registries.conf.orig"
setup_twice podman podman --registry docker.io --registry reg.example
ep_assert_match 'docker.io reg.example' "$(cat "$EP_TMP/podman.1.out")" "setup lists the mirrored registries"
ep_assert_match 'registries.conf:5 configures docker.io' "$(cat "$EP_TMP/podman.1.out")" \
  "setup notes the entry its drop-in replaces"
ep_assert "a registry with a port is accepted (HOST_PORT, test_podman_port.sh)" \
  "$ctl" setup podman --registry "$REGISTRY_HOST" --root "$root" --dry-run
# skopeo and podman read /etc/containers/registries.conf.d; give them ours.
in_root() {
  # shellcheck disable=SC2016 # expanded by the inner sh
  HOME=$EP_TMP/home unshare -m sh -c 'mount --bind "$0/etc/containers" /etc/containers && shift && exec "$@"' \
    "$root" -- "$@"
}
mkdir -p "$EP_TMP/home"
out=$(ep_tmpdir skopeo)
ep_assert "skopeo copies docker.io/library/app:v1 through edgepulld" \
  in_root timeout -k 5 120 skopeo --tmpdir "$EP_TMP" copy --quiet docker://docker.io/library/app:v1 "dir:$out/hub"
ep_assert "skopeo copies reg.example/edge/app:v1 through edgepulld" \
  in_root timeout -k 5 120 skopeo --tmpdir "$EP_TMP" copy --quiet docker://reg.example/edge/app:v1 "dir:$out/ex"
if command -v podman >/dev/null 2>&1; then
  pd=$(ep_tmpdir podman)
  ep_assert "podman pulls reg.example/edge/app:v1 through edgepulld" \
    in_root timeout -k 5 120 podman --root "$pd/root" --runroot "$pd/run" --storage-driver vfs \
    pull -q reg.example/edge/app:v1
fi
ep_assert "podman --undo succeeds" "$ctl" setup podman --undo --root "$root"
ep_assert_not "--undo removes the drop-in directory it created" test -e "$root/etc/containers/registries.conf.d"
ep_assert "registries.conf untouched" cmp "$EP_TMP/registries.conf.orig" "$root/etc/containers/registries.conf"
ep_assert_not "skopeo no longer reaches reg.example" \
  in_root timeout -k 5 60 skopeo --tmpdir "$EP_TMP" copy --quiet docker://reg.example/edge/app:v1 "dir:$out/none"

ep_stop_edgepulld
ep_finish
