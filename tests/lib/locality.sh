# shellcheck shell=bash
# Locality emulation for integration tests and benchmarks (sourced after
# common.sh): a real mosquitto on a free loopback port with its config and
# persistence in the test's temp dir, edgepull-coordinator, and any number of
# edgepulld nodes joined to one locality. Everything started here is pushed on
# common.sh's cleanup stack, so it is stopped even when the test fails.
#
# The locality's services (broker, coordinator, the broker's command-line
# clients) run under the command prefix EP_LOC_NSX: empty on the host, the
# gateway's namespace in an emulated locality (netlocality.sh sets it, and
# its nl_* wrappers are these functions). Nodes run under EP_NSX, their own.
#
#   ep_mqtt_start [EXTRA_LISTEN_ADDR...]  broker on 127.0.0.1:MQTT_PORT (and
#                                          the same port on each extra address;
#                                          EP_MQTT_PORT, default a free one)
#   ep_mqtt_stop / ep_mqtt_kill            SIGTERM (clean: mosquitto publishes
#                                          every client's Will) / kill -9
#   ep_mqtt_restart                        start again: same port, same data
#   ep_coord_start ARGS...                 coordinator (COORD_PID, COORD_LOG)
#   ep_mqtt_record FILE FILTER...          subscriber writing to FILE (MQTT_REC_PID),
#                                          gateway EP_GATEWAY_ID (default gw)
#   ep_node_start ID ARGS...               edgepulld joined as node ID
#   ep_node_kill ID                        kill -9
#   ep_mqtt_retained FILTER [SECONDS]      "topic payload" lines the broker holds
#   ep_loc_parents                         retained parents: "id payload" lines
#   ep_loc_set NAME                        switch to another locality
#
# Per node: NODE_PID[id], NODE_PORT[id] (registry mirror), NODE_PEER[id]
# (peer port), NODE_STATE[id], NODE_LOG[id], NODE_URL[id].
#
# Peers talk mutual TLS, as users run them: each locality gets a CA under
# EP_TMP/pki/<locality> (edgepullctl ca init) and each node its certificate
# (edgepullctl ca issue ID) on first start. EP_PEER_TLS=off runs plain HTTP
# (--peer-insecure) instead, for what TLS would get in the way of.

# ep_loc_set NAME: work on locality NAME from now on, with no node known yet
# (stop the previous ones first); a benchmark uses a fresh one per run.
ep_loc_set() {
  EP_LOC=$1
  EP_LOC_TOPIC=edgepull/v1/$EP_LOC/node
  declare -gA NODE_PID=() NODE_PORT=() NODE_PEER=() NODE_STATE=() NODE_LOG=() NODE_URL=()
  declare -ga NODE_IDS=()
}
ep_loc_set "${EP_LOC:-site1}"
declare -ga EP_LOC_NSX=()
declare -ga EP_MQTT_ADDRS=()
EP_COORD_COUNT=0
EP_MQTT_COUNT=0

# mosquitto lives in /usr/sbin on Debian; non-root shells may lack it in PATH.
ep_loc_require() {
  case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH=$PATH:/usr/sbin ;; esac
  ep_require_cmd mosquitto mosquitto_sub mosquitto_pub jq curl
  [ -x "$EP_BUILD_DIR/coordinator/edgepull-coordinator" ] ||
    ep_die "no edgepull-coordinator in $EP_BUILD_DIR (build first)"
  [ -x "$EP_BUILD_DIR/ctl/edgepullctl" ] || ep_die "no edgepullctl in $EP_BUILD_DIR (build first)"
}

# --- the broker ----------------------------------------------------------------

ep_mqtt_start() { # [EXTRA_LISTEN_ADDR...]
  local a
  MQTT_DIR=$(ep_tmpdir mqtt)
  MQTT_PORT=${EP_MQTT_PORT:-$(ep_free_port)}
  EP_MQTT_ADDRS=(127.0.0.1 "$@")
  mkdir -p "$MQTT_DIR/data"
  {
    for a in "${EP_MQTT_ADDRS[@]}"; do printf 'listener %s %s\n' "$MQTT_PORT" "$a"; done
    printf 'allow_anonymous true\n'
    # Saved every second too, so retained messages survive even a kill -9.
    printf 'persistence true\npersistence_location %s/data/\nautosave_interval 1\n' "$MQTT_DIR"
    # Started as root mosquitto would switch to the `mosquitto` user, who
    # cannot write the temp dir.
    printf 'user %s\n' "$(id -un)"
    printf 'log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n'
    printf 'log_type information\nconnection_messages true\nlog_timestamp_format %%T\n'
    # Extra lines from the caller (e.g. "sys_interval 1").
    [ -z "${EP_MQTT_EXTRA:-}" ] || printf '%s\n' "$EP_MQTT_EXTRA"
  } >"$MQTT_DIR/mosquitto.conf"
  export MQTT_DIR MQTT_PORT
  ep__mqtt_spawn
}

# A caller that wrote its own mosquitto.conf (test_broker_tls) and set no
# EP_MQTT_ADDRS has it listening on loopback.
ep__mqtt_spawn() {
  local i last=127.0.0.1
  [ "${#EP_MQTT_ADDRS[@]}" -eq 0 ] || last=${EP_MQTT_ADDRS[-1]}
  EP_MQTT_COUNT=$((EP_MQTT_COUNT + 1))
  MQTT_LOG=$MQTT_DIR/mosquitto.$EP_MQTT_COUNT.log
  "${EP_LOC_NSX[@]}" mosquitto -c "$MQTT_DIR/mosquitto.conf" >"$MQTT_LOG" 2>&1 &
  MQTT_PID=$!
  export MQTT_LOG MQTT_PID
  ep_cleanup_push "ep_stop_pid $MQTT_PID 5"
  EP_LOGS+=("$MQTT_LOG")
  # Ready once it listens on the last address (the one nodes use).
  for ((i = 0; i < 100; i++)); do
    if "${EP_LOC_NSX[@]}" ss -Hltn "sport = :$MQTT_PORT" | grep -qF "$last:"; then
      ep_log "mosquitto on ${EP_MQTT_ADDRS[*]:-$last} port $MQTT_PORT (pid $MQTT_PID)"
      return 0
    fi
    kill -0 "$MQTT_PID" 2>/dev/null || ep_die "mosquitto exited: $(tail -n 5 "$MQTT_LOG")"
    sleep 0.1
  done
  ep_die "mosquitto does not listen on $MQTT_PORT"
}

# SIGTERM: mosquitto writes its persistence file (retained messages) on exit.
ep_mqtt_stop() {
  ep_stop_pid "$MQTT_PID" 10 || true
}

# kill -9: no Will is published, the data is the last autosave.
ep_mqtt_kill() {
  kill -KILL "$MQTT_PID" 2>/dev/null || true
  wait "$MQTT_PID" 2>/dev/null || true
}

ep_mqtt_restart() {
  ep__mqtt_spawn
}

# ep_mqtt_retained FILTER [SECONDS]: what the broker holds retained, one
# "topic payload" line per message (mosquitto_sub -v), sorted. Waits SECONDS
# (default 1) for them; retained messages arrive at once on loopback.
ep_mqtt_retained() {
  local rc=0 out
  out=$("${EP_LOC_NSX[@]}" timeout -k 2 10 mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -v -q 1 \
    -t "$1" --retained-only -W "${2:-1}" 2>/dev/null) || rc=$?
  # 27 = the -W timeout: the normal end.
  [ "$rc" -eq 0 ] || [ "$rc" -eq 27 ] || ep_die "mosquitto_sub on $1 failed ($rc)"
  [ -z "$out" ] || printf '%s\n' "$out" | sort
}

# ep_loc_parents: the retained parent assignments, "id payload" per node.
ep_loc_parents() {
  ep_mqtt_retained "$EP_LOC_TOPIC/+/parent" | sed -E "s|^$EP_LOC_TOPIC/([^/]+)/parent |\\1 |"
}

# ep_mqtt_record FILE FILTER...: a background subscriber writing
# "unix_time.ns topic payload" per message, until the test ends (it
# reconnects after a broker restart); its pid in MQTT_REC_PID.
ep_mqtt_record() {
  local f=$1 t=()
  shift
  while [ $# -gt 0 ]; do
    t+=(-t "$1")
    shift
  done
  "${EP_LOC_NSX[@]}" mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -q 1 "${t[@]}" -F '%U %t %p' \
    >"$f" 2>/dev/null &
  MQTT_REC_PID=$!
  ep_cleanup_push "kill $MQTT_REC_PID"
}

# --- the coordinator -----------------------------------------------------------

ep_coord_start() { # ARGS... (after --broker and --locality)
  EP_COORD_COUNT=$((EP_COORD_COUNT + 1))
  COORD_LOG=$EP_TMP/coordinator.$EP_COORD_COUNT.log
  "${EP_LOC_NSX[@]}" "$EP_BUILD_DIR/coordinator/edgepull-coordinator" --broker "127.0.0.1:$MQTT_PORT" \
    --locality "$EP_LOC" --gateway "${EP_GATEWAY_ID:-gw}" "$@" >"$COORD_LOG" 2>&1 &
  COORD_PID=$!
  ep_cleanup_push "ep_stop_pid $COORD_PID 5"
  EP_LOGS+=("$COORD_LOG")
  ep_log "edgepull-coordinator pid $COORD_PID, log $COORD_LOG"
}

ep_coord_stop() { # exit status of the coordinator
  local rc=0
  ep_stop_pid "$COORD_PID" 15 || rc=$?
  return "$rc"
}

# --- nodes ---------------------------------------------------------------------

# ep_peer_tls_args ID: sets EP_PEER_TLS_ARGS to node ID's peer TLS flags,
# making the locality's CA and ID's certificate when missing; with
# EP_PEER_TLS=off, --peer-insecure. Nothing for an edgepulld that predates
# peer TLS (a benchmark of an older build).
EP_PEER_TLS_KNOWN=
ep_peer_tls_args() { # ID
  local id=$1 dir=$EP_TMP/pki/$EP_LOC ctl=$EP_BUILD_DIR/ctl/edgepullctl
  EP_PEER_TLS_ARGS=()
  if [ -z "$EP_PEER_TLS_KNOWN" ]; then
    local help
    help=$("$EP_BUILD_DIR/plugin/edgepulld" --help 2>&1 || true)
    EP_PEER_TLS_KNOWN=no
    [[ $help != *--peer-cert* ]] || EP_PEER_TLS_KNOWN=yes
  fi
  [ "$EP_PEER_TLS_KNOWN" = yes ] || return 0
  if [ "${EP_PEER_TLS:-on}" = off ]; then
    EP_PEER_TLS_ARGS=(--peer-insecure)
    return 0
  fi
  if [ ! -f "$dir/ca.crt" ]; then
    { mkdir -p "$dir" && "$ctl" ca init --dir "$dir" >/dev/null; } || ep_die "edgepullctl ca init failed"
  fi
  if [ ! -f "$dir/$id.crt" ]; then
    "$ctl" ca issue "$id" --dir "$dir" >/dev/null || ep_die "edgepullctl ca issue $id failed"
  fi
  EP_PEER_TLS_ARGS=(--peer-ca "$dir/ca.crt" --peer-cert "$dir/$id.crt" --peer-key "$dir/$id.key")
}

# ep_node_start ID ARGS...: edgepulld as node ID of the locality, its peer
# endpoint on a port of its own (advertised; on EP_NODE_PEER_ADDR, default
# 127.0.0.1), broker EP_NODE_BROKER (default 127.0.0.1:MQTT_PORT). A node
# started before keeps its ports and state dir (a restart).
ep_node_start() {
  local id=$1
  shift
  EP_STATE=${NODE_STATE[$id]:-}
  EP_PORT=${NODE_PORT[$id]:-}
  NODE_PEER[$id]=${NODE_PEER[$id]:-$(ep_free_port)}
  ep_peer_tls_args "$id"
  ep_start_edgepulld --broker "${EP_NODE_BROKER:-127.0.0.1:$MQTT_PORT}" --locality "$EP_LOC" \
    --node-id "$id" --peer-listen "${EP_NODE_PEER_ADDR:-127.0.0.1}:${NODE_PEER[$id]}" \
    "${EP_PEER_TLS_ARGS[@]}" "$@"
  NODE_PID[$id]=$EP_PID
  NODE_PORT[$id]=$EP_PORT
  NODE_STATE[$id]=$EP_STATE
  # shellcheck disable=SC2034,SC2153 # for the callers; EP_LOG is set by ep_start_edgepulld
  NODE_LOG[$id]=$EP_LOG
  # shellcheck disable=SC2034
  NODE_URL[$id]=$EP_URL
  case " ${NODE_IDS[*]} " in *" $id "*) ;; *) NODE_IDS+=("$id") ;; esac
}

ep_node_kill() { # ID: kill -9 (the socket closes, the broker fires the Will)
  kill -KILL "${NODE_PID[$1]}"
  wait "${NODE_PID[$1]}" 2>/dev/null || true
}

ep_node_stop() { # ID: SIGTERM; returns the exit status
  local rc=0
  ep_stop_pid "${NODE_PID[$1]}" 15 || rc=$?
  return "$rc"
}

# ep_node_ctl ID ARGS...: edgepullctl on node ID's own index.
ep_node_ctl() {
  local id=$1
  shift
  ep_timeout 30 "$EP_BUILD_DIR/ctl/edgepullctl" --state-dir "${NODE_STATE[$id]}" "$@"
}

# The complete blobs in node ID's store, as sorted digests.
ep_node_blobs() { # ID
  local f
  for f in "${NODE_STATE[$1]}"/blobs/sha256/*; do
    [ -f "$f" ] && echo "sha256:${f##*/}"
  done | sort
}

# "id parent epoch online last_seen" per node as node ID's index has it
# (parent "-" for none), sorted by id.
ep_node_view() { # ID
  ep_node_ctl "$1" nodes --json 2>/dev/null |
    jq -r '.nodes[] | "\(.id) \(.parent // "-") \(.epoch) \(.online) \(.last_seen)"' | sort
}

# "id parent epoch" per node from the retained assignments (the broker's
# truth), sorted; parent "-" for the root.
ep_loc_parent_view() {
  ep_loc_parents | while read -r id payload; do
    jq -r --arg id "$id" '"\($id) \(.parent // "-") \(.epoch)"' <<<"$payload"
  done | sort
}

# ep_loc_tree_check K ROOT < "id parent ..." lines: empty output when the
# links form one tree rooted at ROOT with fan-out <= K, else the problems.
ep_loc_tree_check() {
  awk -v k="$1" -v root="$2" '
    { par[$1] = $2; if ($2 != "-") kids[$2]++ }
    END {
      if (!(root in par)) print "root " root " has no assignment"
      else if (par[root] != "-") print "root " root " has parent " par[root]
      for (n in par) {
        if (kids[n] > k) print n " has " kids[n] " children (fan-out " k ")"
        if (n != root && par[n] == "-") print n " has no parent"
        c = n
        for (i = 0; i <= length(par) && c != root; i++) {
          if (c == "-") { print n " does not reach " root; break }
          if (!(c in par)) { print n ": ancestor " c " has no assignment"; break }
          c = par[c]
        }
        if (c != root && i > length(par)) print n " does not reach " root " (cycle)"
      }
    }'
}
