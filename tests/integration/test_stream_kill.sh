#!/usr/bin/env bash
# A node dies in the middle of a streamed rollout (issue 4, points 2 and 4).
# 6 nodes + gateway, coordinator with `--topology chain` (gw → … → n6, so the
# victim and its downstream are known), an image with a ~64 MB layer.
# Two rounds (STREAM_KILL_MODES, default "pull deploy"), each with an image of
# its own: while every node pulls every blob through its own edgepulld at
# once (pull), then during `edgepullctl deploy --wait` (deploy), the middle
# node of the chain is killed with SIGKILL when its ingest/<hex>.partial of
# the large layer holds about half of it; between rounds it restarts and
# rejoins (at the chain's tail), and the next round's victim is the new
# middle.
#  a. the victim died between 30 % and 80 % of the large layer;
#  b. every other node ends with every blob, each file hashing to its name
#     (pull mode: every surviving client's download completes, right digest);
#  c. the registry served each blob once (the gateway never refetched);
#  d. each survivor received at most 1.1 × the bytes it needed: rx bytes of
#     its LAN veth, divided by the framing factor, vs. the sum of the blobs.
. "$(dirname "$0")/../lib/common.sh"
. "$EP_SOURCE_DIR/tests/lib/mkimage.sh"
. "$EP_SOURCE_DIR/tests/lib/locality.sh"
. "$EP_SOURCE_DIR/tests/lib/netlocality.sh"
ep_init test_stream_kill 240
nl_require

BIG_SIZE=${STREAM_BIG:-64M}
nl_create "${STREAM_NODES:-6}"
nl_start_registry
FRAME=$(nl_frame_factor)
nl_start_broker
nl_start_coordinator chain
nl_start_all
nl_wait_topology 60

# round MODE TAG: one rollout of a fresh image stream/kill:TAG with a kill.
round() {
  local mode=$1 tag=$2 id d key rc got frac have deadline t0 kill_t done_t problems
  local blobs big big_bytes need victim survivors=() chain bad=() nclients=0 rx payload
  ep_mkimage "$EP_TMP/img" "$tag" amd64 gzip:2M "gzip:$BIG_SIZE" gzip:2M
  ep_push_image "$EP_TMP/img" "$tag" stream/kill
  blobs=("${EP_PUSHED_BLOBS[@]}")
  big=${EP_IMG_LAYERS[1]}
  big_bytes=$(nl_blob_size "$big")
  need=$(nl_blobs_size "${blobs[@]}")
  mapfile -t chain < <(nl_chain)
  [ ${#chain[@]} -eq ${#NL_ALL[@]} ] || ep_die "not one chain: ${chain[*]}"
  victim=${chain[$((${#chain[@]} / 2))]}
  for id in "${NL_ALL[@]}"; do [ "$id" = "$victim" ] || survivors+=("$id"); done
  echo "== $mode round: chain ${chain[*]}; victim $victim; large layer ${big:0:19} $big_bytes B"
  declare -A rx0=() client=()
  for id in "${NL_ALL[@]}"; do rx0[$id]=$(nl_lan_rx_bytes "$id"); done

  t0=$(date +%s.%N)
  if [ "$mode" = deploy ]; then
    NL_DEPLOY_TIMEOUT=90 nl_deploy "$REGISTRY_HOST/stream/kill:$tag" --wait --json --import none \
      >"$EP_TMP/deploy-$tag.json" 2>"$EP_TMP/deploy-$tag.err" &
    client[deploy]=$!
  else
    for id in "${NL_ALL[@]}"; do
      for d in "${blobs[@]}"; do
        nl_node_curl "$id" -f -o "$EP_TMP/got-$tag-$id-${d#sha256:}" \
          "${NODE_URL[$id]}/v2/stream/kill/blobs/$d?ns=$REGISTRY_HOST" \
          2>>"$EP_TMP/curl-$id.err" &
        client[$id ${d#sha256:}]=$!
      done
    done
  fi

  # Kill the victim at half of the large layer (polled every 20 ms, 120 s max).
  frac=
  deadline=$((SECONDS + 120))
  while [ "$SECONDS" -lt "$deadline" ]; do
    have=$(nl_partial_size "$victim" "$big")
    if [ "$have" -ge $((big_bytes / 2)) ]; then
      nl_kill_node "$victim"
      frac=$(nl_ratio "$have" "$big_bytes")
      break
    fi
    [ ! -f "${NODE_STATE[$victim]}/blobs/sha256/${big#sha256:}" ] || break
    sleep 0.02
  done
  kill_t=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
  if [ -n "$frac" ]; then
    echo "killed $victim at $kill_t s with $frac of the large layer in its ingest/"
    ep_assert "a/$mode: $victim killed with 30-80 % of the large layer ($frac)" \
      awk -v f="$frac" 'BEGIN { exit !(f >= 0.3 && f <= 0.8) }'
  else
    nl_kill_node "$victim" 2>/dev/null || true
    ep_fail "a/$mode: $victim never held half of the large layer in ingest/ (complete: $(
      [ -f "${NODE_STATE[$victim]}/blobs/sha256/${big#sha256:}" ] && echo yes || echo no))"
  fi

  problems=$(nl_wait_stores 150 "${survivors[*]}" "${blobs[@]}")
  done_t=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
  ep_assert_eq "" "$(head -n 5 <<<"$problems")" \
    "b/$mode: all ${#survivors[@]} survivors hold all ${#blobs[@]} blobs, verified ($done_t s)"
  if [ "$mode" = deploy ]; then
    rc=0
    wait "${client[deploy]}" || rc=$?
    echo "deploy exit $rc (a node died: a failure report for it is expected); final line:"
    echo "  $(tail -n 1 "$EP_TMP/deploy-$tag.json" | cut -c1-600)"
    [ ! -s "$EP_TMP/deploy-$tag.err" ] || echo "  stderr: $(tail -n 3 "$EP_TMP/deploy-$tag.err")"
    ep_assert_ne 124 "$rc" "b/$mode: the deploy ends by itself (not by the 90 s bound)"
    ep_assert "b/$mode: the deploy ends with its report" nl_json_report "$EP_TMP/deploy-$tag.json"
    states=$(tail -n 1 "$EP_TMP/deploy-$tag.json" |
      jq -r '.nodes[]? | "\(.node)=\(.state)"' 2>/dev/null | sort | tr '\n' ' ' || true)
    echo "report states: $states"
    for id in "${survivors[@]}"; do
      case " $states" in *" $id=done "*) ;; *) bad+=("$id") ;; esac
    done
    ep_assert_eq "" "${bad[*]}" "b/$mode: the report has every survivor done"
    ep_assert_match " $victim=(failed|offline|lost|gone)" " $states" \
      "b/$mode: the report has $victim not done"
  else
    for key in "${!client[@]}"; do
      id=${key% *}
      rc=0
      wait "${client[$key]}" || rc=$?
      [ "$id" != "$victim" ] || continue
      nclients=$((nclients + 1))
      got=$(ep_sha256 "$EP_TMP/got-$tag-$id-${key#* }" 2>/dev/null || echo none)
      [ "$rc $got" = "0 sha256:${key#* }" ] || bad+=("$id:${key:${#id}+1:12}(curl $rc)")
    done
    ep_assert_eq "" "${bad[*]}" "b/$mode: all $nclients surviving clients' downloads complete and verify"
  fi
  for d in "${blobs[@]}"; do
    ep_assert_eq 1 "$(ep_count_blob_gets "$d")" "c/$mode: registry GETs for ${d:0:19}"
  done

  echo "bytes received per survivor (LAN veth rx / framing $FRAME) vs. $need B needed:"
  for id in "${survivors[@]}"; do
    rx=$(($(nl_lan_rx_bytes "$id") - rx0[$id]))
    payload=$(awk -v b="$rx" -v f="$FRAME" 'BEGIN { printf "%d", b / f }')
    printf '  %-3s rx %10d B  payload ~%10d B  ×%s\n' "$id" "$rx" "$payload" \
      "$(nl_ratio "$payload" "$need")"
    [ "$id" != gw ] || continue # its bytes come over the uplink (c)
    ep_assert "d/$mode: $id received ≤ 1.1 × what it needed ($(nl_ratio "$payload" "$need"))" \
      nl_le "$payload" "$need" 1.1
  done
  VICTIM=$victim
}

n=0
for mode in ${STREAM_KILL_MODES:-pull deploy}; do
  n=$((n + 1))
  if [ "$n" -gt 1 ]; then
    nl_start_node "$VICTIM"
    nl_wait_topology 30
  fi
  round "$mode" "v$n"
done

nl_stop_all
ep_finish
