# shellcheck shell=bash
# Part of the integration harness, sourced by common.sh (never on its own):
# the services a test starts around edgepulld: docker-registry, containerd,
# dockerd, ctr.

# --- docker-registry (the upstream) -----------------------------------------

# ep_start_registry: CNCF distribution (behind the emulated uplink after
# ep_uplink_create, else on loopback of the test's namespace) with filesystem storage in the temp dir
# and its access log (combined format: "GET /v2/... HTTP/1.1" status bytes
# "referer" "user-agent") in REGISTRY_LOG.
ep_start_registry() {
  ep_require_cmd docker-registry
  local dir
  dir=$(ep_tmpdir registry)
  REGISTRY_ROOT=$dir/storage
  REGISTRY_PORT=$(ep_free_port)
  REGISTRY_HOST=${EP_UPLINK_ADDR:-127.0.0.1}:$REGISTRY_PORT
  REGISTRY_URL=http://$REGISTRY_HOST
  REGISTRY_LOG=$dir/registry.log
  REGISTRY_CONFIG=$dir/config.yml
  mkdir -p "$REGISTRY_ROOT"
  cat >"$REGISTRY_CONFIG" <<EOF
version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $REGISTRY_ROOT
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: $REGISTRY_HOST
  secret: edgepull-test-secret
health:
  storagedriver:
    enabled: false
EOF
  export REGISTRY_ROOT REGISTRY_PORT REGISTRY_HOST REGISTRY_URL REGISTRY_LOG REGISTRY_CONFIG
  ep__registry_spawn
}

ep__registry_spawn() {
  local unset=() v
  # distribution reads REGISTRY_* variables as config overrides: hide ours.
  for v in $(compgen -e); do
    case $v in REGISTRY_*) unset+=(-u "$v") ;; esac
  done
  local nsx=("${EP_NSX[@]}")
  [ -z "${EP_UPLINK_NS:-}" ] || nsx=(ip netns exec "$EP_UPLINK_NS")
  "${nsx[@]}" env "${unset[@]}" docker-registry serve "$REGISTRY_CONFIG" >>"$REGISTRY_LOG" 2>&1 &
  REGISTRY_PID=$!
  export REGISTRY_PID
  ep_cleanup_push "ep_stop_pid $REGISTRY_PID 5"
  EP_LOGS+=("$REGISTRY_LOG")
  ep_wait_http "$REGISTRY_URL/v2/" 30 "$REGISTRY_PID" ||
    ep_die "docker-registry did not start (log: $REGISTRY_LOG)"
  ep_log "registry at $REGISTRY_URL (pid $REGISTRY_PID)"
}

ep_stop_registry() {
  ep_stop_pid "$REGISTRY_PID" 10 || true
}

# Restart on the same port and storage (after ep_stop_registry).
ep_restart_registry() {
  ep__registry_spawn
}

# Access-log lines of requests for one blob, by method.
ep__registry_blob_lines() { # METHOD DIGEST
  grep -F "\"$1 /v2/" "$REGISTRY_LOG" | grep -F "/blobs/$2 HTTP/" || true
}

# ep_count_blob_gets DIGEST: GET requests the registry got for that blob.
ep_count_blob_gets() {
  ep__registry_blob_lines GET "$1" | wc -l
}

# ep_count_blob_range_gets DIGEST: those answered 206 (a Range request).
ep_count_blob_range_gets() {
  ep__registry_blob_lines GET "$1" | grep -cE '" 206 [0-9]+ ' || true
}

# Total bytes the registry sent in GET responses to blobs since log line N.
ep_registry_blob_bytes() { # [FROM_LINE]
  tail -n +"${1:-1}" "$REGISTRY_LOG" |
    { grep -E '"GET /v2/[^ ]+/blobs/[^ ]+ HTTP/[0-9.]+" 20[06] ' || true; } |
    sed -E 's/.*" 20[06] ([0-9]+) .*/\1/' | awk '{ s += $1 } END { print s + 0 }'
}

# Manifest digest the registry reports for REPO:REF (any manifest type).
ep_registry_digest() { # REPO REF
  ep_curl -fI \
    -H 'Accept: application/vnd.oci.image.index.v1+json' \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    -H 'Accept: application/vnd.docker.distribution.manifest.list.v2+json' \
    -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "$REGISTRY_URL/v2/$1/manifests/$2" |
    tr -d '\r' | awk -F': ' 'tolower($1) == "docker-content-digest" { print $2 }'
}

# Every blob of REPO:REF, all platforms: lines "config DIGEST" and "layer DIGEST".
ep_registry_blobs() { # REPO REF
  local m d
  m=$(ep_curl -f \
    -H 'Accept: application/vnd.oci.image.index.v1+json' \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    -H 'Accept: application/vnd.docker.distribution.manifest.list.v2+json' \
    -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "$REGISTRY_URL/v2/$1/manifests/$2")
  if jq -e '.manifests' <<<"$m" >/dev/null; then
    for d in $(jq -r '.manifests[].digest' <<<"$m"); do
      ep_registry_blobs "$1" "$d"
    done
  else
    jq -r '"config " + .config.digest, "layer " + .layers[].digest' <<<"$m"
  fi
}

# Path of a blob's data file inside the registry's storage.
ep_registry_blob_path() { # DIGEST
  local hex=${1#sha256:}
  echo "$REGISTRY_ROOT/docker/registry/v2/blobs/sha256/${hex:0:2}/$hex/data"
}

# --- containerd --------------------------------------------------------------

# ep_start_containerd: a private containerd (no CRI) with root, state and
# socket in the temp dir. Exports CTR_ADDRESS, CTR_ROOT, CTR_PID, CTR_LOG,
# CTR_SNAPSHOTTER (overlayfs when the kernel lets us mount it, else native).
# With EP_CTRD_SNAP_SOCK set, edgepulld's snapshotter socket there is the
# proxy snapshotter "edgepull" (the socket may appear after containerd). With EP_CTRD_DIR set,
# root, state and socket are there instead (a benchmark's disk).
ep_start_containerd() {
  local dir=${EP_CTRD_DIR:-}
  [ -n "$dir" ] || dir=$(ep_tmpdir containerd)
  mkdir -p "$dir"
  ep_containerd_spawn "$dir"
}

# ep_containerd_spawn DIR: ep_start_containerd's containerd with root, state
# and socket in DIR (an empty directory; short, since the socket's path must
# fit a sockaddr_un), in the namespace of EP_NSX.
ep_containerd_spawn() {
  ep_require_cmd containerd ctr
  local dir=$1
  CTR_ROOT=$dir/root
  CTR_ADDRESS=$dir/c.sock
  CTR_LOG=$dir/containerd.log
  CTR_SNAPSHOTTER=native
  if ep__overlay_works "$dir"; then
    CTR_SNAPSHOTTER=overlayfs
  fi
  mkdir -p "$CTR_ROOT" "$dir/state" "$dir/opt"
  cat >"$dir/config.toml" <<EOF
version = 2
root = "$CTR_ROOT"
state = "$dir/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing"]

[grpc]
  address = "$CTR_ADDRESS"

[ttrpc]
  address = "$CTR_ADDRESS.ttrpc"

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/opt"

# Each namespace fetches its own copy: with the default "shared" policy a
# second namespace would skip the download of blobs another one already has.
[plugins."io.containerd.metadata.v1.bolt"]
  content_sharing_policy = "isolated"
EOF
  if [ -n "${EP_CTRD_SNAP_SOCK:-}" ]; then
    printf '\n[proxy_plugins.edgepull]\n  type = "snapshot"\n  address = "%s"\n' \
      "$EP_CTRD_SNAP_SOCK" >>"$dir/config.toml"
  fi
  "${EP_NSX[@]}" containerd --config "$dir/config.toml" >"$CTR_LOG" 2>&1 &
  CTR_PID=$!
  export CTR_ROOT CTR_ADDRESS CTR_LOG CTR_PID CTR_SNAPSHOTTER
  ep_cleanup_push "ep_stop_pid $CTR_PID 10"
  EP_LOGS+=("$CTR_LOG")
  EP_LOGS+=("$EP_TMP/ctr.log")
  ep_wait_containerd "$CTR_ADDRESS" "$CTR_PID" "$CTR_LOG"
  ep_log "containerd at $CTR_ADDRESS (pid $CTR_PID, snapshotter $CTR_SNAPSHOTTER)"
}

# ep_wait_containerd ADDRESS PID LOG: until containerd answers on ADDRESS
# (30 s); dies when PID exits first.
ep_wait_containerd() {
  local deadline=$((SECONDS + 30))
  until ctr --address "$1" --timeout 2s version >/dev/null 2>&1; do
    kill -0 "$2" 2>/dev/null || ep_die "containerd died at start (log: $3)"
    [ "$SECONDS" -lt "$deadline" ] || ep_die "containerd not ready in 30s (log: $3)"
    sleep 0.2
  done
}

# ep_start_dockerd [ARGS...]: Debian's dockerd with its own data and exec
# roots and socket in the temp dir (no iptables, no bridge). Exports
# DOCKER_SOCK, DOCKER_PID.
ep_start_dockerd() {
  ep_require_cmd dockerd
  local dk
  dk=$(ep_tmpdir docker)
  DOCKER_SOCK=$dk/docker.sock
  dockerd "$@" --data-root "$dk/root" --exec-root "$dk/exec" -H "unix://$DOCKER_SOCK" \
    --pidfile "$dk/docker.pid" --iptables=false --ip6tables=false --bridge=none \
    >"$EP_TMP/dockerd.log" 2>&1 &
  DOCKER_PID=$!
  export DOCKER_SOCK DOCKER_PID
  ep_cleanup_push "ep_stop_pid $DOCKER_PID 20"
  EP_LOGS+=("$EP_TMP/dockerd.log")
  local deadline=$((SECONDS + 40))
  until curl -sf --unix-socket "$DOCKER_SOCK" http://docker/version >/dev/null 2>&1; do
    kill -0 "$DOCKER_PID" 2>/dev/null || ep_die "dockerd exited (log: $EP_TMP/dockerd.log)"
    [ "$SECONDS" -lt "$deadline" ] || ep_die "dockerd not ready in 40 s"
    sleep 0.5
  done
  ep_log "dockerd at $DOCKER_SOCK (pid $DOCKER_PID)"
}

ep__overlay_works() { # DIR
  local d=$1/ovl rc=1
  mkdir -p "$d/l" "$d/u" "$d/w" "$d/m"
  if mount -t overlay overlay -o "lowerdir=$d/l,upperdir=$d/u,workdir=$d/w" "$d/m" 2>/dev/null; then
    umount "$d/m" && rc=0
  fi
  rm -rf "$d"
  return "$rc"
}

# ep_ctr ARGS...: ctr against the test's containerd, bounded to 180 s. ctr
# itself talks to the registries (containerd only stores), so it runs in the
# test's namespace too.
ep_ctr() {
  ep_timeout 180 "${EP_NSX[@]}" ctr --address "$CTR_ADDRESS" "$@"
}

# ep_hosts_dir UPSTREAM_HOST UPSTREAM_URL [MIRROR_URL]: print a hosts dir for
# `ctr images pull --hosts-dir` with the upstream as server and the mirror (if
# any) tried first for pull and resolve.
ep_hosts_dir() {
  local dir
  dir=$(ep_tmpdir hosts)
  mkdir -p "$dir/$1"
  {
    printf 'server = "%s"\n' "$2"
    # containerd 1.6 rejects a hosts.toml without a [host] table.
    printf '\n[host."%s"]\n  capabilities = ["pull", "resolve"]\n' "${3:-$2}"
  } >"$dir/$1/hosts.toml"
  echo "$dir"
}

# ep_ctr_pull NAMESPACE HOSTS_DIR REF [EXTRA_ARGS...]: pull (and unpack);
# ctr's progress output goes to $EP_TMP/ctr.log.
ep_ctr_pull() {
  local ns=$1 hosts=$2 ref=$3 rc=0
  shift 3
  echo "== ctr -n $ns images pull $* $ref" >>"$EP_TMP/ctr.log"
  ep_ctr -n "$ns" images pull --hosts-dir "$hosts" --snapshotter "$CTR_SNAPSHOTTER" \
    "$@" "$ref" >>"$EP_TMP/ctr.log" 2>&1 || rc=$?
  echo "== exit $rc" >>"$EP_TMP/ctr.log"
  return "$rc"
}

# Digest containerd recorded for REF in NAMESPACE (empty when absent).
ep_ctr_image_digest() { # NAMESPACE REF
  ep_ctr -n "$1" images ls | awk -v r="$2" '$1 == r { print $3 }'
}

# ep_conformance_dir: sets CONF to the containerd-conformance tool (shared/
# beside the checkout, or EP_CONFORMANCE_DIR) and CONF_BIN to its built
# binaries (cri-pull, ...), building them first; or exits 77 saying it is
# missing.
ep_conformance_dir() {
  local d
  CONF=
  for d in "${EP_CONFORMANCE_DIR:-}" "$EP_SOURCE_DIR/../shared/tools/containerd-conformance" \
    /work/shared/tools/containerd-conformance; do
    if [ -n "$d" ] && [ -x "$d/run-suite" ]; then
      CONF=$d
      CONF_BIN=${CONFORMANCE_BIN:-${TMPDIR:-/tmp}/containerd-conformance-bin}
      ep_conformance_build
      return 0
    fi
  done
  echo "$(basename "$0" .sh) needs the containerd-conformance tool (EP_CONFORMANCE_DIR)" >&2
  exit 77
}

# ep_conformance_build: the tool's binaries, built once under a lock. The
# tool builds itself on first use into $CONFORMANCE_BIN, and two of its
# builds in one directory break each other (each starts by deleting the
# sources the other compiles): on a fresh machine ctest -j2 ran
# test_snapshot_conformance and test_snapshot_e2e side by side, and both
# failed without a word from the suite. The first test builds, the others
# wait on the lock and then find the build up to date.
ep_conformance_build() {
  mkdir -p "$CONF_BIN" || ep_die "cannot create $CONF_BIN"
  ep_timeout 450 flock "$CONF_BIN/.edgepull-build.lock" "$CONF/build" "$CONF_BIN" \
    >"$EP_TMP/conformance-build.log" 2>&1 ||
    ep_die "containerd-conformance build failed (log: $EP_TMP/conformance-build.log)"
}

# ep_build_go_tool NAME: builds tests/tools/NAME (nolabel-pull: a client.Pull with the unpacker
# and no CRI labels; snap-client: Prepare/List/Cleanup straight to a snapshotter socket) into
# $CONF_BIN beside cri-pull, with the conformance build's Go cache, and prints its path.
# Call after ep_conformance_dir (whose build installs golang-go and containerd's Go sources).
ep_build_go_tool() {
  local bin=$CONF_BIN
  (cd "$EP_SOURCE_DIR/tests/tools/$1" &&
    GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS='' GOPROXY=off CGO_ENABLED=0 \
      GOCACHE=$bin/.gocache ep_timeout 300 go build -trimpath -o "$bin/$1.$$" . &&
    mv -f "$bin/$1.$$" "$bin/$1") >"$EP_TMP/$1-build.log" 2>&1 ||
    ep_die "building $1 failed (log: $EP_TMP/$1-build.log)"
  echo "$bin/$1"
}
