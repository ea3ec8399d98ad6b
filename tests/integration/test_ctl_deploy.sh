#!/usr/bin/env bash
# `edgepullctl deploy --wait --json` against a real mosquitto, with two fake
# nodes (a gateway and a node) played by mosquitto_pub:
#  - the retained states tell edgepullctl which nodes to expect; it sends the
#    deploy (caught by mosquitto_sub), the nodes report progress, and the
#    final report carries the wall time, the gateway's uplink bytes, bytes
#    per node, and exit 0 when both are done;
#  - a node that fails makes the report list its error and exit 1;
#  - a node that never finishes: exit 1 at --timeout, marked unfinished;
#  - a silent locality (nodes online, none answers) and an empty one end
#    after the 10 s answer window, not at --timeout, and say so;
#  - without --wait it prints the deploy id and exits 0.
. "$(dirname "$0")/../lib/common.sh"
ep_init test_ctl_deploy 180

for b in mosquitto mosquitto_pub mosquitto_sub; do
  command -v "$b" >/dev/null 2>&1 || PATH=$PATH:/usr/sbin
  command -v "$b" >/dev/null 2>&1 || {
    echo "$b not installed" >&2
    exit 77
  }
done
CTL=$EP_BUILD_DIR/ctl/edgepullctl
LOC=site1
D=$EP_TMP
PORT=$(ep_free_port)

printf 'listener %s 127.0.0.1\nallow_anonymous true\nuser %s\n' "$PORT" "$(id -un)" >"$D/m.conf"
mosquitto -c "$D/m.conf" >"$D/m.log" 2>&1 &
MPID=$!
ep_cleanup_push "kill $MPID"
EP_LOGS+=("$D/m.log")
for ((i = 0; i < 100; i++)); do
  ss -Hltn "sport = :$PORT" | grep -q . && break
  sleep 0.1
done
ss -Hltn "sport = :$PORT" | grep -q . || ep_die "mosquitto does not listen on $PORT"

pub() { # TOPIC PAYLOAD [-r]
  ep_timeout 10 mosquitto_pub -h 127.0.0.1 -p "$PORT" -q 1 -t "$1" -m "$2" ${3:-}
}
state() { # ID GATEWAY
  printf '{"v":1,"id":"%s","status":"online","addr":"127.0.0.1","peer_port":5051,' "$1"
  printf '"arch":"amd64","link_mbps":100,"free_bytes":1,"version":"t","gateway":%s,"ts":%s}' \
    "$2" "$(date +%s)"
}
progress() { # ID NODE STATE BLOBS_DONE BYTES_DONE UPLINK [ERROR]
  printf '{"v":1,"id":"%s","node":"%s","state":"%s","blobs_total":3,"blobs_done":%s,' \
    "$1" "$2" "$3" "$4"
  printf '"bytes_total":3000,"bytes_done":%s,"uplink_bytes":%s,"peer_bytes":0' "$5" "$6"
  [ -z "${7:-}" ] || printf ',"error":"%s"' "$7"
  printf ',"ts":%s}' "$(date +%s)"
}
pub "edgepull/v1/$LOC/node/gw/state" "$(state gw true)" -r
pub "edgepull/v1/$LOC/node/n1/state" "$(state n1 false)" -r
pub "edgepull/v1/$LOC/node/old/state" '{"v":1,"id":"old","status":"offline"}' -r

# Starts a deploy in the background; sets DEPLOY_ID, CTL_PID. OUT RC_FILE ARGS...
start_deploy() {
  local out=$1 rcf=$2
  shift 2
  rm -f "$D/deploy.msg"
  mosquitto_sub -h 127.0.0.1 -p "$PORT" -t "edgepull/v1/$LOC/deploy" -C 1 -W 20 \
    >"$D/deploy.msg" 2>/dev/null &
  local sub=$!
  sleep 0.5
  (
    rc=0
    "$CTL" deploy alpine:3 --wait --json --broker "127.0.0.1:$PORT" --locality "$LOC" \
      --config /dev/null "$@" >"$out" 2>"$out.err" || rc=$?
    echo "$rc" >"$rcf"
  ) &
  CTL_PID=$!
  wait "$sub" || ep_die "no deploy message reached the broker: $(cat "$out.err")"
  DEPLOY_ID=$(sed -n 's/.*"id":"\([0-9a-f]\{16\}\)".*/\1/p' "$D/deploy.msg")
  [ -n "$DEPLOY_ID" ] || ep_die "deploy message without an id: $(cat "$D/deploy.msg")"
  ep_assert_match '"image":"alpine:3"' "$(cat "$D/deploy.msg")" "the deploy names the image"
}
P=edgepull/v1/$LOC/deploy

# --- both nodes done --------------------------------------------------------
start_deploy "$D/ok.out" "$D/ok.rc" --platform linux/amd64 --import containerd
ep_assert_match '"platforms":\["linux/amd64"\]' "$(cat "$D/deploy.msg")" "platforms sent"
ep_assert_match '"import":"containerd"' "$(cat "$D/deploy.msg")" "import sent"
pub "$P/$DEPLOY_ID/progress/gw" "$(progress "$DEPLOY_ID" gw running 1 1000 1000)"
pub "$P/$DEPLOY_ID/progress/n1" "$(progress "$DEPLOY_ID" n1 running 0 500 0)"
pub "$P/ffffffffffffffff/progress/n1" "$(progress ffffffffffffffff n1 failed 0 0 0 other)"
pub "$P/$DEPLOY_ID/progress/n1" '{"v":1,"id":"garbage"}'
pub "$P/$DEPLOY_ID/progress/gw" "$(progress "$DEPLOY_ID" gw "done" 3 3000 3000)"
pub "$P/$DEPLOY_ID/progress/n1" "$(progress "$DEPLOY_ID" n1 "done" 3 3000 0)"
wait "$CTL_PID"
ep_assert_eq 0 "$(cat "$D/ok.rc")" "exit 0 when every node is done"
REPORT=$(tail -n 1 "$D/ok.out")
ep_assert_match '"event":"report"' "$REPORT" "the last line is the report"
ep_assert_match '"ok":true' "$REPORT" "report ok"
ep_assert_match '"uplink_bytes":3000' "$REPORT" "uplink bytes from the gateway"
ep_assert_match '"nodes_done":2,"nodes_total":2' "$REPORT" "two nodes of two, the offline one not expected"
ep_assert_match '"wall_s":' "$REPORT" "wall time"
ep_assert_match '"node":"n1","state":"done","bytes":3000' "$REPORT" "bytes per node"
ep_assert_eq 4 "$(grep -c '"event":"progress"' "$D/ok.out")" "one JSON line per progress message"

# --- a node fails -------------------------------------------------------------
start_deploy "$D/fail.out" "$D/fail.rc"
pub "$P/$DEPLOY_ID/progress/gw" "$(progress "$DEPLOY_ID" gw "done" 3 3000 3000)"
pub "$P/$DEPLOY_ID/progress/n1" "$(progress "$DEPLOY_ID" n1 failed 1 1000 0 'uplink down')"
wait "$CTL_PID"
ep_assert_eq 1 "$(cat "$D/fail.rc")" "exit 1 when a node failed"
REPORT=$(tail -n 1 "$D/fail.out")
ep_assert_match '"ok":false' "$REPORT" "report not ok"
ep_assert_match '"state":"failed","bytes":1000.*"error":"uplink down"' "$REPORT" "the failure and its error"

# --- a node never finishes -----------------------------------------------------
start_deploy "$D/slow.out" "$D/slow.rc" --timeout 3
pub "$P/$DEPLOY_ID/progress/gw" "$(progress "$DEPLOY_ID" gw "done" 3 3000 3000)"
wait "$CTL_PID"
ep_assert_eq 1 "$(cat "$D/slow.rc")" "exit 1 on timeout"
REPORT=$(tail -n 1 "$D/slow.out")
ep_assert_match '"timed_out":true' "$REPORT" "timed out"
ep_assert_match '"node":"n1","state":"unfinished"' "$REPORT" "the silent node is unfinished"

# --- nobody answers (issue 14 point 7) ---------------------------------------------
# Default --timeout (1800 s): the wait ends after edgepullctl's 10 s answer
# window instead, with a report and a message that say why; ep_timeout only
# bounds the test.
silent() { # OUT LOCALITY
  local rc=0
  ep_timeout 120 "$CTL" deploy alpine:3 --wait --json --broker "127.0.0.1:$PORT" --locality "$2" \
    --config /dev/null >"$1" 2>"$1.err" || rc=$?
  echo "$rc"
}
ep_assert_eq 1 "$(silent "$D/silent.out" "$LOC")" "a silent locality: exit 1"
REPORT=$(tail -n 1 "$D/silent.out")
ep_assert_match '"nodes_done":0,"nodes_total":2,"timed_out":false' "$REPORT" \
  "the two online nodes expected, not timed out"
ep_assert_match '"reason":"none of the 2 online nodes of locality site1 answered in 10 s' "$REPORT" \
  "the report says nobody answered"
ep_assert_match 'none of the 2 online nodes of locality site1 answered' "$(cat "$D/silent.out.err")" \
  "and so does stderr"
ep_assert_eq 1 "$(silent "$D/empty.out" empty1)" "an empty locality: exit 1"
REPORT=$(tail -n 1 "$D/empty.out")
ep_assert_match '"nodes_total":0,"timed_out":false' "$REPORT" "no node expected, not timed out"
ep_assert_match '"reason":"no node of locality empty1 is online, and none answered in 10 s' \
  "$REPORT" "the report says the locality is empty"
ep_assert_match 'no node of locality empty1 is online' "$(cat "$D/empty.out.err")" \
  "and so does stderr"

# --- without --wait ---------------------------------------------------------------
OUT=$(ep_timeout 20 "$CTL" deploy ghcr.io/org/app:1 --broker "127.0.0.1:$PORT" --locality "$LOC" \
  --config /dev/null)
ep_assert_match '^[0-9a-f]{16}$' "$OUT" "without --wait: the deploy id"
ep_assert_not "bad usage: exit 2" "$CTL" deploy --broker "127.0.0.1:$PORT" --locality "$LOC"
rc=0
"$CTL" deploy 'a b' --broker "127.0.0.1:$PORT" --locality "$LOC" 2>/dev/null || rc=$?
ep_assert_eq 2 "$rc" "an invalid image is a usage error"
rc=0
"$CTL" deploy alpine --platform amd64 --broker "127.0.0.1:$PORT" --locality "$LOC" \
  2>/dev/null || rc=$?
ep_assert_eq 2 "$rc" "an invalid platform is a usage error"
# The configuration file supplies broker and locality.
printf 'broker = 127.0.0.1:%s\nlocality = %s\n' "$PORT" "$LOC" >"$D/edgepulld.conf"
OUT=$(ep_timeout 20 "$CTL" deploy alpine --config "$D/edgepulld.conf")
ep_assert_match '^[0-9a-f]{16}$' "$OUT" "broker and locality from --config"
ep_finish
