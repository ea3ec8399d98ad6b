# shellcheck shell=bash
# Part of the integration harness, sourced by common.sh (never on its own):
# edgepulld and edgepullctl: start, stop, query, and the asserts on what
# they stored and served.

# --- edgepulld ---------------------------------------------------------------

EP_ARGS=()

# ep_start_edgepulld ARGS...: start edgepulld in the background on EP_PORT with
# state in EP_STATE (both chosen on first start, kept on restarts), log to a
# new EP_LOG per start, wait for /v2/ (unless EP_START_NOWAIT). Exports EP_PID
# EP_PORT EP_STATE EP_LOG EP_URL. Pass no ARGS to restart with the previous ones.
# EP_EMULATOR (e.g. qemu-arm-static) runs a cross-built edgepulld (tests/cross/).
ep_start_edgepulld() {
  local bin=$EP_BUILD_DIR/plugin/edgepulld
  [ -x "$bin" ] || ep_die "no edgepulld at $bin (build first)"
  local emu=()
  [ -z "${EP_EMULATOR:-}" ] || emu=("$EP_EMULATOR")
  [ $# -eq 0 ] || EP_ARGS=("$@")
  EP_STATE=${EP_STATE:-$(ep_tmpdir state)}
  EP_PORT=${EP_PORT:-$(ep_free_port)}
  EP_URL=http://127.0.0.1:$EP_PORT
  EP_START_COUNT=$((EP_START_COUNT + 1))
  EP_LOG=$EP_TMP/edgepulld.$EP_START_COUNT.log
  "${EP_NSX[@]}" "${emu[@]}" "$bin" --state-dir "$EP_STATE" --listen "127.0.0.1:$EP_PORT" "${EP_ARGS[@]}" \
    >"$EP_LOG" 2>&1 &
  EP_PID=$!
  export EP_PID EP_PORT EP_STATE EP_LOG EP_URL
  ep_cleanup_push "ep_stop_pid $EP_PID 10"
  EP_LOGS+=("$EP_LOG")
  # EP_START_NOWAIT=1: the caller waits (many daemons started at once).
  [ -n "${EP_START_NOWAIT:-}" ] || ep_wait_http "$EP_URL/v2/" 30 "$EP_PID" ||
    ep_die "edgepulld did not start (log: $EP_LOG)"
  ep_log "edgepulld at $EP_URL (pid $EP_PID, state $EP_STATE)"
}

# ep_stop_edgepulld: SIGTERM, expect a clean exit (status 0) and no sanitizer
# report in its log.
ep_stop_edgepulld() {
  local rc=0
  ep_stop_pid "$EP_PID" 15 || rc=$?
  ep_assert_eq 0 "$rc" "edgepulld exits 0 on SIGTERM"
  ep_check_sanitizers "$EP_LOG"
}

ep_check_sanitizers() { # LOG...
  local f
  for f in "$@"; do
    if grep -qE 'ERROR: (Address|Leak|Thread)Sanitizer|runtime error:' "$f"; then
      ep_fail "sanitizer report in $f:"
      grep -E -A 30 'ERROR: (Address|Leak|Thread)Sanitizer|runtime error:' "$f" | head -n 60
    else
      ep_pass "no sanitizer report in $(basename "$f")"
    fi
  done
}

ep_edgepulld_alive() {
  kill -0 "$EP_PID" 2>/dev/null && ep_curl -fs -o /dev/null "$EP_URL/v2/"
}

ep_edgepullctl() { # ARGS...
  ep_timeout 30 "$EP_BUILD_DIR/ctl/edgepullctl" --state-dir "$EP_STATE" "$@"
}

# Path of a complete blob in edgepulld's store.
ep_store_blob() { # DIGEST
  echo "$EP_STATE/blobs/sha256/${1#sha256:}"
}

# sha256 of a file, as "sha256:<hex>".
ep_sha256() {
  echo "sha256:$(sha256sum "$1" | cut -d' ' -f1)"
}

# Value of a response header in a file written by curl -D.
ep_header() { # FILE NAME
  tr -d '\r' <"$1" | awk -v n="$2" 'BEGIN { n = tolower(n) }
    { i = index($0, ":"); if (i && tolower(substr($0, 1, i - 1)) == n) {
        v = substr($0, i + 1); sub(/^ +/, "", v); print v } }' | tail -n 1
}

# URL of a blob or manifest through edgepulld, upstream chosen by ?ns=.
ep_blob_url() { # REPO DIGEST
  echo "$EP_URL/v2/$1/blobs/$2?ns=$REGISTRY_HOST"
}
ep_manifest_url() { # REPO REF
  echo "$EP_URL/v2/$1/manifests/$2?ns=$REGISTRY_HOST"
}

# ep_assert_stored DIGEST...: each blob is complete and verified in the store.
# A client may finish reading just before the commit (hash, fsync, rename)
# ends, so each blob gets up to 10 s to appear.
ep_assert_stored() {
  local d f deadline=$((SECONDS + 10))
  for d in "$@"; do
    f=$(ep_store_blob "$d")
    while [ ! -f "$f" ] && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    if [ -f "$f" ] && [ "$(ep_sha256 "$f")" = "$d" ]; then
      ep_pass "store holds verified ${d:0:19}"
    else
      ep_fail "store lacks a verified copy of $d ($f)"
    fi
  done
}

# ep_assert_gets N DIGEST...: the registry got exactly N GETs for each blob.
ep_assert_gets() {
  local n=$1 d
  shift
  for d in "$@"; do
    ep_assert_eq "$n" "$(ep_count_blob_gets "$d")" "registry blob GETs for ${d:0:19}"
  done
}

# Status of a request through curl; body to $1, headers to $1.h.
ep_http() { # BODY_FILE CURL_ARGS...
  local out=$1
  shift
  ep_curl -o "$out" -D "$out.h" -w '%{http_code}' "$@" || true
}

# ep_assert_error_json FILE WHAT: an OCI error body with errors[0].code.
ep_assert_error_json() {
  local code
  code=$(jq -er '.errors[0].code | strings' "$1" 2>/dev/null) || code=
  if [ -n "$code" ]; then
    ep_pass "$2: error JSON ($code)"
  else
    ep_fail "$2: body is not OCI error JSON: $(head -c 200 "$1" | tr -c '[:print:]' '?')"
  fi
}
