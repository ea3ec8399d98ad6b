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
EP_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# The harness by concern: assert.sh (output, assertions), services.sh
# (registry, containerd, dockerd), daemons.sh (edgepulld, edgepullctl),
# uplink.sh (an emulated WAN link); the lifecycle, bounded commands, ports
# and namespaces stay here.
# shellcheck source=tests/lib/assert.sh
. "$EP_LIB_DIR/assert.sh"

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

# shellcheck source=tests/lib/services.sh
. "$EP_LIB_DIR/services.sh"
# shellcheck source=tests/lib/daemons.sh
. "$EP_LIB_DIR/daemons.sh"
# shellcheck source=tests/lib/uplink.sh
. "$EP_LIB_DIR/uplink.sh"
