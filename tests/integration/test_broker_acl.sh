#!/usr/bin/env bash
# The broker configuration in contrib/mosquitto, with a real mosquitto:
#  - gateway.conf (adapted to a temp dir and a free loopback port) starts;
#  - the ACL made by mkacl (sections for site1 and site2 on one broker) lets
#    a node write only its own state/inventory/delta/report and deploy
#    progress, never another node's topics nor any parent nor a deploy;
#    only `coordinator@site1` writes site1's parents; only `deployer@site1`
#    writes its deploys (and reads progress); nothing crosses into site2
#    (test_broker_acl_multi.sh covers the many-localities broker in full);
#    anonymous and wrong passwords are refused;
#  - bridge.conf carries a locality's topics to a second ("cloud") broker
#    whose own ACL (the same mkacl output) lets the bridge user write only
#    its locality;
#  - edgepull-coordinator, authenticated as `coordinator`, assigns parents
#    through that ACL, moves only the orphans when a node's state goes
#    offline, and changes nothing when restarted.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/broker_acl.sh"
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
# Usernames are NODE@LOCALITY and ROLE@LOCALITY (contrib/mosquitto/mkacl);
# the helpers below take the short name for site1 ("n1" is n1@site1) and
# the password is pw-<full name>.
touch "$D/passwd"
chmod 600 "$D/passwd"
for u in n1 n2 n3 gw coordinator deployer bridge; do
  ep_timeout 10 mosquitto_passwd -b "$D/passwd" "$u@$LOC" "pw-$u@$LOC"
done
for u in n1 deployer; do
  ep_timeout 10 mosquitto_passwd -b "$D/passwd" "$u@site2" "pw-$u@site2"
done
{
  "$CONTRIB/mkacl" "$LOC" n1 n2 n3 gw
  "$CONTRIB/mkacl" site2 n1
} >"$D/acl"
ep_broker_gateway_conf "$PORT" "$D/passwd" "$D/acl" "$D/data" "$D/gateway.conf"
grep -q "^listener $PORT 127.0.0.1" "$D/gateway.conf" || ep_die "gateway.conf: listener line not adapted"
grep -q '^allow_anonymous false' "$D/gateway.conf" || ep_die "gateway.conf allows anonymous clients"
grep -q '^persistence true' "$D/gateway.conf" || ep_die "gateway.conf: persistence is off"

# The bridge to the cloud broker, adapted: plain TCP to loopback, as the
# user bridge@site1. The cloud broker uses the same password file and ACL.
sed -e "s|^address .*|address 127.0.0.1:$CLOUD_PORT|" \
  -e '/^bridge_cafile/d' -e '/^bridge_insecure/d' \
  -e "s|^remote_password .*|remote_password pw-bridge@$LOC|" \
  "$CONTRIB/bridge.conf" >"$D/bridge.conf"
grep -q "^remote_username bridge@$LOC\$" "$D/bridge.conf" || ep_die "bridge.conf: not bridge@$LOC"
printf 'listener %s 127.0.0.1\nallow_anonymous false\npassword_file %s\nacl_file %s\nuser %s\n' \
  "$CLOUD_PORT" "$D/passwd" "$D/acl" "$(id -un)" >"$D/cloud.conf"

ep_broker_start "$D/cloud.conf" "$D/cloud.log" "$CLOUD_PORT"
cat "$D/gateway.conf" "$D/bridge.conf" >"$D/gateway+bridge.conf"
ep_broker_start "$D/gateway+bridge.conf" "$D/gateway.log" "$PORT"
ep_pass "gateway.conf (with bridge.conf) starts"

full() { # USER: n1 -> n1@site1; n1@site2 stays
  case $1 in
  *@*) echo "$1" ;;
  *) echo "$1@$LOC" ;;
  esac
}
pub() { # USER TOPIC PAYLOAD [PORT]: exit status of mosquitto_pub (retained, QoS 1)
  local u
  u=$(full "$1")
  ep_timeout 10 mosquitto_pub -h 127.0.0.1 -p "${4:-$PORT}" -u "$u" -P "pw-$u" -q 1 -r -t "$2" \
    -m "$3" 2>/dev/null
}
# The retained message of TOPIC as USER sees it ("" when none within 2 s;
# mosquitto_sub exits 27 on that timeout). Any other failure (refused
# credentials) is fatal, so an "absent" can never come from a login error.
retained() { # USER TOPIC [PORT]
  local port=${3:-$PORT} u rc=0
  u=$(full "$1")
  local auth=(-u "$u" -P "pw-$u")
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
  quiet ep_timeout 10 mosquitto_pub -h 127.0.0.1 -p "$PORT" -u "n1@$LOC" -P wrong -t "$T/n1/state" -m x
ep_assert_not "the bare node id is no username" \
  quiet ep_timeout 10 mosquitto_pub -h 127.0.0.1 -p "$PORT" -u n1 -P "pw-n1@$LOC" -t "$T/n1/state" -m x

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
T2=edgepull/v1/site2/node
pub n1 "$T2/n1/state" "$(state n1 online)" || true
ep_assert_eq "" "$(retained n1@site2 "$T2/n1/state")" \
  "node cannot write its own id's state in another locality"
pub n1@site2 "$T2/n1/state" "$(state n1 online)"
ep_assert_eq "" "$(retained n1 "$T2/n1/state")" "node cannot read another locality"
ep_assert_match '"id":"n1"' "$(retained n1@site2 "$T2/n1/state")" \
  "the same node id in site2 writes and reads its own locality"
pub n1@site2 "$T2/n1/state" ''

# --- the coordinator -------------------------------------------------------
pub coordinator "$T/n1/parent" '{"v":1,"id":"n1","parent":null,"epoch":1}'
ep_assert_eq '{"v":1,"id":"n1","parent":null,"epoch":1}' "$(retained n1 "$T/n1/parent")" \
  "coordinator writes parents, nodes read them"
pub coordinator "$T/n1/parent" '' # clear
ep_assert_eq "" "$(retained n1 "$T/n1/parent")" "coordinator clears a retained parent"
pub coordinator "$T/n3/state" "$(state n3 online)" || true
ep_assert_eq "" "$(retained n1 "$T/n3/state")" "coordinator cannot write a node's state"
pub coordinator "$T2/n1/parent" '{"forged":1}' || true
ep_assert_eq "" "$(retained n1@site2 "$T2/n1/parent")" \
  "coordinator cannot write another locality's parents"
# The gateway's id: the coordinator's alone (roles are configured, not claimed).
G=edgepull/v1/$LOC/coord/gateway
pub n1 "$G" '{"v":1,"id":"n1"}' || true
ep_assert_eq "" "$(retained coordinator "$G")" "node cannot name the gateway"
pub deployer "$G" '{"v":1,"id":"n1"}' || true
ep_assert_eq "" "$(retained coordinator "$G")" "deployer cannot name the gateway"
pub coordinator "$G" '{"v":1,"id":"gw"}'
ep_assert_eq '{"v":1,"id":"gw"}' "$(retained n1 "$G")" "coordinator names the gateway, nodes read it"
pub coordinator "edgepull/v1/site2/coord/gateway" '{"v":1,"id":"n1"}' || true
ep_assert_eq "" "$(retained n1@site2 "edgepull/v1/site2/coord/gateway")" \
  "coordinator cannot name another locality's gateway"
pub coordinator "$G" ''

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
pub deployer "edgepull/v1/site2/deploy" '{"forged":1}' || true
ep_assert_eq "" "$(retained n1@site2 "edgepull/v1/site2/deploy")" \
  "deployer cannot deploy to another locality"
pub deployer "$DP" ''

# --- the bridge ------------------------------------------------------------
got=""
for ((i = 0; i < 20; i++)); do
  got=$(retained deployer "$T/n1/state" "$CLOUD_PORT")
  [ -n "$got" ] && break
  sleep 0.5
done
ep_assert_match '"id":"n1"' "$got" "bridge carries the locality's retained state to the cloud"
pub deployer "edgepull/v1/$LOC/deploy" '{"deploy":1}' "$CLOUD_PORT"
got=""
for ((i = 0; i < 20; i++)); do
  got=$(retained n2 "edgepull/v1/$LOC/deploy")
  [ -n "$got" ] && break
  sleep 0.5
done
ep_assert_eq '{"deploy":1}' "$got" "bridge carries cloud messages down to the locality"
pub deployer@site2 "edgepull/v1/site2/deploy" x "$CLOUD_PORT"
sleep 1
ep_assert_eq "" "$(retained n1@site2 "edgepull/v1/site2/deploy")" "bridge carries only its own locality"
ep_assert_eq x "$(retained n1@site2 "edgepull/v1/site2/deploy" "$CLOUD_PORT")" \
  "(the cloud broker holds site2's deploy)"

# --- edgepull-coordinator through this ACL -----------------------------------
if [ ! -x "$COORD" ]; then
  ep_fail "edgepull-coordinator not built ($COORD)"
  ep_finish
fi
printf 'pw-coordinator@%s\n' "$LOC" >"$D/coord.pw"
start_coord() { # LOG
  "$COORD" --broker "127.0.0.1:$PORT" --locality "$LOC" --gateway gw --topology chain \
    --username "coordinator@$LOC" \
    --password-file "$D/coord.pw" >"$1" 2>&1 &
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
# n2 claims the gateway role in its own state: ignored.
pub n2 "$T/n2/state" "$(state n2 online true)"
start_coord "$D/coord1.log"
ep_assert_match '"parent":null' "$(wait_parent gw 'null')" "coordinator makes the gateway the root"
ep_assert_eq '{"v":1,"id":"gw"}' "$(retained n1 "$G")" "coordinator publishes its --gateway"
ep_assert_match '"parent":"gw"' "$(wait_parent n1 '"gw"')" "n1 gets the gateway as parent"
ep_assert_match '"parent":"n1"' "$(wait_parent n2 '"n1"')" "n2 is chained below n1"
ep_assert_match 'n2 claims the gateway role in its state: ignored, the gateway is gw' \
  "$(cat "$D/coord1.log")" "the coordinator ignores, and logs, a claimed gateway role"
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
