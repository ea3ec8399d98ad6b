#!/usr/bin/env bash
# The cost and the reaction time of the locality control plane (MQTT), with a
# real mosquitto, edgepull-coordinator (tree:2) and edgepulld nodes:
#
# 1. Steady state: a gateway and --nodes nodes with the default heartbeat
#    (30 s) and keepalive (10 s), converged, then watched for --window
#    seconds. Figures per node per minute: the messages and topic+payload
#    bytes published into the locality (one mosquitto_sub on edgepull/v1/#
#    sees each message once), and the broker's own $SYS byte counters
#    (received: every client's packets incl. MQTT headers, PINGREQ, PUBACK;
#    sent: what it delivers to all subscribers, which grows with the number
#    of nodes since every node subscribes to the whole locality).
# 2. Time to heal after a node loss, against the MQTT keepalive (5, 10,
#    20 s): the victim, a node with children, runs in its own network
#    namespace joined by a veth pair (198.18.0.0/15, benchmark space); a
#    power loss is emulated by setting the host end of the veth down (a
#    blackhole route keeps packets from leaking to the default route), so no
#    FIN or RST ever reaches the broker, which only notices through the
#    keepalive (Will after 1.5 x keepalive without a packet). Heal = from the
#    cut until the last orphan's new retained parent assignment arrives at a
#    subscriber; "Will" = until the victim's offline state arrives. Baseline:
#    kill -9 on loopback, where the kernel closes the socket and the broker
#    publishes the Will at once. A fresh locality (name, coordinator, nodes)
#    every repetition.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=../tests/lib/locality.sh
. "$EP_SOURCE_DIR/tests/lib/locality.sh"

BENCH_NODES=10
BENCH_WINDOW=60
BENCH_KEEPALIVES=${BENCH_KEEPALIVES:-"5 10 20"}
# shellcheck disable=SC2034 # read by bench_parse_args
BENCH_OPTS="--nodes:BENCH_NODES --window:BENCH_WINDOW"
bench_parse_args "MQTT control-plane bytes per node in steady state, and time to heal after a node loss vs. keepalive." \
  "  --nodes N          nodes besides the gateway in the steady-state run (default $BENCH_NODES)
  --window S         steady-state measuring window in seconds (default $BENCH_WINDOW)
" "$@"
for k in $BENCH_KEEPALIVES; do
  if ! [[ $k =~ ^[0-9]+$ ]] || [ "$k" -lt 5 ] || [ "$k" -gt 600 ]; then
    bench_usage_error "BENCH_KEEPALIVES: '$k' is not a keepalive in 5..600"
  fi
done

budget=$((300 + BENCH_WINDOW + BENCH_NODES * 5))
for k in $BENCH_KEEPALIVES; do budget=$((budget + BENCH_REPS * (k * 3 / 2 + 40))); done
ep_init bench_locality_control "$budget"
ep_require_root
ep_require_cmd ip ss
bench_ensure_build
if [ ! -x "$EP_BUILD_DIR/coordinator/edgepull-coordinator" ] || [ ! -x "$EP_BUILD_DIR/ctl/edgepullctl" ]; then
  cmake --build "$EP_BUILD_DIR" -j"$(nproc)" --target edgepull-coordinator edgepullctl \
    >>"$EP_TMP/cmake.log" 2>&1 || ep_die "building the coordinator and edgepullctl failed"
fi
ep_loc_require

# --- the victim's namespace -----------------------------------------------------

NS=ep-bench-$$
HV=epb$$h
NV=epb$$n
id=$(($$ % 16384))
NET=198.18.$((id / 64)).$((id % 64 * 4))
HOST_ADDR=${NET%.*}.$((${NET##*.} + 1))
PEER_ADDR=${NET%.*}.$((${NET##*.} + 2))
ip netns add "$NS"
ep_cleanup_push "ep__netns_delete $NS"
ip link add "$HV" type veth peer name "$NV" netns "$NS"
ep_cleanup_push "ip link del $HV"
ip addr add "$HOST_ADDR/30" dev "$HV"
ip link set "$HV" up
ip route add blackhole "$NET/30" metric 4000
ep_cleanup_push "ip route del blackhole $NET/30 metric 4000"
ip netns exec "$NS" ip addr add "$PEER_ADDR/30" dev "$NV"
ip netns exec "$NS" ip link set "$NV" up
ip netns exec "$NS" ip link set lo up
ep_log "victim namespace $NS: $PEER_ADDR, broker side $HOST_ADDR ($HV)"

# BENCH_MQTT_EXTRA: more mosquitto.conf lines (e.g. "set_tcp_nodelay true").
EP_MQTT_EXTRA="sys_interval 1${BENCH_MQTT_EXTRA:+$'\n'$BENCH_MQTT_EXTRA}"
ep_mqtt_start "$HOST_ADDR"

sys_counter() { # NAME: a $SYS/broker/bytes counter
  timeout -k 2 10 mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -t "\$SYS/broker/bytes/$1" -C 1 -W 5
}

# wait_assigned N SECONDS: until N retained parent assignments exist.
wait_assigned() {
  local deadline=$((SECONDS + $2))
  until [ "$(ep_loc_parents | grep -c .)" -ge "$1" ]; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.5
  done
}

stop_locality() {
  local id
  for id in "${NODE_IDS[@]}"; do ep_node_stop "$id" || true; done
  ep_coord_stop || true
}

# --- 1. steady state ------------------------------------------------------------

ep_loc_set steady
ep_coord_start --topology tree:2
ep_node_start gw --gateway --link-mbps 1000
for ((i = 1; i <= BENCH_NODES; i++)); do
  ep_node_start "n$i" --link-mbps $((100 + 10 * i))
done
wait_assigned $((BENCH_NODES + 1)) 60 || ep_die "the locality did not converge in 60 s"
sleep 3
ep_mqtt_record "$EP_TMP/steady.rec" 'edgepull/v1/#'
rec_pid=$MQTT_REC_PID
sleep 2 # retained messages are delivered at once; the window starts after them
rx0=$(sys_counter received)
tx0=$(sys_counter sent)
t0=$(bench_now)
ep_log "steady state: watching $((BENCH_NODES + 1)) nodes for ${BENCH_WINDOW} s"
sleep "$BENCH_WINDOW"
t1=$(bench_now)
rx1=$(sys_counter received)
tx1=$(sys_counter sent)
kill "$rec_pid" 2>/dev/null || true
n=$((BENCH_NODES + 1))
read -r msgs bytes states invs deltas parents < <(awk -v a="$t0" -v b="$t1" '
  $1 >= a && $1 < b { m++; s += length($0) - length($1) - 2
    if ($2 ~ /\/state$/) st++; else if ($2 ~ /\/inventory$/) iv++
    else if ($2 ~ /\/delta$/) de++; else if ($2 ~ /\/parent$/) pa++ }
  END { printf "%d %d %d %d %d %d\n", m, s, st, iv, de, pa }' "$EP_TMP/steady.rec")
minutes=$(bench_calc "($t1 - $t0) / 60")
per() { bench_calc "$1 / $n / $minutes"; }
bench_record "**MQTT topic+payload bytes published, per node per minute**" B "%.0f" "$(per "$bytes")"
bench_record "messages published per node per minute" msgs "%.2f" "$(per "$msgs")"
bench_record "broker bytes received (\$SYS), per node per minute" B "%.0f" "$(per $((rx1 - rx0)))"
bench_record "broker bytes sent (\$SYS, fan-out to $((n + 1)) subscribers), per node per minute" B \
  "%.0f" "$(per $((tx1 - tx0)))"
bench_note "Steady state: gateway + $BENCH_NODES nodes, heartbeat 30 s, keepalive 10 s, window $(bench_calc "$t1 - $t0") s;" \
  "messages seen: $states state, $invs inventory, $deltas delta, $parents parent."
if [ "$parents" -eq 0 ] && [ "$deltas" -eq 0 ]; then
  ep_pass "steady state: no parent or inventory traffic"
else
  ep_fail "steady state: $parents parent and $deltas delta messages in the window"
fi
stop_locality

# --- 2. time to heal ---------------------------------------------------------------

# heal_run KEEPALIVE MODE(cut|kill) REP: HEAL_OUT = "heal_s will_s", or
# empty when the orphans were not reassigned.
heal_run() {
  local k=$1 mode=$2 rep=$3 t0 out i view victim=v orphans rec
  ep_loc_set "heal-$mode-k$k-r$rep"
  ep_coord_start --topology tree:2 --keepalive 5
  ep_node_start gw --gateway --link-mbps 1000 --keepalive "$k"
  if [ "$mode" = cut ]; then
    EP_NSX=(ip netns exec "$NS")
    EP_NETNS=$NS EP_NODE_BROKER=$HOST_ADDR:$MQTT_PORT EP_NODE_PEER_ADDR=$PEER_ADDR \
      ep_node_start "$victim" --link-mbps 900 --keepalive "$k"
    EP_NSX=()
  else
    ep_node_start "$victim" --link-mbps 900 --keepalive "$k"
  fi
  wait_assigned 2 30 || ep_die "$EP_LOC: no assignment for the victim"
  for i in 1 2 3; do ep_node_start "n$i" --link-mbps 100 --keepalive "$k"; done
  wait_assigned 5 30 || ep_die "$EP_LOC: the locality did not converge"
  view=$(ep_loc_parent_view)
  orphans=$(awk -v v="$victim" '$2 == v { printf "%s ", $1 }' <<<"$view")
  [ -n "$orphans" ] || ep_die "$EP_LOC: the victim has no children: $view"
  rec=$EP_TMP/$EP_LOC.rec
  ep_mqtt_record "$rec" "$EP_LOC_TOPIC/+/parent" "$EP_LOC_TOPIC/$victim/state"
  sleep 1
  t0=$(bench_now)
  if [ "$mode" = cut ]; then
    ip link set "$HV" down
  else
    ep_node_kill "$victim"
  fi
  out=
  for ((i = 0; i < (k * 3 / 2 + 30) * 10; i++)); do
    out=$(awk -v t0="$t0" -v v="$victim" -v orph="$orphans" '
      BEGIN { n = split(orph, o, " "); for (j = 1; j <= n; j++) want[o[j]] = 1 }
      $1 >= t0 {
        split($2, t, "/"); id = t[5]
        if (id == v && t[6] == "state" && $3 ~ /"status":"offline"/ && !will) will = $1
        if (!(id in want) || t[6] != "parent") next
        p = $3; sub(/.*"parent":"/, "", p); sub(/".*/, "", p)
        if ($3 ~ /"parent":"/ && p != v) ok[id] = $1; else delete ok[id]
      }
      END { m = 0; for (id in want) { if (!(id in ok)) exit; if (ok[id] > m) m = ok[id] }
            printf "%.3f %.3f\n", m - t0, (will ? will - t0 : -1) }' "$rec")
    [ -z "$out" ] || break
    sleep 0.1
  done
  kill "$MQTT_REC_PID" 2>/dev/null || true
  [ "$mode" != cut ] || ep_node_kill "$victim"
  ip link set "$HV" up
  stop_locality
  HEAL_OUT=$out
  if [ -n "$out" ]; then
    ep_pass "$EP_LOC: orphans ($orphans) reassigned after ${out%% *} s"
  else
    ep_fail "$EP_LOC: orphans ($orphans) not reassigned"
  fi
}

heal_series() { # KEEPALIVE MODE LABEL
  local heals=() wills=() r out
  for ((r = 1; r <= BENCH_REPS; r++)); do
    heal_run "$1" "$2" "$r"
    out=$HEAL_OUT
    [ -n "$out" ] || continue
    heals+=("${out% *}")
    wills+=("${out#* }")
    ep_log "$3, rep $r: heal ${out% *} s, Will ${out#* } s"
  done
  [ ${#heals[@]} -gt 0 ] || return 0
  bench_record "**time to heal, $3**" s "%.2f" "${heals[@]}"
  bench_record "Will (offline state) published, $3" s "%.2f" "${wills[@]}"
}

heal_series 10 kill "kill -9 (socket closed), keepalive 10 s"
for k in $BENCH_KEEPALIVES; do
  heal_series "$k" cut "power loss, keepalive $k s"
done
bench_note "Heal: gateway + victim (link 900) + 3 nodes, tree:2; the victim has children; time from the" \
  "cut (or kill) until the last orphan's new assignment reaches a subscriber."
bench_report "Locality control plane: MQTT cost and time to heal"
ep_finish
