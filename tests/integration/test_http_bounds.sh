#!/usr/bin/env bash
# Issue 11, point 5: connections and fetch jobs are bounded, with edgepulld's
# default flags (one run with a raised --max-connections checks that it is
# honoured past FD_SETSIZE).
# - 1,000 clients that hang up mid-fetch (each on its own blob of a slow fake
#   upstream): afterwards the fetch threads, fds and partials return within
#   bounds (cap on fetch jobs, abandoned orphan fetches).
# - 300 slowloris connections (one header byte every 3 s) on the local port and
#   on the peer port: a normal client still gets its blob, every slowloris
#   connection is closed by the header deadline, and on the peer port one
#   address holds at most --peer-max-per-ip of them.
# - --max-connections 1100 holds 1100 connections (select() stopped at 1024).
# Loopback only; every loop is bounded in count and time.
# shellcheck source=../lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

ep_init test_http_bounds 540
ep_require_root
ep_require_cmd python3 curl xargs

helper=$EP_SOURCE_DIR/tests/lib/bounds.py
py=/usr/bin/python3 # the Debian interpreter: a pyenv shim may be slow to start
[ -x "$py" ] || py=python3
out=$(ep_tmpdir out)
head -c 1048576 /dev/urandom >"$out/seed1"
head -c 524288 /dev/urandom >"$out/seed2"
seed1=sha256:$(sha256sum "$out/seed1" | cut -d' ' -f1)
seed2=sha256:$(sha256sum "$out/seed2" | cut -d' ' -f1)

UPORT=$(ep_free_port)
"$py" "$helper" registry "$UPORT" "$out/seed1" "$out/seed2" >"$out/registry.log" 2>&1 &
upid=$!
ep_cleanup_push "kill $upid 2>/dev/null"
ep_wait_http "http://127.0.0.1:$UPORT/v2/" 60 "$upid" || ep_die "fake registry did not start"
ns=127.0.0.1:$UPORT
PPORT=$(ep_free_port)
# Plain HTTP on the peer port: the bounds are measured with raw TCP clients
# that trickle request bytes (bounds.py); over TLS they would measure the
# handshake instead (test_peer_tls covers that a client without a
# certificate never gets a request in).
ep_start_edgepulld --registry "$ns=http://$ns" --peer-listen "127.0.0.1:$PPORT" --peer-insecure

threads() { awk '/^Threads:/ {print $2}' "/proc/$EP_PID/status"; }
fds() { (ls "/proc/$EP_PID/fd" 2>/dev/null || true) | wc -l; }
sockets() { (ls -l "/proc/$EP_PID/fd" 2>/dev/null || true) | grep -c 'socket:' || true; }
partials() { find "$EP_STATE/ingest" -name '*.partial' 2>/dev/null | wc -l; }
figures() { echo "threads $(threads) fds $(fds) partials $(partials)"; }
blob_url() { echo "$1/v2/edge/app/blobs/$2?ns=$ns"; }
# wait_ready FILE: until the helper has opened its connections (bounded).
wait_ready() {
  for _ in $(seq 120); do
    [ -e "$1" ] && return 0
    sleep 0.5
  done
  ep_die "the connection helper did not start"
}

base_threads=$(threads)
base_fds=$(fds)
ep_log "before: $(figures)"

# --- 1,000 clients hanging up mid-fetch ------------------------------------
for i in $(seq 1000); do
  printf 'sha256:%s\n' "$(printf '%064x' "$((i * 7919 + 1))")"
done >"$out/digests"
export EP_URL ns
# The peak thread count while they run: connections plus fetch jobs (capped).
(
  peak=0
  for _ in $(seq 600); do
    t=$(awk '/^Threads:/ {print $2}' "/proc/$EP_PID/status" 2>/dev/null || echo 0)
    [ "$t" -gt "$peak" ] && peak=$t && echo "$peak" >"$out/peak"
    sleep 0.5
  done
) &
sampler=$!
ep_cleanup_push "kill $sampler 2>/dev/null"
# shellcheck disable=SC2016 # expanded by the inner shell
xargs -P 100 -I{} bash -c 'curl -s -o /dev/null --max-time 2 -w "%{http_code}\n" \
  "$EP_URL/v2/edge/app/blobs/{}?ns=$ns" || true' <"$out/digests" >"$out/codes"
ep_log "answers: $(sort "$out/codes" | uniq -c | tr '\n' ' ')"
kill "$sampler" 2>/dev/null || true
peak=$(cat "$out/peak")
ep_log "peak threads during the run: $peak (baseline $base_threads)"
ep_assert "threads bounded by 100 clients + 64 fetch jobs ($peak)" \
  test "$peak" -le $((base_threads + 100 + 64 + 16))
ep_log "right after the hang-ups: $(figures)"
ep_assert_eq 1000 "$(wc -l <"$out/codes")" "1,000 clients ran"
ep_assert_eq 0 "$(grep -cvE '^(200|503)$' "$out/codes" || true)" \
  "every hung-up client got 200 (cut by itself) or 503 (fetch cap)"
ok=$(grep -c '^200$' "$out/codes" || true)
ep_assert "some clients hung up mid-fetch ($ok)" test "$ok" -gt 0
ep_assert "some were refused by the fetch cap" grep -q '^503$' "$out/codes"
# The orphan grace is 30 s; partials are pruned once a minute.
for _ in $(seq 60); do
  [ "$(threads)" -le $((base_threads + 4)) ] && [ "$(fds)" -le $((base_fds + 40)) ] &&
    [ "$(partials)" -le 128 ] && break
  sleep 2
done
ep_log "after the grace: $(figures)"
ep_assert "fetch and connection threads are back ($(threads) <= $base_threads + 4)" \
  test "$(threads)" -le $((base_threads + 4))
ep_log "fds: $(ls -l "/proc/$EP_PID/fd" 2>/dev/null | awk 'NR > 1 {print $NF}' |
  sed -E 's/[0-9]+/N/g' | sort | uniq -c | tr '\n' ' ')"
# curl's cache keeps a few idle upstream connections: bounded, not per fetch
ep_assert "fds are back ($(fds) <= $base_fds + 40)" test "$(fds)" -le $((base_fds + 40))
ep_assert "partials bounded by 2 x --max-fetches ($(partials) <= 128)" test "$(partials)" -le 128
grep -q "fetch abandoned" "$EP_LOG" && ep_pass "orphan fetches were abandoned" ||
  ep_fail "no fetch was abandoned"
code=$(ep_http "$out/b" "$(blob_url "$EP_URL" "$seed1")")
ep_assert_eq 200 "$code" "a normal client gets its blob after the hang-ups"
ep_assert_eq "$seed1" "$(ep_sha256 "$out/b")" "and the blob verifies"

# --- slowloris on the local port -------------------------------------------
rm -rf "$EP_STATE/blobs/sha256/${seed1#sha256:}" # served again through a fetch
BOUNDS_READY=$out/ready-local "$py" "$helper" slowloris 127.0.0.1 "$EP_PORT" 300 60 \
  >"$out/slow-local" &
spid=$!
wait_ready "$out/ready-local"
code=$(ep_http "$out/b" "$(blob_url "$EP_URL" "$seed2")")
ep_assert_eq 200 "$code" "local port: a normal client gets its blob under slowloris"
ep_assert_eq "$seed2" "$(ep_sha256 "$out/b")" "and the blob verifies"
wait "$spid"
ep_log "local slowloris: $(cat "$out/slow-local")"
ep_assert_eq 0 "$(jq .held "$out/slow-local")" "local port: every slowloris connection was closed"
ep_assert "local port: most by the header deadline, the others shed for new clients" \
  test "$(jq .cut "$out/slow-local")" -ge 200

# --- slowloris on the peer port, from one address ---------------------------
BOUNDS_READY=$out/ready-peer "$py" "$helper" slowloris 127.0.0.1 "$PPORT" 300 60 \
  >"$out/slow-peer" &
spid=$!
wait_ready "$out/ready-peer"
code=$(ep_http "$out/b" --interface 127.0.0.2 "$(blob_url "http://127.0.0.1:$PPORT" "$seed1")")
ep_assert_eq 200 "$code" "peer port: another address gets its blob under slowloris"
ep_assert_eq "$seed1" "$(ep_sha256 "$out/b")" "and the blob verifies"
wait "$spid"
ep_log "peer slowloris: $(cat "$out/slow-peer")"
ep_assert_eq 0 "$(jq .held "$out/slow-peer")" "peer port: every slowloris connection was closed"
ep_assert "peer port: one address holds at most 32 connections" \
  test "$(jq .cut "$out/slow-peer")" -le 32
ep_assert "peer port: the others were refused at once" \
  test "$(jq .cut_early "$out/slow-peer")" -ge 268
ep_log "after slowloris: $(figures)"
ep_assert "edgepulld is alive" ep_edgepulld_alive
ep_stop_edgepulld

# --- --max-connections past FD_SETSIZE --------------------------------------
EP_PORT=
ep_start_edgepulld --registry "$ns=http://$ns" --max-connections 1100
base_sockets=$(sockets)
BOUNDS_READY=$out/ready-hold "$py" "$helper" hold 127.0.0.1 "$EP_PORT" 1150 10 >"$out/hold" &
hpid=$!
wait_ready "$out/ready-hold"
held=0
for _ in $(seq 16); do
  sleep 0.5
  held=$(($(sockets) - base_sockets))
  [ "$held" -ge 1100 ] && break
done
ep_log "--max-connections 1100: edgepulld holds $held client sockets ($(figures))"
ep_assert "1100 connections are served, past FD_SETSIZE ($held)" test "$held" -ge 1100
wait "$hpid"
ep_log "idle clients: $(cat "$out/hold")"
ep_assert_eq 1100 "$(jq .open "$out/hold")" "of 1150 idle connections, exactly 1100 stay open"
ep_assert "edgepulld is alive" ep_edgepulld_alive
ep_stop_edgepulld
ep_finish
