#!/usr/bin/env bash
# Bandwidth caps (issue 14 point 4): one token bucket covers all of a
# node's transfers in a direction, measured with real daemons.
#  a. --upstream-max-rate 4M on a standalone edgepulld: three clients pull
#     three different blobs (20 MB, 6 MB, 6 MB) from a real docker-registry
#     through it at once; bytes / elapsed time of the three together is
#     within 10 % of 4,000,000 bytes/s, and /metrics shows the cap and the
#     time transfers waited for it; SIGTERM during a capped transfer ends
#     the daemon at once.
#  b. --peer-max-rate 4M on a gateway holding the same blobs: a second node
#     (n1, no upstream) pulls the three at once through its own endpoint,
#     so every byte crosses the gateway's peer port (mutual TLS, stored
#     blobs read through the capped reader): again within 10 % of the cap.
# A test about the flag, so a speed band is what it asserts (the issue's
# acceptance), over a 5 s window in the middle of each transfer.
. "$(dirname "$0")/../lib/common.sh"
. "$EP_SOURCE_DIR/tests/lib/mkimage.sh"
. "$EP_SOURCE_DIR/tests/lib/locality.sh"
ep_init test_rate_limit 300
ep_loc_require
ep_require_cmd docker-registry skopeo awk

CAP=4000000
ep_start_registry
ep_mkimage "$EP_TMP/img" v1 amd64 gzip:20M gzip:6M gzip:6M
ep_push_image "$EP_TMP/img" v1 rate/app
LAYERS=("${EP_IMG_LAYERS[@]}")
[ ${#LAYERS[@]} -eq 3 ] || ep_die "expected 3 layers, got ${#LAYERS[@]}"
REG=(--registry "$REGISTRY_HOST=$REGISTRY_URL")

# got: bytes the three clients hold so far.
got() {
  local f n=0
  for f in "$EP_TMP"/got.*; do
    [ ! -f "$f" ] || n=$((n + $(stat -c %s "$f")))
  done
  echo "$n"
}

# pull_all BASE_URL WHAT: the three layers at once from BASE_URL; asserts
# each is whole, and the rate of the three together within 0.9-1.1x CAP.
# The rate is measured over 5 s in the middle of the transfer, from the
# bytes the clients hold: from the first megabyte (connections, tokens and
# the first burst behind) to 5 s later, while the 20 MB layer still flows
# (a blob's last bytes wait for its verification and commit, which is no
# part of the cap).
pull_all() {
  local base=$1 what=$2 i pids=() t1 b1 t2 b2 rate
  rm -f "$EP_TMP"/got.*
  for i in "${!LAYERS[@]}"; do
    ep_ns timeout -k 5 60 curl -fsS -o "$EP_TMP/got.$i" \
      "$base/v2/rate/app/blobs/${LAYERS[$i]}?ns=$REGISTRY_HOST" &
    pids+=($!)
  done
  for _ in $(seq 300); do
    [ "$(got)" -lt 1000000 ] || break
    sleep 0.02
  done
  t1=$(date +%s.%N) b1=$(got)
  sleep 5
  t2=$(date +%s.%N) b2=$(got)
  for i in "${!pids[@]}"; do
    ep_assert "$what: client $i ends well" wait "${pids[$i]}"
  done
  for i in "${!LAYERS[@]}"; do
    ep_assert_eq "${LAYERS[$i]}" "$(ep_sha256 "$EP_TMP/got.$i")" "$what: layer $i intact"
  done
  rm -f "$EP_TMP"/got.*
  rate=$(awk -v b="$((b2 - b1))" -v a="$t1" -v z="$t2" 'BEGIN { printf "%.0f", b / (z - a) }')
  ep_log "$what: $((b2 - b1)) bytes in $(awk -v a="$t1" -v z="$t2" 'BEGIN { printf "%.3f", z - a }') s = $rate bytes/s (cap $CAP)"
  ep_assert "$what: $rate bytes/s is within 10 % of the cap $CAP" \
    awk -v r="$rate" -v c="$CAP" 'BEGIN { exit !(r >= 0.9 * c && r <= 1.1 * c) }'
}

# value URL SERIES: the sample of SERIES on URL's /metrics, or 0.
value() {
  ep_ns curl -fsS --max-time 10 "$1/metrics" |
    awk -v s="$2" '$1 == s { print $2; found = 1 } END { if (!found) print 0 }'
}

# --- a. the uplink -------------------------------------------------------------

ep_start_edgepulld "${REG[@]}" --default-registry "$REGISTRY_HOST" --upstream-max-rate 4M
pull_all "$EP_URL" "a. --upstream-max-rate 4M"
ep_assert_eq "$CAP" "$(value "$EP_URL" 'edgepull_rate_limit_bytes_per_second{direction="upstream"}')" \
  "a. /metrics shows the upstream cap"
ep_assert_eq 0 "$(value "$EP_URL" 'edgepull_rate_limit_bytes_per_second{direction="peer"}')" \
  "a. no peer cap"
ep_assert "a. /metrics counts time throttled" awk -v v="$(value "$EP_URL" \
  'edgepull_rate_limited_seconds_total{direction="upstream"}')" 'BEGIN { exit !(v > 1) }'
ep_stop_edgepulld

# A transfer waiting off its debt does not hold up shutdown: at 100k the
# 20 MB layer would take 200 s; SIGTERM after 2 s ends the daemon at once.
unset EP_STATE
ep_start_edgepulld "${REG[@]}" --default-registry "$REGISTRY_HOST" --upstream-max-rate 100k
ep_ns timeout -k 5 60 curl -sS -o /dev/null \
  "$EP_URL/v2/rate/app/blobs/${LAYERS[0]}?ns=$REGISTRY_HOST" 2>/dev/null &
slow=$!
sleep 2
t0=$SECONDS
ep_stop_edgepulld
ep_assert "a. SIGTERM during a capped transfer ends edgepulld within 5 s" test $((SECONDS - t0)) -le 5
wait "$slow" || true

# --- b. the peer port ------------------------------------------------------------

# shellcheck disable=SC2119 # no extra listener
ep_mqtt_start
# shellcheck disable=SC2119 # no coordinator options
ep_coord_start
ep_node_start gw --gateway "${REG[@]}" --peer-max-rate 4M
for i in "${!LAYERS[@]}"; do # the gateway holds them (its uplink is not capped)
  ep_curl -f -o /dev/null "${NODE_URL[gw]}/v2/rate/app/blobs/${LAYERS[$i]}?ns=$REGISTRY_HOST" ||
    ep_die "gw: GET layer $i"
done
ep_node_start n1 "${REG[@]}"
for _ in $(seq 100); do
  ep_loc_parents | grep -q '^n1 .*"gw"' && break
  sleep 0.2
done
ep_assert_match '"gw"' "$(ep_loc_parents | grep '^n1 ')" "b. n1's parent is gw"
pull_all "${NODE_URL[n1]}" "b. --peer-max-rate 4M"
ep_assert_eq "$CAP" "$(value "${NODE_URL[gw]}" \
  'edgepull_rate_limit_bytes_per_second{direction="peer"}')" "b. gw's /metrics shows the peer cap"
ep_assert "b. gw's /metrics counts time throttled" awk -v v="$(value "${NODE_URL[gw]}" \
  'edgepull_rate_limited_seconds_total{direction="peer"}')" 'BEGIN { exit !(v > 1) }'
ep_assert_eq 0 "$(value "${NODE_URL[n1]}" 'edgepull_source_bytes_total{source="upstream"}')" \
  "b. n1 took nothing from the registry"
for id in n1 gw; do
  rc=0
  ep_node_stop "$id" || rc=$?
  ep_assert_eq 0 "$rc" "$id exits 0 on SIGTERM"
  ep_check_sanitizers "${NODE_LOG[$id]}"
done
ep_finish
