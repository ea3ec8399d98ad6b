#!/usr/bin/env bash
# Issue 12 point 1, "roles are configured, not claimed": a rogue node with
# valid broker credentials cannot change what another node resolves or
# fetches. Real mosquitto with contrib/mosquitto's gateway.conf and an ACL
# made by mkacl; real daemons with default flags:
#   gw       edgepulld --gateway, the upstream registry mapped (the real image)
#   n1       edgepulld, resolves tags through the gateway
#   a-rogue  edgepulld --gateway with its own valid user a-rogue@site1, the
#            same registry name mapped to the attacker's registry, where the
#            same tag is another image; its id sorts before gw's (the old
#            rule took the first online node claiming the role)
#   the coordinator, --gateway gw
# The rogue also publishes with its own credentials: a coord/gateway naming
# itself, gw's state with the rogue's address, n1's parent pointing at it, and
# a state on its own topic in gw's name.
# Shown: the broker refuses the forgeries; the coordinator keeps gw as the
# root and logs the false claim; n1 marks only gw as the gateway, resolves
# the tag to the real image's digest and fetches its blobs, and the
# attacker's registry is never asked. A node without a broker user warns
# that it is insecure.
. "$(dirname "$0")/../lib/common.sh"
. "$EP_SOURCE_DIR/tests/lib/mkimage.sh"
. "$(dirname "$0")/../lib/broker_acl.sh"
. "$(dirname "$0")/../lib/locality.sh" # ep_peer_tls_args: every node its certificate
ep_init test_broker_acl_rogue 300
ep_require_cmd mosquitto mosquitto_pub mosquitto_sub mosquitto_passwd jq docker-registry skopeo

D=$EP_TMP
LOC=site1
T=edgepull/v1/$LOC/node
G=edgepull/v1/$LOC/coord/gateway
PORT=$(ep_free_port)
ACCEPT=(-H 'Accept: application/vnd.oci.image.manifest.v1+json'
  -H 'Accept: application/vnd.docker.distribution.manifest.v2+json')

# --- the real upstream and the attacker's registry: one name, two images ---
ep_start_registry
ep_mkimage "$D/real" 1.25 amd64 gzip:32K gzip:48K
ep_push_image "$D/real" 1.25 app
REAL=$EP_PUSHED_DIGEST
REAL_BLOBS=("${EP_PUSHED_BLOBS[@]}")
UP_HOST=$REGISTRY_HOST
UP_URL=$REGISTRY_URL
ep_start_registry
ep_mkimage "$D/evil" 1.25 amd64 gzip:32K
ep_push_image "$D/evil" 1.25 app
EVIL=$EP_PUSHED_DIGEST
EVIL_LOG=$REGISTRY_LOG
EVIL_URL=$REGISTRY_URL
evil_tag_gets() { grep -c 'GET /v2/app/manifests' "$EVIL_LOG" || true; }
EVIL_GETS=$(evil_tag_gets) # the push's own
[ "$REAL" != "$EVIL" ] || ep_die "the two images have the same digest"

# --- the broker, as contrib/mosquitto sets it up ----------------------------
touch "$D/passwd"
chmod 600 "$D/passwd"
for u in gw n1 a-rogue coordinator; do
  ep_timeout 10 mosquitto_passwd -b "$D/passwd" "$u@$LOC" "pw-$u@$LOC"
  printf 'pw-%s@%s\n' "$u" "$LOC" >"$D/$u.pw"
done
chmod 600 "$D"/*.pw
"$EP_SOURCE_DIR/contrib/mosquitto/mkacl" "$LOC" gw n1 a-rogue >"$D/acl"
ep_broker_gateway_conf "$PORT" "$D/passwd" "$D/acl" "$D/data" "$D/broker.conf"
ep_broker_start "$D/broker.conf" "$D/broker.log" "$PORT"

pub() { # USER TOPIC PAYLOAD: retained, QoS 1 (a denied publish still exits 0)
  ep_timeout 10 mosquitto_pub -h 127.0.0.1 -p "$PORT" -u "$1@$LOC" -P "pw-$1@$LOC" -q 1 -r \
    -t "$2" -m "$3" 2>/dev/null
}
retained() { # TOPIC: the retained payload as n1 sees it, "" when none
  local rc=0
  ep_timeout 15 mosquitto_sub -h 127.0.0.1 -p "$PORT" -u "n1@$LOC" -P "pw-n1@$LOC" -t "$1" -C 1 \
    -W 2 2>"$D/sub.err" || rc=$?
  [ "$rc" -eq 0 ] || [ "$rc" -eq 27 ] || ep_die "mosquitto_sub on $1 failed ($rc): $(cat "$D/sub.err")"
}

# --- the daemons, default flags ---------------------------------------------
declare -A URL PEER STATE LOG
start_node() { # ID ARGS...
  local id=$1
  shift
  EP_STATE='' EP_PORT=''
  PEER[$id]=$(ep_free_port)
  EP_LOC=$LOC ep_peer_tls_args "$id"
  ep_start_edgepulld "${EP_PEER_TLS_ARGS[@]}" --peer-listen "127.0.0.1:${PEER[$id]}" --broker "127.0.0.1:$PORT" \
    --locality "$LOC" --node-id "$id" --broker-username "$id@$LOC" \
    --broker-password-file "$D/$id.pw" "$@"
  URL[$id]=$EP_URL STATE[$id]=$EP_STATE LOG[$id]=$EP_LOG
}
ctl_nodes() { # ID: node ID's index as edgepullctl nodes --json
  ep_timeout 30 "$EP_BUILD_DIR/ctl/edgepullctl" --state-dir "${STATE[$1]}" nodes --json
}
wait_for() { # SECONDS CMD...: until CMD succeeds
  local i
  for ((i = 0; i < $1 * 4; i++)); do
    "${@:2}" && return 0
    sleep 0.25
  done
  return 1
}
gw_known() { # ID: ID's index knows gw online, and as the only gateway
  [ "$(ctl_nodes "$1" | jq -c '[.nodes[] | select(.gateway) | [.id, .online]]')" = '[["gw",true]]' ]
}
parent_is() { retained "$T/$1/parent" | grep -q "\"parent\":$2"; }

start_node gw --gateway --registry "$UP_HOST=$UP_URL"
"$EP_BUILD_DIR/coordinator/edgepull-coordinator" --broker "127.0.0.1:$PORT" --locality "$LOC" \
  --gateway gw --username "coordinator@$LOC" --password-file "$D/coordinator.pw" \
  >"$D/coordinator.log" 2>&1 &
ep_cleanup_push "ep_stop_pid $! 10"
EP_LOGS+=("$D/coordinator.log")
start_node n1 --allow-registry "$UP_HOST" # every node names its registries (allowlist)
wait_for 30 parent_is n1 '"gw"' || ep_fail "n1 got no parent from the coordinator"
start_node a-rogue --gateway --registry "$UP_HOST=$EVIL_URL"
wait_for 30 parent_is a-rogue '"' || ep_fail "a-rogue got no parent from the coordinator"

# --- what the rogue forges with its own, valid credentials -------------------
RP=${PEER[a-rogue]}
pub a-rogue "$G" '{"v":1,"id":"a-rogue"}'
pub a-rogue "$T/gw/state" "{\"v\":1,\"id\":\"gw\",\"status\":\"online\",\"addr\":\"127.0.0.1\",\"peer_port\":$RP,\"gateway\":true}"
pub a-rogue "$T/n1/parent" "{\"v\":1,\"id\":\"n1\",\"parent\":\"a-rogue\",\"addr\":\"127.0.0.1\",\"peer_port\":$RP,\"epoch\":999}"
pub a-rogue "$T/gw/parent" '{"v":1,"id":"gw","parent":"a-rogue","addr":"127.0.0.1","peer_port":1,"epoch":999}'
# On its own topic, in gw's name and with its own address: receivers drop
# it (the id is not the topic's). Its daemon re-publishes its real state.
pub a-rogue "$T/a-rogue/state" "{\"v\":1,\"id\":\"gw\",\"status\":\"online\",\"addr\":\"127.0.0.1\",\"peer_port\":$RP,\"gateway\":true}"

ep_assert_eq '{"v":1,"id":"gw"}' "$(retained "$G")" "the rogue cannot name itself the gateway"
ep_assert_eq "${PEER[gw]}" "$(retained "$T/gw/state" | jq -r .peer_port)" \
  "the rogue cannot rewrite the gateway's state (its address)"
ep_assert_match '"parent":"gw"' "$(retained "$T/n1/parent")" "the rogue cannot forge n1's parent"
ep_assert_match '"parent":null' "$(retained "$T/gw/parent")" "the rogue cannot forge the root's parent"
for t in "$G" "$T/gw/state" "$T/n1/parent"; do
  grep -q "Denied PUBLISH from .*'$t'" "$D/broker.log" &&
    ep_pass "the broker logged the denied publish on $t" ||
    ep_fail "no 'Denied PUBLISH' for $t in the broker log"
done

# --- the roles as everybody sees them ----------------------------------------
ep_assert_match 'a-rogue claims the gateway role in its state: ignored, the gateway is gw' \
  "$(cat "$D/coordinator.log")" "the coordinator ignores and logs the claimed role"
ep_assert_match '"parent":null' "$(retained "$T/gw/parent")" "gw stays the root"
ep_assert_eq true "$(retained "$T/a-rogue/state" | jq -r .gateway)" \
  "(the rogue's own state does claim the role)"
ep_assert "n1 marks gw, and only gw, as the gateway" wait_for 30 gw_known n1
ep_assert_eq '["gw"]' "$(ctl_nodes gw | jq -c '[.nodes[] | select(.gateway) | .id]')" \
  "gw marks itself, and only itself, as the gateway"
ep_assert_match 'the locality.s gateway is gw \(named by the coordinator\)' "$(cat "${LOG[n1]}")" \
  "n1 learnt the gateway from the coordinator"

# --- what n1 resolves and fetches --------------------------------------------
hdr=$(ep_curl -fsS -D - -o "$D/n1.manifest" "${ACCEPT[@]}" \
  "${URL[n1]}/v2/app/manifests/1.25?ns=$UP_HOST") || ep_fail "n1: GET app:1.25 failed"
got=$(tr -d '\r' <<<"$hdr" | awk -F': ' 'tolower($1) == "docker-content-digest" { print $2 }')
ep_assert_eq "$REAL" "$got" "n1 resolves app:1.25 to the real image, not the rogue's"
ep_assert_eq "${REAL#sha256:}" "$(sha256sum "$D/n1.manifest" | cut -d' ' -f1)" \
  "n1 serves the real manifest's bytes"
for b in "${REAL_BLOBS[@]}"; do
  ep_curl -fsS -o "$D/blob" "${URL[n1]}/v2/app/blobs/$b?ns=$UP_HOST" || ep_fail "n1: GET blob $b"
  ep_assert_eq "${b#sha256:}" "$(sha256sum "$D/blob" | cut -d' ' -f1)" "n1 fetches blob ${b:7:12}"
done
ep_assert_eq "$EVIL_GETS" "$(evil_tag_gets)" \
  "nobody asked the attacker's registry for the tag (nobody asked the rogue)"
ep_assert_eq "$REAL" "$(tr -d '\r' <<<"$(ep_curl -fsSI "${ACCEPT[@]}" \
  "${URL[gw]}/v2/app/manifests/1.25?ns=$UP_HOST")" |
  awk -F': ' 'tolower($1) == "docker-content-digest" { print $2 }')" "gw resolves the real image"

# --- a node without a broker user says it is insecure -------------------------
EP_STATE='' EP_PORT=''
EP_LOC=$LOC ep_peer_tls_args anon
ep_start_edgepulld "${EP_PEER_TLS_ARGS[@]}" --broker "127.0.0.1:$PORT" --locality "$LOC" --node-id anon
ep_assert_match 'INSECURE: no --broker-username' "$(cat "$EP_LOG")" \
  "a node without a broker user warns that it is insecure"
ep_assert_eq 0 "$(cat "${LOG[n1]}" "${LOG[gw]}" | grep -c INSECURE || true)" \
  "nodes with their own broker user do not"

ep_check_sanitizers "${LOG[gw]}" "${LOG[n1]}" "${LOG[a-rogue]}" "$D/coordinator.log"
ep_finish
