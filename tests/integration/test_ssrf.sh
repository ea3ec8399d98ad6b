#!/usr/bin/env bash
# edgepulld is not a proxy into the network (issue 12, point 3).
#
# In a namespace of its own: a real docker-registry on 127.0.0.1 (allowed,
# --registry), a hostile registry on 100.0.0.1 (a public address on the namespace's
# loopback; allowed, over http and over https) that redirects or sends a token
# realm wherever a test case says, and a sentinel listening on every
# address of the namespace (127.0.0.1, 10.99.0.1 private, 169.254.169.254
# link-local, 100.0.0.2 public) that records each connection. Shown:
#  a. ns= and the podman path naming a registry outside the allowlist are
#     refused (403 DENIED, generic text) on the peer and the local port, and
#     nothing connects to the sentinel;
#  b. the hostile registry's redirects to loopback (by address and by name),
#     private and link-local addresses, its https -> http redirect and its
#     loopback token realm are refused, nothing reaches the sentinel, the
#     client is told only "refused by policy" and the log says why;
#  c. what is allowed works: the registry by ns and by path on both ports, a
#     redirect to a public address, an https redirect that stays https;
#  d. with --local-any-registry the local port fetches from an unlisted
#     registry, the peer port still refuses, and a closed port and an open
#     one that is not a registry look the same to the client.
# shellcheck source=../lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source=../lib/mkimage.sh
. "$EP_SOURCE_DIR/tests/lib/mkimage.sh"

ep_init test_ssrf 300
ep_require_root
ep_require_cmd docker-registry skopeo jq curl python3 openssl ip

ep_netns_create
# The namespace's own loopback carries them: local addresses all the same,
# of every class, and reachable only inside the namespace.
for a in 100.0.0.1 100.0.0.2 10.99.0.1 169.254.169.254; do
  ip -n "$EP_NETNS" addr add "$a/32" dev lo
done

ep_start_registry
layout=$(ep_tmpdir layout)
ep_mkimage "$layout" v1 amd64 gzip:256K
ep_push_image "$layout" v1 edge/app
app_blob=${EP_PUSHED_BLOBS[0]}

# --- the sentinel and the hostile registry ------------------------------------
www=$(ep_tmpdir www)
SENT_LOG=$EP_TMP/sentinel.log
EVIL_LOG=$EP_TMP/evil.log
: >"$SENT_LOG"
: >"$EVIL_LOG"
EP_LOGS+=("$SENT_LOG" "$EVIL_LOG")
SENT=$(ep_free_port)
EVIL=$(ep_free_port)
EVIL_TLS=$(ep_free_port)
CLOSED=$(ep_free_port)
PPORT=$(ep_free_port)
srv=$EP_SOURCE_DIR/tests/lib/ssrf_server.py

# blob CASE: a payload of its own per case; prints its digest.
declare -A DG=()
for c in to-loopback to-localhost to-private to-linklocal realm downgrade to-public tls-ok; do
  printf 'payload of %s\n' "$c" >"$www/tmp"
  h=$(sha256sum "$www/tmp" | cut -d' ' -f1)
  mv "$www/tmp" "$www/$h"
  DG[$c]=sha256:$h
done
hx() { echo "${DG[$1]#sha256:}"; }

cat >"$EP_TMP/routes" <<EOF
to-loopback 307 http://127.0.0.1:$SENT/blob/$(hx to-loopback)
to-localhost 302 http://localhost:$SENT/blob/$(hx to-localhost)
to-private 307 http://10.99.0.1:$SENT/blob/$(hx to-private)
to-linklocal 301 http://169.254.169.254:$SENT/blob/$(hx to-linklocal)
realm 401 Bearer realm="http://127.0.0.1:$SENT/token",service="evil"
to-public 307 http://100.0.0.2:$SENT/blob/$(hx to-public)
downgrade 307 http://100.0.0.2:$SENT/blob/$(hx downgrade)
tls-ok 307 /cdn/$(hx tls-ok)
EOF
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=100.0.0.1 \
  -addext subjectAltName=IP:100.0.0.1 -keyout "$EP_TMP/key.pem" -out "$EP_TMP/cert.pem" \
  >/dev/null 2>&1

"${EP_NSX[@]}" python3 "$srv" sentinel 0.0.0.0 "$SENT" "$www" "$SENT_LOG" 2>>"$EP_TMP/py.log" &
ep_cleanup_push "ep_stop_pid $! 5"
"${EP_NSX[@]}" python3 "$srv" registry 100.0.0.1 "$EVIL" "$www" "$EVIL_LOG" "$EP_TMP/routes" \
  2>>"$EP_TMP/py.log" &
ep_cleanup_push "ep_stop_pid $! 5"
"${EP_NSX[@]}" python3 "$srv" registry 100.0.0.1 "$EVIL_TLS" "$www" "$EVIL_LOG" "$EP_TMP/routes" \
  "$EP_TMP/cert.pem" "$EP_TMP/key.pem" 2>>"$EP_TMP/py.log" &
ep_cleanup_push "ep_stop_pid $! 5"
EP_LOGS+=("$EP_TMP/py.log")
ep_wait_http "http://127.0.0.1:$SENT/token" 20 || ep_die "sentinel did not start"
ep_wait_http "http://100.0.0.1:$EVIL/v2/" 20 || ep_die "hostile registry did not start"
# Waited for like the others: a single try lost the race with python's
# start (loading ssl and the key) once in scripts/test.
tls_up=0
for ((i = 0; i < 100; i++)); do
  if ep_ns curl -fsS -o /dev/null --cacert "$EP_TMP/cert.pem" "https://100.0.0.1:$EVIL_TLS/v2/" \
    2>/dev/null; then
    tls_up=1
    break
  fi
  sleep 0.2
done
[ "$tls_up" = 1 ] || ep_die "hostile https registry did not start"
: >"$SENT_LOG"

# The peer port with the locality's TLS; the attacker is a node with a
# certificate of its own (a rogue node, or one taken over).
PKI=$EP_TMP/pki
mkdir -p "$PKI"
"$EP_BUILD_DIR/ctl/edgepullctl" ca init --dir "$PKI" >/dev/null
for id in gw rogue; do "$EP_BUILD_DIR/ctl/edgepullctl" ca issue "$id" --dir "$PKI" >/dev/null; done
PEER_TLS=(--node-id gw --peer-listen "127.0.0.1:$PPORT" --peer-ca "$PKI/ca.crt" --peer-cert "$PKI/gw.crt"
  --peer-key "$PKI/gw.key")
ep_start_edgepulld --registry "$REGISTRY_HOST=$REGISTRY_URL" \
  --registry "evil.test=http://100.0.0.1:$EVIL" \
  --registry "evil-tls.test=https://100.0.0.1:$EVIL_TLS" --ca-file "$EP_TMP/cert.pem" \
  "${PEER_TLS[@]}"
PEER=https://127.0.0.1:$PPORT
# curl's arguments for URL: the rogue's certificate on the peer port.
curl_args() { # URL
  CURL_ARGS=()
  [[ $1 != "$PEER"* ]] || CURL_ARGS=(--cacert "$PKI/ca.crt" -k --cert "$PKI/rogue.crt" --key "$PKI/rogue.key")
}

# check_generic WHAT FILE: an OCI error whose message is one of the generic
# ones and names no address or port.
check_generic() {
  local what=$1 f=$2 msg
  ep_assert_error_json "$f" "$what"
  msg=$(jq -r '.errors[0].message' "$f" 2>/dev/null || echo "?")
  case $msg in
  "registry not allowed" | "refused by policy" | "upstream unavailable" | "upstream error" | "not found")
    ep_pass "$what: generic message ($msg)" ;;
  *) ep_fail "$what: message is not a generic one: $msg" ;;
  esac
  if grep -qE "127\.0\.0\.1|localhost|10\.99|169\.254|100\.0\.0|:$SENT|:$CLOSED|curl|SSL" "$f"; then
    ep_fail "$what: the body names an address or a cause: $(head -c 300 "$f")"
  else
    ep_pass "$what: the body names no address"
  fi
}

# refused WHAT STATUS URL: answered STATUS with a generic body.
refused() {
  local what=$1 want=$2 url=$3 b code
  b=$(mktemp "$EP_TMP/body.XXXXXX")
  curl_args "$url"
  code=$(ep_http "$b" "${CURL_ARGS[@]}" "$url")
  ep_assert_eq "$want" "$code" "$what: status"
  check_generic "$what" "$b"
}

# no_sentinel WHAT: nothing connected to the sentinel but the public address.
no_sentinel() {
  local n
  n=$(grep -cvE '^100\.0\.0\.2 ' "$SENT_LOG" || true)
  ep_assert_eq 0 "$n" "$1: no connection to a loopback, private or link-local sentinel"
}

# --- a. unlisted registries, by ns and by path, on both ports -------------------
for base in "$PEER" "$EP_URL"; do
  port=local
  [ "$base" = "$PEER" ] && port=peer
  for ns in "127.0.0.1:$SENT" "10.99.0.1:$SENT" "169.254.169.254:$SENT" "100.0.0.2:$SENT" \
    "127.0.0.1:$CLOSED" "localhost:$SENT"; do
    refused "$port ns=$ns" 403 "$base/v2/x/y/blobs/${DG[to-loopback]}?ns=$ns"
  done
  refused "$port podman path 127.0.0.1:$SENT" 403 "$base/v2/127.0.0.1:$SENT/x/blobs/${DG[to-loopback]}"
  refused "$port podman path localhost" 403 "$base/v2/localhost/x/manifests/v1"
  refused "$port manifest ns=10.99.0.1" 403 "$base/v2/x/y/manifests/v1?ns=10.99.0.1:$SENT"
done
no_sentinel "unlisted registries"
ep_assert "the log names the refused registry" \
  grep -q "registry 127.0.0.1:$SENT is not in the allowlist" "$EP_LOG"

# --- b. the hostile registry's redirects and realm --------------------------------
for c in to-loopback to-localhost to-private to-linklocal realm; do
  refused "redirect $c" 403 "$EP_URL/v2/ssrf/$c/blobs/${DG[$c]}?ns=evil.test"
done
refused "redirect https->http" 403 "$EP_URL/v2/ssrf/downgrade/blobs/${DG[downgrade]}?ns=evil-tls.test"
refused "peer: redirect to-private" 403 "$PEER/v2/ssrf/to-private/blobs/${DG[to-private]}?ns=evil.test"
no_sentinel "hostile redirects"
ep_assert_eq 0 "$(grep -c '^100\.0\.0\.2 ' "$SENT_LOG" || true)" "https->http: the http target is never asked"
for why in "loopback address 127.0.0.1" "private address" "link-local address" "https to http" \
  "a redirect or realm"; do
  ep_assert "the log says: $why" grep -q "$why" "$EP_LOG"
done
ep_assert "the hostile registry was asked (its redirect, not the request, was refused)" \
  grep -q "GET /v2/ssrf/to-localhost/" "$EVIL_LOG"

# --- c. what is allowed works ------------------------------------------------------
# got WHAT URL DIGEST: the body hashes to DIGEST.
got() {
  local f
  f=$(mktemp "$EP_TMP/got.XXXXXX")
  curl_args "$2"
  if ep_curl -f -o "$f" "${CURL_ARGS[@]}" "$2" && [ "$(ep_sha256 "$f")" = "$3" ]; then
    ep_pass "$1"
  else
    ep_fail "$1: no verified body from $2"
  fi
}
got "local: the listed registry by ns" "$EP_URL/v2/edge/app/blobs/$app_blob?ns=$REGISTRY_HOST" "$app_blob"
got "peer: the listed registry by ns" "$PEER/v2/edge/app/blobs/$app_blob?ns=$REGISTRY_HOST" "$app_blob"
got "local: the listed registry by path" "$EP_URL/v2/$REGISTRY_HOST/edge/app/blobs/$app_blob" "$app_blob"
got "a redirect to a public address" "$EP_URL/v2/ssrf/to-public/blobs/${DG[to-public]}?ns=evil.test" \
  "${DG[to-public]}"
got "an https redirect that stays https" \
  "$PEER/v2/ssrf/tls-ok/blobs/${DG[tls-ok]}?ns=evil-tls.test" "${DG[tls-ok]}"
ep_assert_eq 1 "$(grep -c "^100\.0\.0\.2 GET /blob/$(hx to-public)" "$SENT_LOG" || true)" \
  "the public redirect target served the blob"
ep_stop_edgepulld

# --- d. --local-any-registry ----------------------------------------------------------
: >"$SENT_LOG"
ep_start_edgepulld --registry "$REGISTRY_HOST=$REGISTRY_URL" "${PEER_TLS[@]}" --local-any-registry
refused "peer ns=127.0.0.1 with --local-any-registry" 403 \
  "$PEER/v2/x/y/blobs/${DG[to-loopback]}?ns=127.0.0.1:$SENT"
ep_assert_eq 0 "$(grep -c connect "$SENT_LOG" || true)" "the peer port still connects nowhere"
open=$EP_TMP/open.json closed=$EP_TMP/closed.json
c_open=$(ep_http "$open" "$EP_URL/v2/x/y/blobs/${DG[to-loopback]}?ns=127.0.0.1:$SENT")
c_closed=$(ep_http "$closed" "$EP_URL/v2/x/y/blobs/${DG[to-loopback]}?ns=127.0.0.1:$CLOSED")
ep_assert "the local port fetched from the unlisted registry (the sentinel saw it)" \
  grep -q '^127\.0\.0\.1 connect' "$SENT_LOG"
ep_assert_eq "$c_closed" "$c_open" "an open and a closed port: the same status"
ep_assert_eq "$(cat "$closed")" "$(cat "$open")" "an open and a closed port: the same body"
check_generic "open port" "$open"
got "local: the listed registry still works" "$EP_URL/v2/edge/app/blobs/$app_blob?ns=$REGISTRY_HOST" \
  "$app_blob"
ep_stop_edgepulld
ep_finish
