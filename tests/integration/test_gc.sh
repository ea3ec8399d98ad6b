#!/usr/bin/env bash
# The disk GC (issue 14 point 3) under concurrent pulls with a small quota.
# A real docker-registry, mosquitto, and two edgepulld nodes of a locality:
# gw (the gateway, --store-max 4M, the flag under test) and obs (default
# flags), whose index is the locality's view of gw. Shown:
#  a. a pinned image (edgepullctl pin) keeps all its blobs through GC;
#  b. a blob a client is still reading is never removed while it reads,
#     and the client gets every byte right;
#  c. after 12 x 1 MB of concurrent pulls, the store is back under the high
#     watermark (90 % of 4 MB) and GC evictions show in /metrics and stat;
#  d. gw's index, gw's store and obs's view of gw's inventory agree: the
#     removals reached the locality as inventory deltas with `del`;
#  e. gc --dry-run changes nothing, and the real gc then removes what it
#     listed;
#  f. a stale partial (older than --partial-max-age) is removed by gc;
#  g. du reports the store, the pins and the images; two images sharing
#     their blobs count them for each image and once in the total.
# shellcheck source=../lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source=../lib/mkimage.sh
. "$EP_SOURCE_DIR/tests/lib/mkimage.sh"
# shellcheck source=../lib/locality.sh
. "$EP_SOURCE_DIR/tests/lib/locality.sh"
# 450 s: quiet runs take 100-240 s, most of it edgepullctl under ASan (a
# `where` per blob, ~100 ms each, in every agreement check); ctest's own
# limit is 600.
ep_init test_gc 450
ep_loc_require
ep_require_cmd docker-registry skopeo jq curl

MAX=4000000 # --store-max 4M: decimal, as common/size.h reads "M"
HIGH=$((MAX * 90 / 100))
LOW=$((MAX * 75 / 100))

ep_start_registry
layout=$(ep_tmpdir layout)
ep_mkimage "$layout" v1 amd64 gzip:300K gzip:300K
ep_push_image "$layout" v1 gc/pinned
PIN_BLOBS=("${EP_PUSHED_BLOBS[@]}")
PIN_MANIFEST=$EP_PUSHED_DIGEST
ep_push_image "$layout" v1 gc/twin # the same blobs under a second name: du's "shared"
ep_mkimage "$layout" v1 amd64 gzip:24M
ep_push_image "$layout" v1 gc/slow
SLOW=${EP_PUSHED_LAYERS[0]}
ep_mkimage "$layout" v1 amd64 gzip:1M gzip:1M gzip:1M gzip:1M gzip:1M gzip:1M \
  gzip:1M gzip:1M gzip:1M gzip:1M gzip:1M gzip:1M
ep_push_image "$layout" v1 gc/bulk
BULK=("${EP_PUSHED_LAYERS[@]}")
mapfile -t fill < <(yes gzip:100K | head -n 36)
ep_mkimage "$layout" v1 amd64 "${fill[@]}"
ep_push_image "$layout" v1 gc/fill
FILL=("${EP_PUSHED_LAYERS[@]}")
rm -rf "$layout"

# shellcheck disable=SC2119 # no extra listener
ep_mqtt_start
COMMON=(--registry "$REGISTRY_HOST=$REGISTRY_URL") # the daemons' defaults otherwise
ep_node_start gw --gateway --store-max 4M "${COMMON[@]}"
ep_node_start obs "${COMMON[@]}"
GW=${NODE_URL[gw]}
EP_LOGS+=("$EP_TMP/curl.log")

get_blob() { # REPO DIGEST [CURL ARGS...]: GET through gw, check the bytes
  local repo=$1 d=$2 out
  shift 2
  out=$(mktemp "$EP_TMP/blob.XXXXXX")
  ep_curl -fsS "$@" -o "$out" "$GW/v2/$repo/blobs/$d?ns=$REGISTRY_HOST" 2>>"$EP_TMP/curl.log" &&
    [ "$(ep_sha256 "$out")" = "$d" ]
  local rc=$?
  rm -f "$out"
  return "$rc"
}
store_bytes() { # the complete blobs in gw's store
  find "${NODE_STATE[gw]}/blobs/sha256" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }'
}
gwctl() { ep_node_ctl gw --endpoint "127.0.0.1:${NODE_PORT[gw]}" "$@"; }

# --- a. pin an image this node holds ------------------------------------------
ep_curl -fsS -o /dev/null -H "Accept: $EP_MT_MANIFEST" \
  "$GW/v2/gc/pinned/manifests/v1?ns=$REGISTRY_HOST" || ep_die "manifest of gc/pinned"
for d in "${PIN_BLOBS[@]}"; do get_blob gc/pinned "$d" || ep_die "GET $d"; done
gwctl pin "$REGISTRY_HOST/gc/pinned:v1" >"$EP_TMP/pin.out" || ep_die "pin failed"
ep_assert_match "pinned .*$PIN_MANIFEST" "$(cat "$EP_TMP/pin.out")" "pin names the manifest digest"
ep_assert_not "pin of an image this node never pulled fails" \
  gwctl pin "$REGISTRY_HOST/gc/never:v1"

# --- b, c. a slow reader and concurrent pulls over the quota --------------------
# The slow reader fetches a 24 MB blob at 3 MB/s (about 8 s; large enough
# that the sockets' buffers cannot take it all and end the response early);
# the blob is committed at once (the registry is fast), so while the client
# reads, the GC sees it complete, over the quota, and must leave it alone.
get_blob gc/slow "$SLOW" --limit-rate 3M &
slow_pid=$!
slow_file=${NODE_STATE[gw]}/blobs/sha256/${SLOW#sha256:}
deadline=$((SECONDS + 30))
while [ ! -f "$slow_file" ] && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.05; done
[ -f "$slow_file" ] || ep_die "the slow blob was never committed"
pids=()
for d in "${BULK[@]}"; do
  get_blob gc/bulk "$d" &
  pids+=($!)
done
max=0 gone_while_read=0
while kill -0 "$slow_pid" 2>/dev/null; do
  [ -f "$slow_file" ] || gone_while_read=1
  b=$(store_bytes)
  [ "$b" -le "$max" ] || max=$b
  sleep 0.1
done
failed=0
for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
ep_assert_eq 0 "$failed" "12 concurrent 1 MB pulls through gw got the right bytes"
ep_assert "the slow reader got every byte right" wait "$slow_pid"
ep_assert_eq 0 "$gone_while_read" "the blob being read stayed in the store while it was read"
ep_log "largest store seen during the pulls: $max bytes (quota $MAX, high watermark $HIGH)"
# Once no client reads, a commit's GC pass (or the 30 s period) brings the
# store under the high watermark.
deadline=$((SECONDS + 45))
while [ "$(store_bytes)" -gt "$HIGH" ] && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
got=$(store_bytes)
ep_assert "store under the high watermark after the pulls ($got <= $HIGH bytes)" \
  test "$got" -le "$HIGH"
for d in "${PIN_BLOBS[@]}" "$PIN_MANIFEST"; do
  ep_assert "pinned ${d:0:19} is still stored" test -f "${NODE_STATE[gw]}/blobs/sha256/${d#sha256:}"
done
ev=$(ep_curl -fsS "$GW/metrics" | awk '$1 == "edgepull_gc_evictions_total" { print $2 }')
ep_assert "edgepull_gc_evictions_total counts the removals ($ev)" test "${ev:-0}" -ge 8
ep_assert_match "store_max_bytes +$MAX" "$(gwctl stat)" "stat shows the quota"

# --- d. the index and the locality agree ---------------------------------------
ALL=("${PIN_BLOBS[@]}" "$PIN_MANIFEST" "$SLOW" "${BULK[@]}" "${FILL[@]}")
disagree() { # empty when gw's store, gw's index and obs's view agree on every blob
  local d in_store in_index in_obs complete
  # gw's complete blobs, read once: a jq per blob made each call seconds
  # longer, and agree() calls it until they agree.
  complete=$(gwctl layers --json --no-trunc 2>/dev/null |
    jq -r '.layers[] | select(.state == "complete") | .digest') || { echo "layers failed"; return; }
  for d in "${ALL[@]}"; do
    in_store=0 in_index=0 in_obs=0
    [ -f "${NODE_STATE[gw]}/blobs/sha256/${d#sha256:}" ] && in_store=1
    grep -qxF "$d" <<<"$complete" && in_index=1
    ep_node_ctl obs where "$d" --json 2>/dev/null | jq -e '.nodes[] | select(.id == "gw")' \
      >/dev/null && in_obs=1
    [ "$in_store$in_index$in_obs" = 000 ] || [ "$in_store$in_index$in_obs" = 111 ] ||
      echo "${d:0:19}: store $in_store index $in_index obs $in_obs"
  done
}
agree() { # WHAT: within 30 s (deltas are batched, the broker relays)
  local deadline=$((SECONDS + 30))
  while [ -n "$(disagree)" ] && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.5; done
  ep_assert_eq "" "$(disagree)" "gw's store, gw's index and obs's view of gw agree $1"
}
agree "after the automatic passes"
ep_assert "obs learnt of removals: some bulk blob is gone from its view of gw" \
  test "$(for d in "${BULK[@]}"; do ep_node_ctl obs where "$d" --json | jq '.nodes | length'; done |
    grep -c '^0$')" -ge 1
ep_assert "gw published inventory deltas with del" grep -q 'gc: removed' "${NODE_LOG[gw]}"

# --- e. a dry run changes nothing ------------------------------------------------
# Fill the store to between the watermarks, 100 kB at a time (no automatic
# pass: it is under the high one), so a forced gc has something to remove.
for d in "${FILL[@]}"; do
  [ "$(store_bytes)" -le $((LOW + 100000)) ] || break
  get_blob gc/fill "$d" || ep_die "GET $d"
done
sleep 1 # a commit's pass, if any, is done
got=$(store_bytes)
ep_assert "store between the watermarks before the dry run ($LOW < $got <= $HIGH)" \
  test "$got" -gt "$LOW" -a "$got" -le "$HIGH"
listing() { ls "${NODE_STATE[gw]}/blobs/sha256"; gwctl layers --json --no-trunc | jq -c '[.layers[].digest] | sort'; }
before=$(listing)
gwctl gc --dry-run --json >"$EP_TMP/dry.json" || ep_die "gc --dry-run failed"
ep_assert_eq "$before" "$(listing)" "gc --dry-run leaves the store and the index as they were"
ep_assert_eq true "$(jq .dry_run "$EP_TMP/dry.json")" "the dry run says so"
would=$(jq -c '.blobs | sort' "$EP_TMP/dry.json")
ep_log "dry run: would remove $would"
ep_assert "the dry run lists blobs to remove" test "$(jq '.blobs | length' "$EP_TMP/dry.json")" -ge 1

# --- f. a stale partial goes with the next gc ------------------------------------
stale=${NODE_STATE[gw]}/ingest/$(printf '%064d' 7).partial
head -c 1000 /dev/urandom >"$stale"
touch -d '3 days ago' "$stale"
gwctl gc --json >"$EP_TMP/gc.json" || ep_die "gc failed"
ep_assert_eq "$would" "$(jq -c '.blobs | sort' "$EP_TMP/gc.json")" "gc removes what the dry run listed"
got=$(store_bytes)
ep_assert "gc brought the store to the low watermark ($got <= $LOW)" test "$got" -le "$LOW"
agree "after edgepullctl gc"
ep_assert "gc removed the stale partial" test ! -e "$stale"
ep_assert "gc reports the partial" test "$(jq .partials "$EP_TMP/gc.json")" -ge 1
for d in "${PIN_BLOBS[@]}"; do
  ep_assert "pinned ${d:0:19} survives a forced gc" test -f "${NODE_STATE[gw]}/blobs/sha256/${d#sha256:}"
done

# --- g. du ------------------------------------------------------------------------
gwctl du --json >"$EP_TMP/du.json" || ep_die "du failed"
ep_assert_eq "$(gwctl stat --json | jq .blob_bytes)" "$(jq .store_bytes "$EP_TMP/du.json")" \
  "du's store bytes are the index's"
# shellcheck disable=SC2016 # a jq program
ep_assert "du lists the pin" jq -e --arg d "$PIN_MANIFEST" '.pins[] | select(.digest == $d)' \
  "$EP_TMP/du.json"
ep_assert "du counts the pinned blobs' bytes" test "$(jq .pinned_bytes "$EP_TMP/du.json")" -ge 600000
ep_curl -fsS -o /dev/null -H "Accept: $EP_MT_MANIFEST" \
  "$GW/v2/gc/twin/manifests/v1?ns=$REGISTRY_HOST" || ep_die "manifest of gc/twin"
gwctl du --json >"$EP_TMP/du2.json" || ep_die "du failed"
image_field() { # IMAGE FIELD: one image's figure in du2.json
  # shellcheck disable=SC2016 # a jq program
  jq -r --arg i "$REGISTRY_HOST/$1" --arg f "$2" '.images[] | select(.image == $i) | .[$f]' \
    "$EP_TMP/du2.json"
}
pin_bytes=$(image_field gc/pinned:v1 bytes)
ep_assert "du sizes gc/pinned:v1 ($pin_bytes bytes)" test "${pin_bytes:-0}" -ge 600000
ep_assert_eq "$pin_bytes" "$(image_field gc/twin:v1 bytes)" "du gives gc/twin:v1 the same bytes"
ep_assert_eq "$pin_bytes" "$(image_field gc/twin:v1 shared_bytes)" "all of gc/twin:v1 is shared"
ep_assert_eq "$pin_bytes" "$(jq .shared_bytes "$EP_TMP/du2.json")" \
  "the shared bytes count once in the total"
ep_assert "the images' total counts each blob once (<= the store)" \
  test "$(jq .images_bytes "$EP_TMP/du2.json")" -le "$(jq .store_bytes "$EP_TMP/du2.json")"
ep_assert_match "shared by two or more" "$(gwctl du)" "du says what is shared"
gwctl unpin "$REGISTRY_HOST/gc/pinned:v1" >/dev/null || ep_die "unpin failed"
ep_assert_eq "[]" "$(gwctl du --json | jq -c .pins)" "unpin removes the pin"

for id in gw obs; do
  ep_assert "$id exits 0 on SIGTERM" ep_node_stop "$id"
  ep_check_sanitizers "${NODE_LOG[$id]}"
done
ep_finish
