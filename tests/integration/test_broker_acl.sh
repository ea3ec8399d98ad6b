#!/usr/bin/env bash
# The broker configuration in contrib/mosquitto, with a real mosquitto:
#  - gateway.conf (adapted to a temp dir and a free loopback port) starts;
#  - the ACL lets a node write only its own state/inventory/delta/report and
#    deploy progress, never another node's topics nor any parent nor a
#    deploy; only `coordinator` writes parents; only `deployer` writes
#    deploys (and reads progress);
#    anonymous and wrong passwords are refused;
#  - bridge.conf carries a locality's topics to a second ("cloud") broker;
#  - edgepull-coordinator, authenticated as `coordinator`, assigns parents
#    through that ACL, moves only the orphans when a node's state goes
#    offline, and changes nothing when restarted.
. "$(dirname "$0")/../lib/common.sh"
ep_init test_broker_acl 240

for b in mosquitto mosquitto_pub mosquitto_sub mosquitto_passwd; do
  command -v "$b" >/dev/null 2>&1 || PATH=$PATH:/usr/sbin
  command -v "$b" >/dev/null 2>&1 || {
    echo "$b not installed" >&2
    exit 77
  }
done
COORD=$EP_BUILD_DIR/coordinator/edgepull-coordinator
LOC=site1
T=edgepull/v1/$LOC/node
CONTRIB=$EP_SOURCE_DIR/contrib/mosquitto
D=$EP_TMP
PORT=$(ep_free_port)
CLOUD_PORT=$(ep_free_port)

# --- the gateway broker --------------------------------------------------
touch "$D/passwd"
chmod 600 "$D/passwd"
for u in n1:pw-n1 n2:pw-n2 n3:pw-n3 gw:pw-gw coordinator:pw-coordinator deployer:pw-deployer; do
  ep_timeout 10 mosquitto_passwd -b "$D/passwd" "${u%%:*}" "${u#*:}"
done
cp "$CONTRIB/acl" "$D/acl"
mkdir -p "$D/data"
sed -e "s|^listener 1883 .*|listener $PORT 127.0.0.1|" \
  -e "s|^password_file .*|password_file $D/passwd|" \
  -e "s|^acl_file .*|acl_file $D/acl|" \
  -e "s|^persistence_location .*|persistence_location $D/data/|" \
  "$CONTRIB/gateway.conf" >"$D/gateway.conf"
# Started as root, mosquitto would switch to the `mosquitto` user, who cannot
# read the test's files: stay who we are.
printf 'user %s\n' "$(id -un)" >>"$D/gateway.conf"
grep -q "^listener $PORT 127.0.0.1" "$D/gateway.conf" || ep_die "gateway.conf: listener line not adapted"
grep -q '^allow_anonymous false' "$D/gateway.conf" || ep_die "gateway.conf allows anonymous clients"
grep -q '^persistence true' "$D/gateway.conf" || ep_die "gateway.conf: persistence is off"

# The bridge to the cloud broker, adapted: plain TCP to loopback, anonymous.
sed -e "s|^address .*|address 127.0.0.1:$CLOUD_PORT|" \
  -e '/^bridge_cafile/d' -e '/^bridge_insecure/d' \
  -e '/^remote_username/d' -e '/^remote_password/d' \
  "$CONTRIB/bridge.conf" >"$D/bridge.conf"
printf 'listener %s 127.0.0.1\nallow_anonymous true\nuser %s\n' "$CLOUD_PORT" "$(id -un)" \
  >"$D/cloud.conf"

start_broker() { # CONF LOG PORT -> sets BROKER_PID
  mosquitto -c "$1" -v >"$2" 2>&1 &
  BROKER_PID=$!
  EP_LOGS+=("$2")
  local i
  for ((i = 0; i < 100; i++)); do
    ss -Hltn "sport = :$3" | grep -q . && return 0
    kill -0 "$BROKER_PID" 2>/dev/null || ep_die "mosquitto -c $1 exited: $(tail -n 5 "$2")"
    sleep 0.1
  done
  ep_die "mosquitto -c $1 does not listen on $3"
}
start_broker "$D/cloud.conf" "$D/cloud.log" "$CLOUD_PORT"
CLOUD_PID=$BROKER_PID
ep_cleanup_push "kill $CLOUD_PID"
cat "$D/gateway.conf" "$D/bridge.conf" >"$D/gateway+bridge.conf"
start_broker "$D/gateway+bridge.conf" "$D/gateway.log" "$PORT"
GW_PID=$BROKER_PID
ep_cleanup_push "kill $GW_PID"
ep_pass "gateway.conf (with bridge.conf) starts"

pub() { # USER TOPIC PAYLOAD [retain]: exit status of mosquitto_pub
  ep_timeout 10 mosquitto_pub -h 127.0.0.1 -p "$PORT" -u "$1" -P "pw-$1" -q 1 -r -t "$2" -m "$3" \
    2>/dev/null
}
# The retained message of TOPIC as USER sees it ("" when none within 2 s;
# mosquitto_sub exits 27 on that timeout). Any other failure (refused
# credentials) is fatal, so an "absent" can never come from a login error.
retained() { # USER TOPIC [PORT]
  local port=${3:-$PORT} auth=(-u "$1" -P "pw-$1") rc=0
  [ "$1" = anon ] && auth=()
  ep_timeout 10 mosquitto_sub -h 127.0.0.1 -p "$port" "${auth[@]}" -t "$2" -C 1 -W 2 \
    2>"$D/sub.err" || rc=$?
  [ "$rc" -eq 0 ] || [ "$rc" -eq 27 ] || ep_die "mosquitto_sub as $1 on $2 failed ($rc): $(cat "$D/sub.err")"
}
state() { # ID STATUS [GATEWAY] [MBPS]
  printf '{"v":1,"id":"%s","status":"%s","addr":"127.0.0.%s","peer_port":5051,"arch":"amd64",' \
    "$1" "$2" "$((${#1} + 1))"
  printf '"link_mbps":%s,"free_bytes":1000,"version":"0.1.0","gateway":%s,"ts":%s}' \
    "${4:-100}" "${3:-false}" "$(date +%s)"
}

# --- authentication ------------------------------------------------------
quiet() { "$@" 2>/dev/null; }
ep_assert_not "anonymous client refused" \
  quiet ep_timeout 10 mosquitto_pub -h 127.0.0.1 -p "$PORT" -t "$T/n1/state" -m x
ep_assert_not "wrong password refused" \
  quiet ep_timeout 10 mosquitto_pub -h 127.0.0.1 -p "$PORT" -u n1 -P wrong -t "$T/n1/state" -m x

# --- what a node may write -----------------------------------------------
pub n1 "$T/n1/state" "$(state n1 online)"
ep_assert_match '"id":"n1"' "$(retained n2 "$T/n1/state")" "node writes its own state, others read it"
pub n1 "$T/n1/inventory" '{"v":1,"id":"n1"}'
ep_assert_eq '{"v":1,"id":"n1"}' "$(retained n2 "$T/n1/inventory")" "node writes its own inventory"
pub n1 "$T/n1/inventory/delta" '{"v":1,"id":"n1","d":1}'
ep_assert_eq '{"v":1,"id":"n1","d":1}' "$(retained n3 "$T/n1/inventory/delta")" \
  "node writes its own inventory delta"

pub n1 "$T/n2/state" "$(state n2 online)" || true
ep_assert_eq "" "$(retained coordinator "$T/n2/state")" "node cannot write another node's state"
pub n1 "$T/n2/inventory" '{"forged":1}' || true
ep_assert_eq "" "$(retained coordinator "$T/n2/inventory")" "node cannot write another node's inventory"
pub n1 "$T/n1/parent" '{"forged":1}' || true
ep_assert_eq "" "$(retained coordinator "$T/n1/parent")" "node cannot write its own parent"
pub n1 "$T/n2/parent" '{"forged":1}' || true
ep_assert_eq "" "$(retained coordinator "$T/n2/parent")" "node cannot write another node's parent"
pub n1 "edgepull/v1/$LOC/other" 'x' || true
ep_assert_eq "" "$(retained coordinator "edgepull/v1/$LOC/other")" "node cannot write other topics"
pub n1 "\$SYS/x" 'x' || true
pub n1 "elsewhere/x" 'x' || true
ep_assert_eq "" "$(retained coordinator "elsewhere/x")" "node cannot write outside edgepull/v1"

# --- the coordinator -------------------------------------------------------
pub coordinator "$T/n1/parent" '{"v":1,"id":"n1","parent":null,"epoch":1}'
ep_assert_eq '{"v":1,"id":"n1","parent":null,"epoch":1}' "$(retained n1 "$T/n1/parent")" \
  "coordinator writes parents, nodes read them"
pub coordinator "$T/n1/parent" '' # clear
ep_assert_eq "" "$(retained n1 "$T/n1/parent")" "coordinator clears a retained parent"
pub coordinator "$T/n3/state" "$(state n3 online)" || true
ep_assert_eq "" "$(retained n1 "$T/n3/state")" "coordinator cannot write a node's state"

# --- reports and deploys ---------------------------------------------------
DID=0123456789abcdef
DP=edgepull/v1/$LOC/deploy
pub n1 "$T/n1/report" '{"v":1,"id":"n1","r":1}'
ep_assert_eq '{"v":1,"id":"n1","r":1}' "$(retained coordinator "$T/n1/report")" \
  "node writes its own report, the coordinator reads it"
pub n1 "$T/n2/report" '{"forged":1}' || true
ep_assert_eq "" "$(retained coordinator "$T/n2/report")" "node cannot report under another id"
pub n1 "$DP/$DID/progress/n1" '{"v":1,"p":1}'
ep_assert_eq '{"v":1,"p":1}' "$(retained deployer "$DP/$DID/progress/n1")" \
  "node writes its own deploy progress, deployer reads it"
pub n1 "$DP/$DID/progress/n2" '{"forged":1}' || true
ep_assert_eq "" "$(retained deployer "$DP/$DID/progress/n2")" \
  "node cannot write another node's progress"
pub n1 "$DP" '{"forged":1}' || true
ep_assert_eq "" "$(retained coordinator "$DP")" "node cannot send a deploy"
pub deployer "$DP" '{"v":1,"d":1}'
ep_assert_eq '{"v":1,"d":1}' "$(retained n2 "$DP")" "deployer sends a deploy, nodes read it"
ep_assert_match '"id":"n1"' "$(retained deployer "$T/n1/state")" "deployer reads node states"
pub deployer "$DP/$DID/progress/n3" '{"forged":1}' || true
ep_assert_eq "" "$(retained coordinator "$DP/$DID/progress/n3")" "deployer cannot write progress"
pub deployer "$T/n3/state" "$(state n3 online)" || true
ep_assert_eq "" "$(retained coordinator "$T/n3/state")" "deployer cannot write a node's state"
for t in "$T/n1/report" "$DP/$DID/progress/n1"; do pub n1 "$t" ''; done
pub deployer "$DP" ''

# --- the bridge ------------------------------------------------------------
got=""
for ((i = 0; i < 20; i++)); do
  got=$(retained anon "$T/n1/state" "$CLOUD_PORT")
  [ -n "$got" ] && break
  sleep 0.5
done
ep_assert_match '"id":"n1"' "$got" "bridge carries the locality's retained state to the cloud"
ep_timeout 10 mosquitto_pub -h 127.0.0.1 -p "$CLOUD_PORT" -q 1 -r -t "edgepull/v1/$LOC/deploy" \
  -m '{"deploy":1}'
got=""
for ((i = 0; i < 20; i++)); do
  got=$(retained n2 "edgepull/v1/$LOC/deploy")
  [ -n "$got" ] && break
  sleep 0.5
done
ep_assert_eq '{"deploy":1}' "$got" "bridge carries cloud messages down to the locality"
ep_timeout 10 mosquitto_pub -h 127.0.0.1 -p "$CLOUD_PORT" -q 1 -r -t "edgepull/v1/other/deploy" -m x
sleep 1
ep_assert_eq "" "$(retained n2 "edgepull/v1/other/deploy")" "bridge carries only its own locality"

# --- edgepull-coordinator through this ACL -----------------------------------
if [ ! -x "$COORD" ]; then
  ep_fail "edgepull-coordinator not built ($COORD)"
  ep_finish
fi
printf 'pw-coordinator\n' >"$D/coord.pw"
start_coord() { # LOG
  "$COORD" --broker "127.0.0.1:$PORT" --locality "$LOC" --topology chain --username coordinator \
    --password-file "$D/coord.pw" --keepalive 5 >"$1" 2>&1 &
  COORD_PID=$!
  EP_LOGS+=("$1")
  ep_cleanup_push "kill $COORD_PID"
}
wait_parent() { # ID REGEX: until the retained parent of ID matches
  local got="" i
  for ((i = 0; i < 40; i++)); do
    got=$(retained n1 "$T/$1/parent")
    [[ $got =~ $2 ]] && break
    sleep 0.25
  done
  echo "$got"
}
pub gw "$T/gw/state" "$(state gw online true 1000)"
pub n2 "$T/n2/state" "$(state n2 online)"
start_coord "$D/coord1.log"
ep_assert_match '"parent":null' "$(wait_parent gw 'null')" "coordinator makes the gateway the root"
ep_assert_match '"parent":"gw"' "$(wait_parent n1 '"gw"')" "n1 gets the gateway as parent"
ep_assert_match '"parent":"n1"' "$(wait_parent n2 '"n1"')" "n2 is chained below n1"
pub n3 "$T/n3/state" "$(state n3 online)"
ep_assert_match '"parent":"n2"' "$(wait_parent n3 '"n2"')" "a joining node goes to the end of the chain"
before=$(for n in gw n1 n2 n3; do retained n1 "$T/$n/parent"; done)

# Restart: the same assignments with the same epochs.
ep_assert "coordinator exits 0 on SIGTERM" ep_stop_pid "$COORD_PID" 15
start_coord "$D/coord2.log"
for ((i = 0; i < 40; i++)); do
  grep -q "recovered locality" "$D/coord2.log" && break
  sleep 0.25
done
ep_assert_match "0 assignments published" "$(grep "recovered locality" "$D/coord2.log")" \
  "restarted coordinator publishes nothing"
after=$(for n in gw n1 n2 n3; do retained n1 "$T/$n/parent"; done)
ep_assert_eq "$before" "$after" "assignments unchanged after a coordinator restart"

# n1 goes offline (as its Last Will would say): only n2 moves.
pub n1 "$T/n1/state" "$(state n1 offline)"
ep_assert_match '"parent":"gw"' "$(wait_parent n2 '"gw"')" "the orphan n2 moves to the gateway"
ep_assert_eq "" "$(retained n2 "$T/n1/parent")" "the lost node's parent is cleared"
ep_assert_eq "$(echo "$before" | sed -n 4p)" "$(retained n1 "$T/n3/parent")" "n3 did not move"
ep_assert_match 'n2: parent n1 -> gw \(epoch [0-9]+, reason: n1 lost\)' \
  "$(grep 'n2: parent' "$D/coord2.log")" "the move is logged with its reason"
# Hostile messages do not hurt it.
pub n1 "$T/n1/state" '{"v":1,"id":"n1","status":' || true
pub n1 "$T/n1/state" '{"v":9,"id":"n1","status":"online"}' || true
sleep 0.5
ep_assert "coordinator survives malformed states" kill -0 "$COORD_PID"
ep_assert "coordinator exits 0 on SIGINT" bash -c "kill -INT $COORD_PID"
ep_stop_pid "$COORD_PID" 15 || ep_fail "coordinator exit status $?"
if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error' "$D"/coord*.log; then
  ep_fail "sanitizer report in the coordinator logs"
else
  ep_pass "no sanitizer reports"
fi
ep_finish
