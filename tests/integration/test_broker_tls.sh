#!/usr/bin/env bash
# The control plane over TLS with credentials: a real mosquitto with only a
# TLS listener (a CA made by the test), password file and the ACL from
# contrib/mosquitto; edgepulld's agent and the coordinator connect with
# --broker-ca-file / --ca-file and their users. Shows that both daemons speak
# TLS with username/password, and that a wrong CA or a wrong password keeps
# a node out.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/locality.sh"
ep_init test_broker_tls 240
ep_loc_set tls
ep_loc_require
ep_require_cmd openssl mosquitto_passwd

pki=$(ep_tmpdir pki)
# A CA and a server certificate for 127.0.0.1 (SAN IP: libmosquitto checks it).
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=edgepull-test-ca \
  -keyout "$pki/ca.key" -out "$pki/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout "$pki/server.key" \
  -out "$pki/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' >"$pki/san.ext"
openssl x509 -req -in "$pki/server.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" \
  -CAcreateserial -days 2 -extfile "$pki/san.ext" -out "$pki/server.pem" 2>/dev/null
# A second CA the broker's certificate does not chain to.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=other-ca \
  -keyout "$pki/other.key" -out "$pki/other.pem" 2>/dev/null
chmod 644 "$pki"/*

MQTT_DIR=$(ep_tmpdir mqtt)
MQTT_PORT=$(ep_free_port)
mkdir -p "$MQTT_DIR/data"
: >"$MQTT_DIR/passwd"
for u in gw n1 coordinator; do
  printf 'secret-%s\n' "$u" >"$MQTT_DIR/$u.pw"
  mosquitto_passwd -b "$MQTT_DIR/passwd" "$u@tls" "secret-$u"
done
"$EP_SOURCE_DIR/contrib/mosquitto/mkacl" tls gw n1 >"$MQTT_DIR/acl"
chmod 644 "$MQTT_DIR"/*
cat >"$MQTT_DIR/mosquitto.conf" <<EOF
per_listener_settings false
allow_anonymous false
password_file $MQTT_DIR/passwd
acl_file $MQTT_DIR/acl
listener $MQTT_PORT 127.0.0.1
cafile $pki/ca.pem
certfile $pki/server.pem
keyfile $pki/server.key
tls_version tlsv1.2
persistence false
user $(id -un)
log_dest stderr
log_type all
connection_messages true
EOF
export MQTT_DIR MQTT_PORT
ep__mqtt_spawn

sub() { # USER TOPIC: the retained payload, read over TLS as USER
  timeout -k 2 10 mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" --cafile "$pki/ca.pem" \
    -u "$1@tls" -P "secret-$1" -t "$2" -C 1 -W 8 2>/dev/null || true
}

start_n1() { # PASSWORD_FILE CA_FILE LOG: n1 in the background; sets n1_pid
  ep_peer_tls_args n1
  "$EP_BUILD_DIR/plugin/edgepulld" --state-dir "$n1_state" --listen "127.0.0.1:$n1_port" \
    "${EP_PEER_TLS_ARGS[@]}" \
    --broker "127.0.0.1:$MQTT_PORT" --locality tls --node-id n1 \
    --broker-username n1@tls --broker-password-file "$1" \
    --broker-ca-file "$2" >"$3" 2>&1 &
  n1_pid=$!
  ep_cleanup_push "ep_stop_pid $n1_pid 10"
  EP_LOGS+=("$3")
}
n1_state=$(ep_tmpdir n1)
n1_port=$(ep_free_port)
n1_joined() { # the retained state of n1, if it ever joined
  timeout 5 mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" --cafile "$pki/ca.pem" \
    -u coordinator@tls -P secret-coordinator -t edgepull/v1/tls/node/n1/state -C 1 -W 3 2>/dev/null ||
    true
}

ep_log "gateway edgepulld over TLS as user gw"
gw_state=$(ep_tmpdir gw)
gw_port=$(ep_free_port)
ep_peer_tls_args gw
"$EP_BUILD_DIR/plugin/edgepulld" --state-dir "$gw_state" --listen "127.0.0.1:$gw_port" \
  "${EP_PEER_TLS_ARGS[@]}" \
  --gateway --peer-listen "127.0.0.1:$(ep_free_port)" \
  --broker "127.0.0.1:$MQTT_PORT" --locality tls --node-id gw \
  --broker-username gw@tls --broker-password-file "$MQTT_DIR/gw.pw" \
  --broker-ca-file "$pki/ca.pem" >"$EP_TMP/gw.log" 2>&1 &
gw_pid=$!
ep_cleanup_push "ep_stop_pid $gw_pid 10"
EP_LOGS+=("$EP_TMP/gw.log")

state=$(sub coordinator edgepull/v1/tls/node/gw/state)
ep_assert_eq online "$(printf '%s' "$state" | jq -r .status 2>/dev/null)" \
  "gw published its online state over TLS with its password"

ep_log "coordinator over TLS as user coordinator"
ep_coord_start --ca-file "$pki/ca.pem" --username coordinator@tls \
  --password-file "$MQTT_DIR/coordinator.pw"
parent=$(sub n1 edgepull/v1/tls/node/gw/parent)
ep_assert_eq null "$(printf '%s' "$parent" | jq -r .parent 2>/dev/null)" \
  "the coordinator assigned the gateway as root over TLS"

ep_log "a node with the wrong CA stays out"
start_n1 "$MQTT_DIR/n1.pw" "$pki/other.pem" "$EP_TMP/bad-ca.log"
sleep 3
ep_assert_eq "" "$(n1_joined)" "a node that does not trust the broker's CA never joins"
ep_assert "edgepulld with the wrong CA keeps serving its runtime" \
  curl -sf -o /dev/null "http://127.0.0.1:$n1_port/v2/"
ep_stop_pid "$n1_pid" 10

ep_log "a node with the wrong password stays out"
printf 'not-the-password-xyz\n' >"$MQTT_DIR/wrong.pw"
start_n1 "$MQTT_DIR/wrong.pw" "$pki/ca.pem" "$EP_TMP/bad-pw.log"
sleep 3
ep_assert_eq "" "$(n1_joined)" "a node with the wrong password never joins"
if grep -q 'secret-n1\|not-the-password-xyz' "$EP_TMP/bad-pw.log"; then
  ep_fail "the password appears in edgepulld's log"
else
  ep_pass "the password never appears in edgepulld's log"
fi
ep_stop_pid "$n1_pid" 10

ep_log "the right node joins and gets a parent"
start_n1 "$MQTT_DIR/n1.pw" "$pki/ca.pem" "$EP_TMP/n1.log"
parent=$(sub n1 edgepull/v1/tls/node/n1/parent)
ep_assert_eq gw "$(printf '%s' "$parent" | jq -r .parent 2>/dev/null)" \
  "n1 joined over TLS and the coordinator made gw its parent"
ep_finish
