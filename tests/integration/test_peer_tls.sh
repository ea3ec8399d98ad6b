#!/usr/bin/env bash
# Mutual TLS on the peer port (issue 12 point 2), with real daemons: a node
# without a locality certificate cannot read a blob from a peer port.
#  a. the gateway's peer port, asked with curl: no client certificate, a
#     certificate of another CA and plain HTTP are refused by the handshake;
#     a locality certificate gets the blob; one that claims another node in
#     X-Edgepull-Node gets 403;
#  b. a node whose parent assignment points at a server whose certificate
#     (same CA) names another node does not take the blob from it, and does
#     once the assignment names the node that is really there;
#  c. a node with no certificate (--peer-insecure) and a node with the
#     certificate of another CA cannot pull from their parent, the gateway;
#  d. without certificates and without --peer-insecure, edgepulld refuses to
#     start, saying how to make them.
# Parent assignments are published by hand (no coordinator): a test of what a
# node does with the address it is given, whoever gave it.
. "$(dirname "$0")/../lib/common.sh"
. "$EP_SOURCE_DIR/tests/lib/mkimage.sh"
. "$EP_SOURCE_DIR/tests/lib/locality.sh"
ep_init test_peer_tls 420
ep_loc_require
ep_require_cmd docker-registry skopeo

CTL=$EP_BUILD_DIR/ctl/edgepullctl
ep_start_registry
ep_mkimage "$EP_TMP/img" v1 amd64 gzip:64K gzip:96K gzip:128K
ep_push_image "$EP_TMP/img" v1 tls/app
BLOBS=("${EP_PUSHED_BLOBS[@]}")
REG=(--registry "$REGISTRY_HOST=$REGISTRY_URL")

# shellcheck disable=SC2119 # no extra listener
ep_mqtt_start
ep_node_start gw --gateway "${REG[@]}"
PKI=$EP_TMP/pki/$EP_LOC
ep_assert "the harness made the locality CA and gw's certificate" \
  test -f "$PKI/ca.crt" -a -f "$PKI/gw.crt" -a -f "$PKI/gw.key"
ep_assert_eq 600 "$(stat -c %a "$PKI/gw.key")" "gw.key is 0600"
ep_assert_match "peer endpoint on .*mutual TLS" "$(cat "${NODE_LOG[gw]}")" "gw serves peers over TLS"

blob_path() { # DIGEST
  echo "/v2/tls/app/blobs/$1?ns=$REGISTRY_HOST"
}
# gw holds blob 0, fetched from the registry through its own endpoint.
ep_curl -f -o /dev/null "${NODE_URL[gw]}$(blob_path "${BLOBS[0]}")" || ep_die "gw: GET blob 0"

# --- a. the gateway's peer port, asked with curl ------------------------------

"$CTL" ca issue n1 --dir "$PKI" >/dev/null
OTHER=$EP_TMP/other-ca
mkdir -p "$OTHER"
"$CTL" ca init --dir "$OTHER" >/dev/null
"$CTL" ca issue n1 --dir "$OTHER" >/dev/null
"$CTL" ca issue n4 --dir "$OTHER" >/dev/null
GWPEER=https://127.0.0.1:${NODE_PEER[gw]}$(blob_path "${BLOBS[0]}")
# The server's own certificate is not what is tested here (-k): its client check is.
peer_get() { # OUT CURL-ARGS...: the gw's blob 0 over its peer port; curl's status
  local out=$1
  shift
  rm -f "$out"
  ep_ns timeout -k 5 30 curl -sS --connect-timeout 5 --max-time 20 -o "$out" \
    -k "$@" "$GWPEER"
}
ep_assert_not "no client certificate: refused" peer_get "$EP_TMP/a1"
ep_assert_not "no client certificate: not a byte of the blob" test -s "$EP_TMP/a1"
ep_assert_not "a certificate of another CA: refused" \
  peer_get "$EP_TMP/a2" --cert "$OTHER/n1.crt" --key "$OTHER/n1.key"
ep_assert_not "another CA: not a byte of the blob" test -s "$EP_TMP/a2"
ep_assert_not "plain HTTP on the peer port: refused" \
  ep_ns timeout -k 5 30 curl -fsS --max-time 20 -o /dev/null \
  "http://127.0.0.1:${NODE_PEER[gw]}$(blob_path "${BLOBS[0]}")"
ep_assert "the locality's certificate for n1: the blob" \
  peer_get "$EP_TMP/a3" -f --cert "$PKI/n1.crt" --key "$PKI/n1.key" -H "X-Edgepull-Node: n1"
ep_assert_eq "${BLOBS[0]}" "$(ep_sha256 "$EP_TMP/a3")" "the blob over TLS is intact"
code=$(peer_get "$EP_TMP/a4" -w '%{http_code}' --cert "$PKI/n1.crt" --key "$PKI/n1.key" \
  -H "X-Edgepull-Node: n2" || true)
ep_assert_eq 403 "$code" "n1's certificate speaking for n2: 403"

# --- b. a parent address where another node answers ---------------------------

# rogue: a standalone edgepulld (in no locality, so no node learns of it
# from the broker) with a good certificate of the locality CA for its own id.
"$CTL" ca issue rogue --dir "$PKI" >/dev/null
ROGUE_PEER=$(ep_free_port)
EP_STATE='' EP_PORT='' ep_start_edgepulld "${REG[@]}" --node-id rogue \
  --peer-listen "127.0.0.1:$ROGUE_PEER" \
  --peer-ca "$PKI/ca.crt" --peer-cert "$PKI/rogue.crt" --peer-key "$PKI/rogue.key"
ROGUE_LOG=$EP_LOG

set_parent() { # ID PARENT PORT EPOCH: a retained parent assignment
  local p
  p=$(printf '{"v":1,"id":"%s","parent":"%s","addr":"127.0.0.1","peer_port":%s,"epoch":%s}' \
    "$1" "$2" "$3" "$4")
  ep_timeout 10 mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -q 1 -r \
    -t "$EP_LOC_TOPIC/$1/parent" -m "$p"
}
# wait_parent ID PARENT: the node's log says it took that assignment.
wait_parent() {
  local i
  for i in $(seq 1 100); do
    ! grep -q "parent is now $2 " "${NODE_LOG[$1]}" || return 0
    sleep 0.1
  done
  ep_fail "$1 did not take parent $2"
}

ep_node_start n1 "${REG[@]}"
ep_node_start n2 "${REG[@]}"
set_parent n1 gw "$ROGUE_PEER" 1
# n2: the control of the failure cases below, with the locality's certificate.
set_parent n2 gw "${NODE_PEER[gw]}" 1

# --- c. nodes without a locality certificate, parent gw -----------------------

EP_PEER_TLS=off ep_node_start n3 "${REG[@]}"
set_parent n3 gw "${NODE_PEER[gw]}" 1
ep_node_start n4 "${REG[@]}" --peer-ca "$OTHER/ca.crt" --peer-cert "$OTHER/n4.crt" \
  --peer-key "$OTHER/n4.key"
set_parent n4 gw "${NODE_PEER[gw]}" 1
for id in n1 n2 n3 n4; do wait_parent "$id" gw; done

# The failing pulls in parallel: each ends when the fetch gives up.
declare -A RC=()
for id in n1 n3 n4; do
  (ep_curl -f -o "$EP_TMP/b.$id" "${NODE_URL[$id]}$(blob_path "${BLOBS[1]}")") &
  RC[$id]=$!
done
for id in n1 n3 n4; do
  rc=0
  wait "${RC[$id]}" || rc=$?
  ep_assert_ne 0 "$rc" "$id cannot pull blob 1 through its parent"
  EP_STATE=${NODE_STATE[$id]}
  ep_assert_not "$id stored no blob 1" test -e "$(ep_store_blob "${BLOBS[1]}")"
done
ep_assert_match "does not name the node expected" "$(cat "${NODE_LOG[n1]}")" \
  "n1 says why it refused rogue's answer"
# The control: the same pull through gw works with a locality certificate.
ep_assert "n2 (locality certificate) pulls blob 1 through gw" \
  ep_curl -f -o "$EP_TMP/b.n2" "${NODE_URL[n2]}$(blob_path "${BLOBS[1]}")"
ep_assert_eq "${BLOBS[1]}" "$(ep_sha256 "$EP_TMP/b.n2")" "n2's copy is intact"
ep_assert_match "certificate|SSL|TLS" "$(cat "${NODE_LOG[n4]}")" "n4's log says TLS failed"

# The same address, now assigned under the name its certificate bears.
set_parent n1 rogue "$ROGUE_PEER" 2
wait_parent n1 rogue
ep_assert "n1 pulls blob 1 from rogue once the assignment names rogue" \
  ep_curl -f -o "$EP_TMP/b2.n1" "${NODE_URL[n1]}$(blob_path "${BLOBS[1]}")"
ep_assert_eq "${BLOBS[1]}" "$(ep_sha256 "$EP_TMP/b2.n1")" "n1's copy is intact"

# --- d. no certificates, no --peer-insecure -------------------------------------

out=$(ep_timeout 30 "$EP_BUILD_DIR/plugin/edgepulld" --state-dir "$(ep_tmpdir nocert)" \
  --listen "127.0.0.1:$(ep_free_port)" --peer-listen "127.0.0.1:$(ep_free_port)" \
  --node-id n5 2>&1) && rc=0 || rc=$?
ep_assert_ne 0 "$rc" "a peer port without certificates does not start"
ep_assert_match "edgepullctl ca init.*--peer-insecure" "$out" "and says how to make them"

for id in gw n1 n2 n3 n4; do ep_node_stop "$id" || ep_fail "$id exits 0"; done
ep_check_sanitizers "${NODE_LOG[@]}" "$ROGUE_LOG"
ep_finish
