#!/usr/bin/env bash
# One mosquitto serving two localities (contrib/mosquitto/README.md, "many
# localities on one broker"): gateway.conf with an ACL made by
#   mkacl site1 gw n1; mkacl site2 gw n1
# — the same node ids in both. Real daemons: an edgepulld per (locality,
# node) as NODE@LOCALITY, a coordinator per locality as coordinator@LOC.
# Shown:
#  - every daemon joins with its per-locality username, no code change;
#  - each coordinator assigns parents in its own locality only;
#  - a node of site1 cannot write nor read under site2, even under its own
#    node id (the leak of the old `edgepull/v1/+/node/%u/...` pattern), so
#    it cannot forge site2's states, parents or deploys;
#  - coordinator@site1 cannot write site2's parents nor name its gateway.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/broker_acl.sh"
. "$(dirname "$0")/../lib/locality.sh" # ep_peer_tls_args
ep_init test_broker_acl_multi 240
ep_require_cmd mosquitto mosquitto_pub mosquitto_sub mosquitto_passwd jq

CONTRIB=$EP_SOURCE_DIR/contrib/mosquitto
D=$EP_TMP
PORT=$(ep_free_port)

# --- the broker ----------------------------------------------------------
touch "$D/passwd"
chmod 600 "$D/passwd"
for loc in site1 site2; do
  for u in gw n1 coordinator deployer; do
    ep_timeout 10 mosquitto_passwd -b "$D/passwd" "$u@$loc" "pw-$u@$loc"
    printf 'pw-%s@%s\n' "$u" "$loc" >"$D/$u@$loc.pw"
  done
done
chmod 600 "$D"/*.pw
{
  "$CONTRIB/mkacl" site1 gw n1
  "$CONTRIB/mkacl" site2 gw n1
} >"$D/acl"
ep_broker_gateway_conf "$PORT" "$D/passwd" "$D/acl" "$D/data" "$D/broker.conf"
ep_broker_start "$D/broker.conf" "$D/broker.log" "$PORT"

pub() { # USER TOPIC PAYLOAD: retained, QoS 1 (a denied publish still exits 0)
  ep_timeout 10 mosquitto_pub -h 127.0.0.1 -p "$PORT" -u "$1" -P "pw-$1" -q 1 -r -t "$2" -m "$3" \
    2>/dev/null
}
retained() { # USER TOPIC [WAIT_S]: the retained payload as USER sees it, "" when none
  local rc=0
  ep_timeout 15 mosquitto_sub -h 127.0.0.1 -p "$PORT" -u "$1" -P "pw-$1" -t "$2" -C 1 \
    -W "${3:-2}" 2>"$D/sub.err" || rc=$?
  [ "$rc" -eq 0 ] || [ "$rc" -eq 27 ] || ep_die "mosquitto_sub as $1 on $2 failed ($rc): $(cat "$D/sub.err")"
}
wait_retained() { # USER TOPIC REGEX: until the retained payload matches (10 s)
  local got="" i
  for ((i = 0; i < 20; i++)); do
    got=$(retained "$1" "$2" 1)
    [[ $got =~ $3 ]] && break
    sleep 0.5
  done
  echo "$got"
}

# --- the daemons -----------------------------------------------------------
start_node() { # LOC ID [--gateway]
  local state port
  state=$(ep_tmpdir "$2-$1")
  port=$(ep_free_port)
  EP_LOC=$1 ep_peer_tls_args "$2"
  "$EP_BUILD_DIR/plugin/edgepulld" --state-dir "$state" --listen "127.0.0.1:$port" \
    "${EP_PEER_TLS_ARGS[@]}" \
    --peer-listen "127.0.0.1:$(ep_free_port)" --broker "127.0.0.1:$PORT" --locality "$1" \
    --node-id "$2" --broker-username "$2@$1" --broker-password-file "$D/$2@$1.pw" \
    "${@:3}" >"$D/$2-$1.log" 2>&1 &
  ep_cleanup_push "ep_stop_pid $! 10"
  EP_LOGS+=("$D/$2-$1.log")
}
start_coord() { # LOC
  "$EP_BUILD_DIR/coordinator/edgepull-coordinator" --broker "127.0.0.1:$PORT" --locality "$1" \
    --gateway gw \
    --topology chain --username "coordinator@$1" --password-file "$D/coordinator@$1.pw" \
    >"$D/coord-$1.log" 2>&1 &
  ep_cleanup_push "ep_stop_pid $! 10"
  EP_LOGS+=("$D/coord-$1.log")
}
for loc in site1 site2; do
  start_node "$loc" gw --gateway
  start_node "$loc" n1
  start_coord "$loc"
done

for loc in site1 site2; do
  T=edgepull/v1/$loc/node
  for n in gw n1; do
    st=$(wait_retained "coordinator@$loc" "$T/$n/state" '"status":"online"')
    ep_assert_eq online "$(printf '%s' "$st" | jq -r .status 2>/dev/null)" \
      "$n@$loc joined $loc with its per-locality username"
  done
  ep_assert_match '"parent":null' "$(wait_retained "n1@$loc" "$T/gw/parent" '"parent":null')" \
    "coordinator@$loc makes $loc's gateway the root"
  ep_assert_match '"parent":"gw"' "$(wait_retained "n1@$loc" "$T/n1/parent" '"parent":"gw"')" \
    "coordinator@$loc makes gw the parent of $loc's n1"
done

# --- nothing crosses ---------------------------------------------------------
T1=edgepull/v1/site1/node
T2=edgepull/v1/site2/node
# Everything site2's n1 state topic carries while site1's n1 forges it: the
# retained state, then whatever arrives live (a forged message that got
# through would be delivered here even if the real node's next heartbeat,
# 30 s by default, overwrote it later — so watch the stream, not one value).
ep_timeout 15 mosquitto_sub -h 127.0.0.1 -p "$PORT" -u n1@site2 -P pw-n1@site2 -t "$T2/n1/state" \
  -W 4 >"$D/watch.out" 2>/dev/null &
watch_pid=$!
sleep 1
pub n1@site1 "$T2/n1/state" '{"v":1,"id":"n1","status":"offline","forged":1}' || true
pub n1@site1 "$T2/n9/state" '{"v":1,"id":"n9","status":"online","addr":"127.0.0.9","gateway":true}' ||
  true
wait "$watch_pid" || true
ep_assert_match '"status":"online"' "$(cat "$D/watch.out")" \
  "(site2's n1 state topic still carries its online state)"
ep_assert_eq 0 "$(grep -c forged "$D/watch.out" || true)" \
  "n1@site1 cannot overwrite site2's n1 state (same node id)"
ep_assert_eq "" "$(retained coordinator@site2 "$T2/n9/state")" \
  "n1@site1 cannot add a node (or a gateway) to site2"
pub n1@site1 "$T2/n1/parent" '{"forged":1}' || true
pub coordinator@site1 "$T2/n1/parent" '{"forged":2}' || true
ep_assert_match '"parent":"gw"' "$(retained n1@site2 "$T2/n1/parent")" \
  "neither site1's node nor its coordinator can write site2's parents"
pub n1@site1 "edgepull/v1/site2/coord/gateway" '{"v":1,"id":"n1"}' || true
pub coordinator@site1 "edgepull/v1/site2/coord/gateway" '{"v":1,"id":"n1"}' || true
ep_assert_eq '{"v":1,"id":"gw"}' "$(retained n1@site2 "edgepull/v1/site2/coord/gateway")" \
  "neither site1's node nor its coordinator can name site2's gateway"
pub n1@site1 "edgepull/v1/site2/deploy" '{"forged":1}' || true
pub deployer@site1 "edgepull/v1/site2/deploy" '{"forged":1}' || true
ep_assert_eq "" "$(retained n1@site2 "edgepull/v1/site2/deploy")" \
  "nobody of site1 can send site2 a deploy"
ep_assert_eq "" "$(retained n1@site1 "$T2/n1/state")" "n1@site1 reads nothing of site2"
ep_assert_eq "" "$(retained n1@site1 "$T2/#")" "n1@site1 reads nothing of site2 (wildcard)"
ep_assert_match '"id":"n1"' "$(retained n1@site1 "$T1/n1/state")" "n1@site1 reads its own locality"
ep_assert_eq "" "$(retained deployer@site1 "$T2/n1/state")" "deployer@site1 reads nothing of site2"
ep_assert_match '"parent":"gw"' "$(retained n1@site1 "$T1/n1/parent")" \
  "site1's assignments are unchanged"
ep_assert_eq 0 "$(grep -c 'edgepull/v1/site2' "$D/coord-site1.log" || true)" \
  "coordinator@site1 never handled a site2 topic"
grep -q "Denied PUBLISH from .*'edgepull/v1/site2/node/n1/state'" "$D/broker.log" &&
  ep_pass "the broker logged the denied cross-locality publish" ||
  ep_fail "no 'Denied PUBLISH' for the cross-locality state in the broker log"
ep_check_sanitizers "$D"/*.log
ep_finish
