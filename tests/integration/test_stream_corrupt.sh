#!/usr/bin/env bash
# A peer that serves wrong bytes (issue 4, point 3). 6 nodes + gateway,
# `--topology chain`. A blob is pulled on X (the chain's 2nd node below the
# gateway), so the gateway, X's parent and X hold it and X advertises it;
# then 16 bytes in the middle of X's complete copy are flipped in place (same
# size; X keeps running, so its inventory still lists the blob), and X's
# child Y pulls the blob through its own edgepulld, whose parent X serves the
# bad bytes.
#  a. Y's client ends with the right bytes (it may see one aborted transfer
#     first: cut-through forwards before the digest is known; up to 3 tries);
#  b. Y detected it: its log has a digest mismatch naming X (id or address);
#  c. X was reported: a message on edgepull/v1/<loc>/node/Y/report with
#     suspect X (mosquitto_sub), and the coordinator stops choosing X as Y's
#     parent (within 15 s);
#  d. clean data committed everywhere: Y and every node below it pull the
#     blob and hold it verified, no partial is left, and the registry still
#     served it only once (the clean copy came from a peer).
. "$(dirname "$0")/../lib/common.sh"
. "$EP_SOURCE_DIR/tests/lib/mkimage.sh"
. "$EP_SOURCE_DIR/tests/lib/locality.sh"
. "$EP_SOURCE_DIR/tests/lib/netlocality.sh"
ep_init test_stream_corrupt 240
nl_require
ep_require_cmd python3

nl_create "${STREAM_NODES:-6}"
nl_start_registry
ep_mkimage "$EP_TMP/img" v1 amd64 gzip:16M
ep_push_image "$EP_TMP/img" v1 stream/bad
B=${EP_IMG_LAYERS[0]}
B_BYTES=$(nl_blob_size "$B")

nl_start_broker
nl_start_coordinator chain
nl_start_all
nl_wait_topology 60
mapfile -t CHAIN < <(nl_chain)
[ ${#CHAIN[@]} -eq ${#NL_ALL[@]} ] || ep_die "not one chain: ${CHAIN[*]}"
X=${CHAIN[2]}
Y=${CHAIN[3]}
BELOW=("${CHAIN[@]:3}")
ep_log "chain ${CHAIN[*]}; bad peer $X, its child $Y; blob ${B:0:19} ($B_BYTES B)"
REP=$EP_TMP/report.rec
nl_mqtt_record "$REP" "edgepull/v1/$EP_LOC/node/+/report"

# pull ID FILE: the blob through ID's own edgepulld; prints the curl status.
pull() {
  local rc=0
  nl_node_curl "$1" -f -o "$2" "${NODE_URL[$1]}/v2/stream/bad/blobs/$B?ns=$REGISTRY_HOST" \
    2>>"$EP_TMP/curl-$1.err" || rc=$?
  echo "$rc"
}

ep_assert_eq 0 "$(pull "$X" "$EP_TMP/x.bin")" "setup: $X pulls the blob"
problems=$(nl_wait_stores 15 "gw ${CHAIN[1]} $X" "$B")
ep_assert_eq "" "$problems" "setup: gw, ${CHAIN[1]} and $X hold it verified"
# Y must know that X holds it (X's inventory reached Y's index).
for ((i = 0; i < 60; i++)); do
  ep_node_ctl "$Y" where "$B" --json 2>/dev/null | jq -e --arg x "$X" \
    '.nodes | map(.id) | index($x)' >/dev/null && break
  sleep 0.25
done
ep_assert "setup: $Y's index lists $X as a holder" eval \
  "ep_node_ctl $Y where $B --json | jq -e --arg x $X '.nodes | map(.id) | index(\$x)' >/dev/null"

# Flip 16 bytes in the middle of X's copy, in place.
F=${NODE_STATE[$X]}/blobs/sha256/${B#sha256:}
mode=$(stat -c %a "$F")
chmod u+w "$F"
off=$((B_BYTES / 2))
python3 -c 'import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2])); b = f.read(16)
    f.seek(int(sys.argv[2])); f.write(bytes(x ^ 0xFF for x in b))' "$F" "$off"
chmod "$mode" "$F"
ep_assert_eq "$B_BYTES" "$(stat -c %s "$F")" "setup: $X's copy keeps its size"
ep_assert_ne "$B" "$(ep_sha256 "$F")" "setup: $X's copy is corrupt"

# --- a. Y pulls through its parent X ----------------------------------------------

tries=0
got=none
for tries in 1 2 3; do
  rc=$(pull "$Y" "$EP_TMP/y.bin")
  got=$(ep_sha256 "$EP_TMP/y.bin" 2>/dev/null || echo none)
  echo "try $tries on $Y: curl exit $rc, $(stat -c %s "$EP_TMP/y.bin" 2>/dev/null || echo 0) B"
  [ "$rc" != 0 ] || [ "$got" != "$B" ] || break
done
ep_assert_eq "$B" "$got" "a: $Y's client ends with the right bytes (after $tries tries)"

# --- b. detection ---------------------------------------------------------------------

line=$(grep -iE 'mismatch|digest' "${NODE_LOG[$Y]}" | grep -E "\\b$X\\b|${NL_ADDR[$X]//./\\.}" |
  head -n 1 || true)
echo "$Y's log: ${line:-(no line)}"
ep_assert_ne "" "$line" "b: $Y logs a digest mismatch naming $X"

# --- c. reported --------------------------------------------------------------------

for ((i = 0; i < 40; i++)); do
  grep -q " edgepull/v1/$EP_LOC/node/$Y/report " "$REP" && break
  sleep 0.25
done
echo "report topic: $(grep -m1 "/node/$Y/report " "$REP" | cut -c1-400 || echo '(nothing)')"
suspect=$(grep -m1 " edgepull/v1/$EP_LOC/node/$Y/report " "$REP" | cut -d' ' -f3- |
  jq -r '.suspect // empty' 2>/dev/null || true)
ep_assert_eq "$X" "$suspect" "c: $Y reported $X as the suspect on its report topic"
echo "coordinator: $(grep -m3 -E "\\b$X\\b" "$COORD_LOG" | grep -iE 'suspect|report|bad|mismatch' |
  tr '\n' '|' || true)"
for ((i = 0; i < 60; i++)); do
  par=$(nl_parents | awk -v y="$Y" '$1 == y { print $2 }')
  [ "$par" = "$X" ] || break
  sleep 0.25
done
ep_assert_ne "$X" "$par" "c: the coordinator no longer gives $Y the parent $X (now '$par')"

# --- d. clean data everywhere ---------------------------------------------------------

for id in "${BELOW[@]:1}"; do
  ep_assert_eq 0 "$(pull "$id" "$EP_TMP/$id.bin")" "d: $id pulls the blob"
done
others=$(printf '%s\n' "${NL_ALL[@]}" | grep -vx "$X" | tr '\n' ' ')
problems=$(nl_wait_stores 15 "${BELOW[*]}" "$B")
ep_assert_eq "" "$problems" "d: ${BELOW[*]} hold the blob verified"
problems=$(for id in $others; do nl_store_problems "$id"; done)
ep_assert_eq "" "$(head -n 5 <<<"$problems")" "d: no store but $X's holds a bad file"
left=$(for id in $others; do ls "${NODE_STATE[$id]}/ingest/" 2>/dev/null | sed "s/^/$id: /"; done)
ep_assert_eq "" "$left" "d: no partial left in ingest/"
ep_assert_eq 1 "$(ep_count_blob_gets "$B")" "d: the registry served the blob once"

nl_stop_all
ep_finish
