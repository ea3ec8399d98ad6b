# shellcheck shell=bash
# Shared harness for edgepull's integration tests (sourced, never executed).
#
# Every test starts its own services (docker-registry, containerd, edgepulld)
# on free ports inside one temp dir, and everything it starts is undone by a
# stack of cleanup commands run from an EXIT/INT/TERM trap, so a failing or
# interrupted test leaves no process, mount, namespace or file behind.
# Every external command is bounded in time (ep_timeout) and the whole test by
# a watchdog, so a hung service fails the test instead of hanging CTest.
#
# Usage in a test:
#   . "$(dirname "$0")/../lib/common.sh"
#   ep_init test_mirror_x 300
#   ep_require_root
#   ep_start_registry; ep_start_edgepulld --registry "$REGISTRY_HOST=$REGISTRY_URL"
#   ep_assert_eq "$want" "$got" "manifest digest"
#   ep_finish

set -euo pipefail
set -E # the ERR trap fires inside functions too

EP_SOURCE_DIR=${EP_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
EP_BUILD_DIR=${EP_BUILD_DIR:-$EP_SOURCE_DIR/build}
export EP_SOURCE_DIR EP_BUILD_DIR
export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:detect_leaks=1:abort_on_error=0:print_summary=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export LC_ALL=C

EP_TEST_NAME=${EP_TEST_NAME:-$(basename "$0" .sh)}
EP_PASSED=0
EP_FAILED=0
EP_CLEANUP=()
EP_LOGS=()
EP_TMP=
EP_WATCHDOG_PID=
EP_PORT_DIR=/tmp/edgepull-test-ports
EP_NETNS=${EP_NETNS:-}
EP_START_COUNT=0

# --- output and assertions ---------------------------------------------------

ep_log() {
  printf '%s [%s] %s\n' "$(date +%T)" "$EP_TEST_NAME" "$*" >&2
}

ep_pass() {
  EP_PASSED=$((EP_PASSED + 1))
  printf 'PASS: %s\n' "$*"
}

ep_fail() {
  EP_FAILED=$((EP_FAILED + 1))
  printf 'FAIL: %s\n' "$*"
}

# Harness errors: the test cannot go on.
ep_die() {
  printf 'FATAL: %s\n' "$*" >&2
  EP_FAILED=$((EP_FAILED + 1))
  exit 1
}

ep_assert_eq() { # EXPECTED GOT WHAT
  if [ "$1" = "$2" ]; then
    ep_pass "$3"
  else
    ep_fail "$3: expected '$1', got '$2'"
  fi
}

ep_assert_ne() { # UNEXPECTED GOT WHAT
  if [ "$1" != "$2" ]; then
    ep_pass "$3"
  else
    ep_fail "$3: did not expect '$2'"
  fi
}

ep_assert_match() { # REGEX GOT WHAT
  if [[ $2 =~ $1 ]]; then
    ep_pass "$3"
  else
    ep_fail "$3: '$2' does not match /$1/"
  fi
}

ep_assert() { # WHAT CMD... : passes when CMD succeeds
  local what=$1
  shift
  if "$@"; then
    ep_pass "$what"
  else
    ep_fail "$what (command failed: $*)"
  fi
}

ep_assert_not() { # WHAT CMD... : passes when CMD fails
  local what=$1
  shift
  if "$@"; then
    ep_fail "$what (command unexpectedly succeeded: $*)"
  else
    ep_pass "$what"
  fi
}

# --- lifecycle -------------------------------------------------------------

ep_cleanup_push() { # CMD (a string, eval'ed at exit, last pushed runs first)
  EP_CLEANUP+=("$1")
}

ep__dump_logs() {
  local f
  for f in "${EP_LOGS[@]}"; do
    [ -f "$f" ] || continue
    printf '\n----- last 40 lines of %s -----\n' "$f"
    tail -n 40 "$f" | cut -c1-400
  done
}

ep__cleanup() {
  local rc=$? i
  set +e +E
  trap - EXIT INT TERM ERR
  for ((i = ${#EP_CLEANUP[@]} - 1; i >= 0; i--)); do
    eval "${EP_CLEANUP[i]}" >/dev/null 2>&1
  done
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ] && [ "$EP_FAILED" -eq 0 ]; then
    EP_FAILED=1
    printf 'FAIL: %s aborted (exit %s)\n' "$EP_TEST_NAME" "$rc"
  fi
  if [ "$EP_FAILED" -gt 0 ]; then
    ep__dump_logs
  fi
  if [ -n "$EP_TMP" ] && [ -d "$EP_TMP" ]; then
    ep__umount_under "$EP_TMP"
    if [ "$EP_FAILED" -gt 0 ] && [ "${EP_KEEP:-0}" = 1 ]; then
      printf 'kept %s\n' "$EP_TMP"
    else
      rm -rf --one-file-system "$EP_TMP"
    fi
  fi
  ep__release_ports
  if [ "$rc" -eq 77 ]; then
    printf '%s: skipped\n' "$EP_TEST_NAME"
    exit 77
  fi
  printf '%s: %d passed, %d failed\n' "$EP_TEST_NAME" "$EP_PASSED" "$EP_FAILED"
  [ "$EP_FAILED" -eq 0 ] && exit 0
  exit 1
}

ep__on_err() { # LINE CMD (the main shell only: subshells fail on purpose in tests)
  [ "$BASHPID" = "$$" ] || return 0
  printf 'ERROR: %s:%s: command failed: %s\n' "$EP_TEST_NAME" "$1" "$2" >&2
}

ep__on_signal() {
  [ ! -f "$EP_TMP/watchdog" ] || cat "$EP_TMP/watchdog"
  printf 'FAIL: %s interrupted by %s\n' "$EP_TEST_NAME" "$1"
  EP_FAILED=$((EP_FAILED + 1))
  exit 1
}

# ep_init NAME [BUDGET_SECONDS]: trap, temp dir, watchdog.
ep_init() {
  EP_TEST_NAME=$1
  local budget=${2:-540}
  trap ep__cleanup EXIT
  trap 'ep__on_signal INT' INT
  trap 'ep__on_signal TERM' TERM
  trap 'ep__on_err "$LINENO" "$BASH_COMMAND"' ERR
  EP_TMP=$(mktemp -d "${TMPDIR:-/tmp}/edgepull-${EP_TEST_NAME}.XXXXXX")
  chmod 755 "$EP_TMP"
  # The watchdog ends our direct children (all bounded commands and services
  # we started), then us, so the trap still cleans up before CTest's timeout.
  (
    trap 'kill "$sp" 2>/dev/null; exit 0' TERM
    sleep "$budget" &
    sp=$!
    wait "$sp"
    echo "WATCHDOG: $EP_TEST_NAME exceeded ${budget}s" >"$EP_TMP/watchdog"
    kill -TERM "$$" 2>/dev/null
    for p in $(ps -o pid= --ppid "$$"); do
      [ "$p" = "$BASHPID" ] || kill -TERM "$p" 2>/dev/null
    done
  ) >/dev/null 2>&1 &
  EP_WATCHDOG_PID=$!
  ep_cleanup_push "kill $EP_WATCHDOG_PID"
  ep_log "temp dir $EP_TMP, budget ${budget}s"
}

ep_finish() {
  exit 0 # the EXIT trap prints the summary and picks the exit code
}

ep_require_root() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "$EP_TEST_NAME needs root (network namespaces, containerd)" >&2
    exit 77
  fi
}

ep_require_cmd() { # CMD...
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null 2>&1 || {
      echo "$EP_TEST_NAME needs '$c' (run scripts/deps all)" >&2
      exit 77
    }
  done
}

# A fresh directory inside the test's temp dir (removed with it).
ep_tmpdir() {
  mktemp -d "$EP_TMP/${1:-d}.XXXXXX"
}

ep__umount_under() { # DIR: lazily unmount anything left mounted below DIR
  local m
  awk -v d="$1" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

# --- bounded commands ------------------------------------------------------

# ep_timeout SECONDS CMD...: run CMD, kill it after SECONDS (and 5 s later -9).
ep_timeout() {
  local secs=$1 rc=0
  shift
  timeout -k 5 "$secs" "$@" || rc=$?
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    echo "TIMEOUT after ${secs}s: $*" >&2
  fi
  return "$rc"
}

# Prefix that runs a command in the test's namespace, for background jobs
# (so $! is the service itself, not a subshell).
EP_NSX=()

# Run CMD inside the test's network namespace when it has one.
ep_ns() {
  if [ -n "$EP_NETNS" ]; then
    ip netns exec "$EP_NETNS" "$@"
  else
    "$@"
  fi
}

# curl with bounds, in the test's namespace. Never retries.
ep_curl() {
  ep_ns timeout -k 5 120 curl -sS --connect-timeout 5 --max-time 110 "$@"
}

# ep_wait_http URL TIMEOUT [PID]: until URL answers 2xx; fails early when PID dies.
ep_wait_http() {
  local url=$1 secs=$2 pid=${3:-} deadline
  deadline=$((SECONDS + secs))
  while [ "$SECONDS" -lt "$deadline" ]; do
    if ep_ns curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; then
      return 0
    fi
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      echo "process $pid died while waiting for $url" >&2
      return 1
    fi
    sleep 0.2
  done
  echo "no answer from $url within ${secs}s" >&2
  return 1
}

# ep_stop_pid PID [SECONDS]: TERM, wait, then KILL. Returns the exit status.
ep_stop_pid() {
  local pid=$1 secs=${2:-15} i rc=0
  kill -0 "$pid" 2>/dev/null || {
    wait "$pid" 2>/dev/null || rc=$?
    return "$rc"
  }
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < secs * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "pid $pid ignored SIGTERM for ${secs}s, killing" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || rc=$?
  return "$rc"
}

# --- ports and namespaces --------------------------------------------------

# ep_free_port: print a TCP port nobody listens on, reserved for this test
# (a file in $EP_PORT_DIR created with noclobber) so parallel tests never
# pick the same one. Ports come from below the kernel's ephemeral range.
ep_free_port() {
  local lo=20000 hi hi_eph port i
  read -r hi_eph _ </proc/sys/net/ipv4/ip_local_port_range
  hi=$((hi_eph - 1))
  [ "$hi" -gt $((lo + 1000)) ] || hi=60000
  mkdir -p "$EP_PORT_DIR"
  for ((i = 0; i < 200; i++)); do
    port=$((lo + (RANDOM * 32768 + RANDOM) % (hi - lo)))
    if ep_ns ss -Hltn "sport = :$port" | grep -q .; then
      continue
    fi
    if (set -C && echo "$$" >"$EP_PORT_DIR/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
    # A reservation left by a dead test is stale.
    local owner
    owner=$(cat "$EP_PORT_DIR/$port" 2>/dev/null || echo)
    if [ -n "$owner" ] && ! kill -0 "$owner" 2>/dev/null; then
      rm -f "$EP_PORT_DIR/$port"
    fi
  done
  echo "no free port found" >&2
  return 1
}

ep__release_ports() {
  local f
  [ -d "$EP_PORT_DIR" ] || return 0
  for f in "$EP_PORT_DIR"/*; do
    [ -f "$f" ] && [ "$(cat "$f" 2>/dev/null)" = "$$" ] && rm -f "$f"
  done
  return 0
}

# ep_netns_create: a private network namespace with lo up; EP_NETNS names it.
# Processes left in it are ended (by pid) and it is deleted at exit.
ep_netns_create() {
  EP_NETNS="ep-${EP_TEST_NAME#test_}-$$"
  EP_NETNS=${EP_NETNS:0:30}
  ip netns add "$EP_NETNS"
  ep_cleanup_push "ep__netns_delete $EP_NETNS"
  ip netns exec "$EP_NETNS" ip link set lo up
  EP_NSX=(ip netns exec "$EP_NETNS")
  export EP_NETNS
}

ep__netns_delete() {
  local p
  for p in $(ip netns pids "$1" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
  ip netns delete "$1" 2>/dev/null || true
}

# ep_shape_lo RATE: limit loopback of the test's namespace (e.g. 200mbit).
ep_shape_lo() {
  [ -n "$EP_NETNS" ] || ep_die "ep_shape_lo needs a namespace (ep_netns_create)"
  ip netns exec "$EP_NETNS" tc qdisc add dev lo root tbf rate "$1" burst 256kb latency 100ms
}

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
ep_start_containerd() {
  ep_require_cmd containerd ctr
  local dir
  dir=$(ep_tmpdir containerd)
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

# --- edgepulld ---------------------------------------------------------------

EP_ARGS=()

# ep_start_edgepulld ARGS...: start edgepulld in the background on EP_PORT with
# state in EP_STATE (both chosen on first start, kept on restarts), log to a
# new EP_LOG per start, wait for /v2/ (unless EP_START_NOWAIT). Exports EP_PID
# EP_PORT EP_STATE EP_LOG EP_URL. Pass no ARGS to restart with the previous ones.
# EP_EMULATOR (e.g. qemu-arm-static) runs a cross-built edgepulld (tests/cross/).
ep_start_edgepulld() {
  local bin=$EP_BUILD_DIR/plugin/edgepulld
  [ -x "$bin" ] || ep_die "no edgepulld at $bin (build first)"
  local emu=()
  [ -z "${EP_EMULATOR:-}" ] || emu=("$EP_EMULATOR")
  [ $# -eq 0 ] || EP_ARGS=("$@")
  EP_STATE=${EP_STATE:-$(ep_tmpdir state)}
  EP_PORT=${EP_PORT:-$(ep_free_port)}
  EP_URL=http://127.0.0.1:$EP_PORT
  EP_START_COUNT=$((EP_START_COUNT + 1))
  EP_LOG=$EP_TMP/edgepulld.$EP_START_COUNT.log
  "${EP_NSX[@]}" "${emu[@]}" "$bin" --state-dir "$EP_STATE" --listen "127.0.0.1:$EP_PORT" "${EP_ARGS[@]}" \
    >"$EP_LOG" 2>&1 &
  EP_PID=$!
  export EP_PID EP_PORT EP_STATE EP_LOG EP_URL
  ep_cleanup_push "ep_stop_pid $EP_PID 10"
  EP_LOGS+=("$EP_LOG")
  # EP_START_NOWAIT=1: the caller waits (many daemons started at once).
  [ -n "${EP_START_NOWAIT:-}" ] || ep_wait_http "$EP_URL/v2/" 30 "$EP_PID" ||
    ep_die "edgepulld did not start (log: $EP_LOG)"
  ep_log "edgepulld at $EP_URL (pid $EP_PID, state $EP_STATE)"
}

# ep_stop_edgepulld: SIGTERM, expect a clean exit (status 0) and no sanitizer
# report in its log.
ep_stop_edgepulld() {
  local rc=0
  ep_stop_pid "$EP_PID" 15 || rc=$?
  ep_assert_eq 0 "$rc" "edgepulld exits 0 on SIGTERM"
  ep_check_sanitizers "$EP_LOG"
}

ep_check_sanitizers() { # LOG...
  local f
  for f in "$@"; do
    if grep -qE 'ERROR: (Address|Leak|Thread)Sanitizer|runtime error:' "$f"; then
      ep_fail "sanitizer report in $f:"
      grep -E -A 30 'ERROR: (Address|Leak|Thread)Sanitizer|runtime error:' "$f" | head -n 60
    else
      ep_pass "no sanitizer report in $(basename "$f")"
    fi
  done
}

ep_edgepulld_alive() {
  kill -0 "$EP_PID" 2>/dev/null && ep_curl -fs -o /dev/null "$EP_URL/v2/"
}

ep_edgepullctl() { # ARGS...
  ep_timeout 30 "$EP_BUILD_DIR/ctl/edgepullctl" --state-dir "$EP_STATE" "$@"
}

# Path of a complete blob in edgepulld's store.
ep_store_blob() { # DIGEST
  echo "$EP_STATE/blobs/sha256/${1#sha256:}"
}

# sha256 of a file, as "sha256:<hex>".
ep_sha256() {
  echo "sha256:$(sha256sum "$1" | cut -d' ' -f1)"
}

# Value of a response header in a file written by curl -D.
ep_header() { # FILE NAME
  tr -d '\r' <"$1" | awk -v n="$2" 'BEGIN { n = tolower(n) }
    { i = index($0, ":"); if (i && tolower(substr($0, 1, i - 1)) == n) {
        v = substr($0, i + 1); sub(/^ +/, "", v); print v } }' | tail -n 1
}

# URL of a blob or manifest through edgepulld, upstream chosen by ?ns=.
ep_blob_url() { # REPO DIGEST
  echo "$EP_URL/v2/$1/blobs/$2?ns=$REGISTRY_HOST"
}
ep_manifest_url() { # REPO REF
  echo "$EP_URL/v2/$1/manifests/$2?ns=$REGISTRY_HOST"
}

# ep_assert_stored DIGEST...: each blob is complete and verified in the store.
# A client may finish reading just before the commit (hash, fsync, rename)
# ends, so each blob gets up to 10 s to appear.
ep_assert_stored() {
  local d f deadline=$((SECONDS + 10))
  for d in "$@"; do
    f=$(ep_store_blob "$d")
    while [ ! -f "$f" ] && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    if [ -f "$f" ] && [ "$(ep_sha256 "$f")" = "$d" ]; then
      ep_pass "store holds verified ${d:0:19}"
    else
      ep_fail "store lacks a verified copy of $d ($f)"
    fi
  done
}

# ep_assert_gets N DIGEST...: the registry got exactly N GETs for each blob.
ep_assert_gets() {
  local n=$1 d
  shift
  for d in "$@"; do
    ep_assert_eq "$n" "$(ep_count_blob_gets "$d")" "registry blob GETs for ${d:0:19}"
  done
}

# Status of a request through curl; body to $1, headers to $1.h.
ep_http() { # BODY_FILE CURL_ARGS...
  local out=$1
  shift
  ep_curl -o "$out" -D "$out.h" -w '%{http_code}' "$@" || true
}

# ep_assert_error_json FILE WHAT: an OCI error body with errors[0].code.
ep_assert_error_json() {
  local code
  code=$(jq -er '.errors[0].code | strings' "$1" 2>/dev/null) || code=
  if [ -n "$code" ]; then
    ep_pass "$2: error JSON ($code)"
  else
    ep_fail "$2: body is not OCI error JSON: $(head -c 200 "$1" | tr -c '[:print:]' '?')"
  fi
}

# --- an emulated uplink --------------------------------------------------------

# ep_uplink_create: a network namespace for the upstream registry, joined to
# ours by a veth pair with addresses in 198.19.0.0/16 (benchmark space), so the
# registry sits behind a link that ep_uplink_shape can make as slow as a WAN
# uplink. Call before ep_start_registry. Sets EP_UPLINK_NS, EP_UPLINK_DEV
# (our side), EP_UPLINK_ADDR (the registry's address). Removed at exit.
ep_uplink_create() {
  local id=$(($$ % 16384)) net peer
  EP_UPLINK_NS=ep-up-$$
  EP_UPLINK_DEV=epu$$h
  peer=epu$$n
  net=198.19.$((id / 64)).$((id % 64 * 4))
  EP_UPLINK_ADDR=${net%.*}.$((${net##*.} + 2))
  ip netns add "$EP_UPLINK_NS"
  ep_cleanup_push "ep__netns_delete $EP_UPLINK_NS"
  ip link add "$EP_UPLINK_DEV" type veth peer name "$peer" netns "$EP_UPLINK_NS"
  ip addr add "${net%.*}.$((${net##*.} + 1))/30" dev "$EP_UPLINK_DEV"
  ip link set "$EP_UPLINK_DEV" up
  ip netns exec "$EP_UPLINK_NS" ip addr add "$EP_UPLINK_ADDR/30" dev "$peer"
  ip netns exec "$EP_UPLINK_NS" ip link set "$peer" up
  ip netns exec "$EP_UPLINK_NS" ip link set lo up
  EP_UPLINK_PEER=$peer
  export EP_UPLINK_NS EP_UPLINK_DEV EP_UPLINK_ADDR EP_UPLINK_PEER
}

# ep_uplink_shape RATE: limit both directions of the uplink (e.g. 200mbit).
ep_uplink_shape() {
  tc qdisc replace dev "$EP_UPLINK_DEV" root tbf rate "$1" burst 256kb latency 100ms
  ip netns exec "$EP_UPLINK_NS" tc qdisc replace dev "$EP_UPLINK_PEER" root tbf rate "$1" \
    burst 256kb latency 100ms
}
