#!/usr/bin/env bash
# A node dies in the middle of a streamed rollout (issue 4, points 2 and 4;
# issue 11, points 1, 2 and 4), with every daemon on its DEFAULT flags
# (no --keepalive/--heartbeat tuning, the coordinator's defaults too) and
# the stores on a real disk (TMPDIR, default /var/tmp; never tmpfs).
# 6 nodes + gateway, coordinator with `--topology chain` (gw → … → n6), or
# STREAM_KILL_TOPOLOGY (test_stream_kill_tree.sh: tree:2, the victim a node
# with two children). One round per mode (STREAM_KILL_MODES, default
# "pull deploy") and kill point (STREAM_KILL_POINTS, default "5 50 95 100"),
# each with an image of its own: while every node pulls every blob through
# its own edgepulld at once (pull), or during `edgepullctl deploy --wait`
# (deploy), the middle node of the chain is killed with SIGKILL when its
# ingest/<hex>.partial of the large layer holds P % of it (100: the whole
# layer, i.e. between its last byte and the end of its commit). Between
# rounds it restarts and rejoins; the next victim is the new middle.
#  a. the victim died at P % of the large layer (100: whole, not yet moved or
#     just committed); after its restart it holds the layer without asking
#     anyone for it (a complete partial is committed at start);
#  b. every other node ends with every blob, each file hashing to its name
#     (pull mode: every surviving client's download completes, right digest);
#  c. the registry served each blob at most twice;
#  d. each survivor received at most 1.1 × the bytes it needed: rx bytes of
#     its LAN veth, divided by the framing factor, vs. the sum of the blobs.
# Printed per round: the pause of the victim's children (kill → their
# partial grows again), the heal time with the default flags.
export TMPDIR=${STREAM_KILL_TMPDIR:-/var/tmp}
. "$(dirname "$0")/../lib/common.sh"
. "$EP_SOURCE_DIR/tests/lib/mkimage.sh"
. "$EP_SOURCE_DIR/tests/lib/locality.sh"
. "$EP_SOURCE_DIR/tests/lib/netlocality.sh"
ep_init "${STREAM_KILL_NAME:-test_stream_kill}" 900
nl_require

NL_NODE_TUNING= # the daemons' defaults: keepalive 10, heartbeat 30
NL_COORD_TUNING=
TOPO=${STREAM_KILL_TOPOLOGY:-chain}
BIG_SIZE=${STREAM_BIG:-24M}
NL_LAN_MBPS=${NL_LAN_MBPS:-50} # 24 MB in ~4 s: the 95 % point is ~200 ms wide
fstype=$(stat -f -c %T "$EP_TMP")
ep_log "stores under $EP_TMP ($fstype)"
ep_assert_ne tmpfs "$fstype" "the stores are on a real disk, not tmpfs"
nl_create "${STREAM_NODES:-6}"
nl_start_registry
FRAME=$(nl_frame_factor)
nl_start_broker
nl_start_coordinator "$TOPO"
nl_start_all
nl_wait_topology 60

# The node to kill: the middle of the chain, or a node with two children.
pick_victim() {
  local chain view
  if [ "$TOPO" = chain ]; then
    mapfile -t chain < <(nl_chain)
    [ ${#chain[@]} -eq ${#NL_ALL[@]} ] || ep_die "not one chain: ${chain[*]}"
    echo "${chain[$((${#chain[@]} / 2))]}"
    return
  fi
  view=$(nl_parents)
  awk '$2 != "-" && $2 != "gw" { n[$2]++ } END { for (p in n) if (n[p] == 2) { print p; exit } }' \
    <<<"$view" | grep . || ep_die "no node with two children: $(tr '\n' ',' <<<"$view")"
}

# kill_at VICTIM DIGEST SIZE PCT: SIGKILL once the partial holds PCT % (100:
# all of it, or the blob just committed); prints "fraction partial|committed".
kill_at() {
  local victim=$1 big=$2 size=$3 pct=$4 have deadline blob
  blob=${NODE_STATE[$victim]}/blobs/sha256/${big#sha256:}
  deadline=$((SECONDS + 120))
  while [ "$SECONDS" -lt "$deadline" ]; do
    have=$(nl_partial_size "$victim" "$big" 2>/dev/null || echo 0) # it may be renamed meanwhile
    if [ "$have" -ge $((size * pct / 100)) ] && [ "$have" -gt 0 ]; then
      nl_kill_node "$victim"
      echo "$(nl_ratio "$have" "$size") partial"
      return
    fi
    if [ -f "$blob" ]; then
      nl_kill_node "$victim"
      echo "1.000 committed"
      return
    fi
    sleep 0.01
  done
  nl_kill_node "$victim" 2>/dev/null || true
  echo "0 never"
}

# stores_done SECONDS "ID..." DIGEST...: waits until every node holds every
# digest, then prints one line per blob missing or not hashing to its name
# (only this round's blobs are hashed, once).
stores_done() {
  local deadline=$((SECONDS + $1)) ids=$2 id d f missing
  shift 2
  while :; do
    missing=
    for id in $ids; do
      for d in "$@"; do
        [ -f "${NODE_STATE[$id]}/blobs/sha256/${d#sha256:}" ] || missing=1
      done
    done
    [ -n "$missing" ] && [ "$SECONDS" -lt "$deadline" ] || break
    sleep 0.2
  done
  for id in $ids; do
    for d in "$@"; do
      f=${NODE_STATE[$id]}/blobs/sha256/${d#sha256:}
      if [ ! -f "$f" ]; then
        echo "$id: lacks ${d:0:19}"
      elif [ "sha256:$(sha256sum "$f" | cut -d' ' -f1)" != "$d" ]; then
        echo "$id: ${d:0:19} does not hash to its name"
      fi
    done
  done
}

# pause_of VICTIM-CHILDREN DIGEST: seconds until every child's partial of
# DIGEST grew again (or it is committed), at most 60.
pause_of() {
  local kids=$1 big=$2 t0 id grown s0
  declare -A start=()
  t0=$(date +%s.%N)
  for id in $kids; do start[$id]=$(nl_partial_size "$id" "$big" 2>/dev/null || echo 0); done
  for ((i = 0; i < 3000; i++)); do
    grown=1
    for id in $kids; do
      [ -f "${NODE_STATE[$id]}/blobs/sha256/${big#sha256:}" ] && continue
      s0=${start[$id]}
      [ "$(nl_partial_size "$id" "$big" 2>/dev/null || echo 0)" -gt $((s0 + 65536)) ] || grown=0
    done
    [ "$grown" = 0 ] || break
    sleep 0.02
  done
  awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'
}

# round MODE PCT TAG: one rollout of a fresh image stream/kill:TAG with a kill.
round() {
  local mode=$1 pct=$2 tag=$3 id d key rc got kill_r frac t0 kill_t done_t pause watcher
  local blobs big big_bytes need victim survivors=() kids bad=() nclients=0 rx payload states
  ep_mkimage "$EP_TMP/img" "$tag" amd64 gzip:1M "gzip:$BIG_SIZE" gzip:1M
  ep_push_image "$EP_TMP/img" "$tag" stream/kill
  blobs=("${EP_PUSHED_BLOBS[@]}")
  big=${EP_IMG_LAYERS[1]}
  big_bytes=$(nl_blob_size "$big")
  need=$(nl_blobs_size "${blobs[@]}")
  victim=$(pick_victim)
  kids=$(nl_parents | awk -v v="$victim" '$2 == v { print $1 }' | tr '\n' ' ')
  for id in "${NL_ALL[@]}"; do [ "$id" = "$victim" ] || survivors+=("$id"); done
  echo "== $mode round, kill at $pct %: $TOPO; victim $victim (children: ${kids:-none});" \
    "large layer ${big:0:19} $big_bytes B"
  declare -A rx0=() client=()
  for id in "${NL_ALL[@]}"; do rx0[$id]=$(nl_lan_rx_bytes "$id"); done

  t0=$(date +%s.%N)
  # The watcher starts before the clients, so 5 % is not missed while they start.
  kill_at "$victim" "$big" "$big_bytes" "$pct" >"$EP_TMP/kill-$tag" &
  watcher=$!
  if [ "$mode" = deploy ]; then
    NL_DEPLOY_TIMEOUT=120 nl_deploy "$REGISTRY_HOST/stream/kill:$tag" --wait --json --import none \
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

  wait "$watcher" || true
  nl_kill_node "$victim" 2>/dev/null || true # reaps it (the watcher's kill is in a subshell)
  kill_r=$(cat "$EP_TMP/kill-$tag")
  [ -n "$kill_r" ] || kill_r="0 watcher-failed"
  frac=${kill_r% *}
  kill_t=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
  # (measured from the end of the watcher: an upper bound on the pause)
  pause=$( [ -z "$kids" ] || pause_of "$kids" "$big")
  echo "killed $victim at $kill_t s with $frac of the large layer (${kill_r#* });" \
    "its children resumed after ${pause:-n/a} s"
  if [ "$pct" -lt 100 ]; then
    ep_assert "a/$mode/$pct: $victim killed at ≥ $pct % and before the end ($frac)" \
      awk -v f="$frac" -v p="$pct" 'BEGIN { exit !(f >= p / 100 && f < 1) }'
  else
    ep_assert_match "^1.000 (partial|committed)" "$kill_r" \
      "a/$mode/$pct: $victim killed holding the whole layer"
  fi

  problems=$(stores_done 150 "${survivors[*]}" "${blobs[@]}")
  done_t=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
  ep_assert_eq "" "$(head -n 5 <<<"$problems")" \
    "b/$mode/$pct: all ${#survivors[@]} survivors hold all ${#blobs[@]} blobs, verified ($done_t s)"
  if [ "$mode" = deploy ]; then
    rc=0
    wait "${client[deploy]}" || rc=$?
    echo "deploy exit $rc (a node died: a failure report for it is expected); final line:"
    echo "  $(tail -n 1 "$EP_TMP/deploy-$tag.json" | cut -c1-600)"
    [ ! -s "$EP_TMP/deploy-$tag.err" ] || echo "  stderr: $(tail -n 3 "$EP_TMP/deploy-$tag.err")"
    ep_assert_ne 124 "$rc" "b/$mode/$pct: the deploy ends by itself (not by the 120 s bound)"
    ep_assert "b/$mode/$pct: the deploy ends with its report" nl_json_report "$EP_TMP/deploy-$tag.json"
    states=$(tail -n 1 "$EP_TMP/deploy-$tag.json" |
      jq -r '.nodes[]? | "\(.node)=\(.state)"' 2>/dev/null | sort | tr '\n' ' ' || true)
    echo "report states: $states"
    for id in "${survivors[@]}"; do
      case " $states" in *" $id=done "*) ;; *) bad+=("$id") ;; esac
    done
    ep_assert_eq "" "${bad[*]}" "b/$mode/$pct: the report has every survivor done"
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
    ep_assert_eq "" "${bad[*]}" \
      "b/$mode/$pct: all $nclients surviving clients' downloads complete and verify"
  fi
  for d in "${blobs[@]}"; do
    got=$(ep_count_blob_gets "$d")
    ep_assert "c/$mode/$pct: registry GETs for ${d:0:19}: $got ≤ 2" test "$got" -le 2
  done

  echo "bytes received per survivor (LAN veth rx / framing $FRAME) vs. $need B needed:"
  for id in "${survivors[@]}"; do
    rx=$(($(nl_lan_rx_bytes "$id") - rx0[$id]))
    payload=$(awk -v b="$rx" -v f="$FRAME" 'BEGIN { printf "%d", b / f }')
    printf '  %-3s rx %10d B  payload ~%10d B  ×%s\n' "$id" "$rx" "$payload" \
      "$(nl_ratio "$payload" "$need")"
    [ "$id" != gw ] || continue # its bytes come over the uplink (c)
    ep_assert "d/$mode/$pct: $id received ≤ 1.1 × what it needed ($(nl_ratio "$payload" "$need"))" \
      nl_le "$payload" "$need" 1.1
  done

  # The victim comes back with the same state and rejoins. Killed holding
  # the whole layer, it commits that partial at start: no fetch needed.
  nl_start_node "$victim"
  nl_wait_topology 60
  if [ "$pct" -ge 100 ]; then
    problems=$(stores_done 10 "$victim" "$big")
    ep_assert_eq "" "$problems" "a/$mode/$pct: $victim holds the layer after its restart"
    ep_assert_eq 0 "$(nl_partial_size "$victim" "$big")" "a/$mode/$pct: no partial left behind"
  fi
  echo "round $mode/$pct: kill at $kill_t s, children paused ${pause:-n/a} s, all done at $done_t s"
}

n=0
for mode in ${STREAM_KILL_MODES:-pull deploy}; do
  for pct in ${STREAM_KILL_POINTS:-5 50 95 100}; do
    n=$((n + 1))
    round "$mode" "$pct" "v$n"
  done
done

nl_stop_all
ep_finish
