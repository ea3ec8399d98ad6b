#!/usr/bin/env bash
# A whole locality on loopback: a real mosquitto (persistent), the
# coordinator with tree:2, a gateway and six nodes (edgepulld) that pull real
# blobs from a docker-registry upstream. Checks, through the broker's
# retained messages and each node's own index (edgepullctl):
#  a. every node sees all 7 online, with parent links equal to the retained
#     assignments, forming a tree:2 rooted at the gateway;
#  b. every node's locality index says who holds which blob exactly as the
#     nodes' stores do;
#  c. kill -9 of a node with children: its orphans get a live parent within
#     5 s (the time is printed); nobody else moves;
#  d. broker restart: everything converges again, parents as before;
#  e. coordinator restart: no assignment changes, nothing published;
#  f. the killed node rejoins without moving anybody.
. "$(dirname "$0")/../lib/common.sh"
. "$EP_SOURCE_DIR/tests/lib/mkimage.sh"
. "$EP_SOURCE_DIR/tests/lib/locality.sh"
ep_init test_locality 420
ep_loc_require
ep_require_cmd docker-registry skopeo

# Every daemon runs with its defaults (node keepalive 10 s, heartbeat 30 s;
# coordinator heartbeat timeout 90 s). A kill -9 closes the node's socket, so
# the broker publishes its Will at once, not after 1.5 x keepalive; the
# coordinator holds an offline state 1 s before moving the orphans
# (docs/coordinator.md, "Measured": 1.3-2.0 s with the defaults).
HEAL_LIMIT=5

ep_start_registry
ep_mkimage "$EP_TMP/img" v1 amd64 gzip:48K gzip:64K gzip:80K gzip:96K
ep_push_image "$EP_TMP/img" v1 loc/app
BLOBS=("${EP_PUSHED_BLOBS[@]}")
[ ${#BLOBS[@]} -eq 5 ] || ep_die "expected 5 blobs, registry has ${#BLOBS[@]}"

# shellcheck disable=SC2119 # no extra listener
ep_mqtt_start
REC=$EP_TMP/parents.rec
ep_mqtt_record "$REC" "$EP_LOC_TOPIC/+/parent"
COORD_ARGS=(--topology tree:2)
ep_coord_start "${COORD_ARGS[@]}"

COMMON=(--registry "$REGISTRY_HOST=$REGISTRY_URL")
declare -A MBPS=([gw]=1000 [n1]=1000 [n2]=100 [n3]=500 [n4]=100 [n5]=50 [n6]=200)
ep_node_start gw --gateway --link-mbps "${MBPS[gw]}" "${COMMON[@]}"
for id in n1 n2 n3 n4 n5 n6; do
  ep_node_start "$id" --link-mbps "${MBPS[$id]}" "${COMMON[@]}"
done
ALL=(gw n1 n2 n3 n4 n5 n6)

# Different blobs on different nodes (indexes into BLOBS), each fetched
# through the node's own edgepulld.
declare -A PULLS=([gw]="0" [n1]="1 2" [n2]="2" [n3]="3 4" [n4]="" [n5]="0 4" [n6]="1 3 4")
for id in "${ALL[@]}"; do
  for i in ${PULLS[$id]}; do
    ep_curl -f -o /dev/null "${NODE_URL[$id]}/v2/loc/app/blobs/${BLOBS[i]}?ns=$REGISTRY_HOST" ||
      ep_fail "$id: GET blob ${BLOBS[i]:0:19}"
  done
done
for id in "${ALL[@]}"; do
  EP_STATE=${NODE_STATE[$id]}
  for i in ${PULLS[$id]}; do ep_assert_stored "${BLOBS[i]}"; done
done

# --- helpers ---------------------------------------------------------------

# converged LIVE DEAD [SINCE]: empty output when every live node's index
# shows every live node online (with a state received at or after unix time
# SINCE), every dead one offline, and the retained parents' links and
# epochs; else the first difference.
converged() {
  local live=$1 dead=$2 since=${3:-0} want id view bad
  want=$(ep_loc_parent_view)
  [ "$(grep -c . <<<"$want")" -eq "$(wc -w <<<"$live")" ] || {
    echo "retained parents: $(tr '\n' ',' <<<"$want")"
    return 0
  }
  for id in $live; do
    view=$(ep_node_view "$id")
    bad=$(awk -v live=" $live " -v dead=" $dead " -v since="$since" -v me="$id" '
      { seen[$1] = 1 }
      index(live, " " $1 " ") && $4 != "true" { print me " sees " $1 " offline"; exit }
      index(live, " " $1 " ") && $5 < since { print me ": no state from " $1 " since the restart"; exit }
      index(dead, " " $1 " ") && $4 != "false" { print me " sees " $1 " online"; exit }
      END { n = split(live, l, " "); for (i = 1; i <= n; i++)
              if (!(l[i] in seen)) { print me " does not know " l[i]; exit } }' <<<"$view")
    [ -z "$bad" ] || {
      echo "$bad"
      return 0
    }
    view=$(grep -E "^($(tr ' ' '|' <<<"$live")) " <<<"$view" | cut -d' ' -f1-3)
    [ "$view" = "$want" ] || {
      echo "$id's parents: $(tr '\n' ',' <<<"$view") retained: $(tr '\n' ',' <<<"$want")"
      return 0
    }
  done
}

# wait_converged WHAT SECONDS LIVE DEAD [SINCE]
wait_converged() {
  local deadline=$((SECONDS + $2)) why start=$SECONDS
  while :; do
    why=$(converged "$3" "$4" "${5:-0}")
    [ -n "$why" ] || break
    [ "$SECONDS" -lt "$deadline" ] || break
    sleep 0.5
  done
  if [ -z "$why" ]; then
    ep_pass "$1 (after $((SECONDS - start)) s)"
  else
    ep_fail "$1 within $2 s: $why"
  fi
}

# The topology edgepullctl draws, flattened to "id parent" lines.
topo_links() { # ID
  ep_node_ctl "$1" topology --json |
    jq -r 'def w(p): "\(.id) \(p)", (.id as $i | .children[] | w($i));
           .roots[] | w("-")' | sort
}

# inventory_diff LIVE_OBSERVERS HOLDERS: for each observer Y and holder X,
# the blobs Y's `where` lists X for vs. the files in X's store; prints
# the differences.
inventory_diff() {
  local y x d truth seen
  truth=$(for x in $2; do ep_node_blobs "$x" | sed "s/^/$x /"; done | sort)
  for y in $1; do
    seen=$(for d in "${BLOBS[@]}"; do
      ep_node_ctl "$y" where "$d" --json | jq -r --arg d "$d" '.nodes[] | "\(.id) \($d)"'
    done | sort)
    [ "$seen" = "$truth" ] || {
      echo "$y: index says [$(tr '\n' ',' <<<"$seen")] stores hold [$(tr '\n' ',' <<<"$truth")]"
    }
  done
}

wait_inventory() { # WHAT SECONDS OBSERVERS HOLDERS
  local deadline=$((SECONDS + $2)) why
  while :; do
    why=$(inventory_diff "$3" "$4")
    [ -n "$why" ] || break
    [ "$SECONDS" -lt "$deadline" ] || break
    sleep 0.5
  done
  if [ -z "$why" ]; then
    ep_pass "$1"
  else
    ep_fail "$1: $(head -n 3 <<<"$why")"
  fi
}

# --- a. membership and topology ---------------------------------------------

wait_converged "a: all 7 nodes online in every index, links = retained parents" 40 "${ALL[*]}" ""
ep_assert_eq 7 "$(ep_loc_parents | grep -c .)" "a: 7 retained parent assignments"
ep_assert_eq "" "$(ep_loc_parent_view | ep_loc_tree_check 2 gw)" "a: a valid tree:2 rooted at gw"
want_links=$(ep_loc_parent_view | cut -d' ' -f1,2)
for id in "${ALL[@]}"; do
  ep_assert_eq "$want_links" "$(topo_links "$id")" "a: $id: edgepullctl topology = assignments"
done
ep_assert_eq "[]" "$(ep_node_ctl n3 topology --json | jq -c '.unattached')" \
  "a: nobody unattached"
ep_log "topology:"$'\n'"$(ep_node_ctl n3 topology)"

# --- b. the locality index agrees with the stores ----------------------------

wait_inventory "b: every index lists exactly the blobs each node holds" 20 "${ALL[*]}" "${ALL[*]}"
for id in "${ALL[@]}"; do
  n=$(ep_node_blobs "$id" | grep -c . || true)
  ep_assert_eq "$n" "$(ep_node_ctl n5 nodes --json | jq --arg id "$id" '.nodes[] |
    select(.id == $id) | .blobs')" "b: n5's nodes --json counts $n blobs on $id"
done

# --- c. kill -9 of a node with children ------------------------------------------

before=$(ep_loc_parents)
view=$(ep_loc_parent_view)
victim=$(awk '$2 != "-" && $2 != "gw" { print $2 }' <<<"$view" | sort | uniq -c | sort -rn |
  awk 'NR == 1 { print $2 }')
[ -n "$victim" ] || ep_die "no node below the gateway has children: $view"
mapfile -t orphans < <(awk -v v="$victim" '$2 == v { print $1 }' <<<"$view")
live=$(printf '%s\n' "${ALL[@]}" | grep -vx "$victim" | tr '\n' ' ')
live=${live% }
ep_log "killing $victim (children: ${orphans[*]})"
t0=$(date +%s.%N)
ep_node_kill "$victim"

# Poll every 100 ms the recorded parent messages: each orphan's latest
# assignment after t0 must name a live node; the heal time is the arrival
# of the last one.
healed=
for ((i = 0; i < 100; i++)); do
  healed=$(awk -v t0="$t0" -v v="$victim" -v orph="${orphans[*]}" -v live=" $live " '
    BEGIN { n = split(orph, o, " "); for (j = 1; j <= n; j++) want[o[j]] = 1 }
    $1 >= t0 {
      split($2, t, "/"); id = t[5]
      if (!(id in want)) next
      p = $3; sub(/.*"parent":"/, "", p); sub(/".*/, "", p)
      if ($3 ~ /"parent":"/ && p != v && index(live, " " p " ")) { ok[id] = $1 } else delete ok[id]
    }
    END { m = 0; for (id in want) { if (!(id in ok)) exit; if (ok[id] > m) m = ok[id] }
          printf "%.3f\n", m - t0 }' "$REC")
  [ -z "$healed" ] || break
  sleep 0.1
done
if [ -n "$healed" ]; then
  echo "heal time after kill -9 of $victim (orphans ${orphans[*]}): ${healed} s"
  ep_assert "c: every orphan of $victim has a live parent within ${HEAL_LIMIT} s (${healed} s)" \
    awk -v h="$healed" -v l="$HEAL_LIMIT" 'BEGIN { exit !(h <= l) }'
else
  ep_fail "c: orphans of $victim (${orphans[*]}) have no live parent 10 s after kill -9"
fi
after=$(ep_loc_parents)
ep_assert_eq "" "$(grep "^$victim " <<<"$after" || true)" "c: $victim's assignment is cleared"
keep_re="^($victim|$(
  IFS='|'
  echo "${orphans[*]}"
)) "
ep_assert_eq "$(grep -vE "$keep_re" <<<"$before")" "$(grep -vE "$keep_re" <<<"$after")" \
  "c: non-orphans keep their parent and epoch (retained payloads unchanged)"
ep_assert_eq "" "$(ep_loc_parent_view | ep_loc_tree_check 2 gw)" "c: still a valid tree:2 rooted at gw"
wait_converged "c: every live index shows $victim offline and the new links" 15 "$live" "$victim"
ep_log "topology after the kill:"$'\n'"$(ep_node_ctl gw topology)"

# --- d. broker restart, crash ------------------------------------------------
# kill -9 (a crash or power loss of the gateway's broker): no Will fires; the
# broker comes back with its persisted retained messages.

broker_restart() { # HOW(kill|stop) TAG
  local before t id
  before=$(ep_loc_parents)
  if [ "$1" = kill ]; then ep_mqtt_kill; else ep_mqtt_stop; fi
  t=$(date +%s)
  ep_mqtt_restart
  # Every node heard from every live node after the restart: each node
  # republishes its retained state when it reconnects (libmosquitto's
  # backoff starts at 1 s), so this does not wait for a 30 s heartbeat; 45 s
  # leaves room for a reconnect that fell into a longer backoff step.
  wait_converged "$2: after a broker restart ($1) all state converges" 45 "$live" "$victim" \
    "$((t + 1))"
  for id in $live; do
    grep -q "as edgepull-$EP_LOC-$id " "$MQTT_LOG" || ep_fail "$2: $id did not reconnect"
  done
  grep -q "as edgepull-coordinator-$EP_LOC " "$MQTT_LOG" || ep_fail "$2: the coordinator did not reconnect"
  ep_assert_eq "$before" "$(ep_loc_parents)" "$2: parents as before the broker restart ($1)"
  ep_assert_eq "" "$(ep_loc_parent_view | ep_loc_tree_check 2 gw)" "$2: a valid tree:2 rooted at gw"
  wait_inventory "$2: inventories agree after the broker restart ($1)" 15 "$live" "${ALL[*]}"
}
broker_restart kill d1

# --- e. coordinator restart ------------------------------------------------------

before=$(ep_loc_parents)
nrec=$(wc -l <"$REC")
ep_assert "e: coordinator exits 0 on SIGTERM" ep_coord_stop
ep_coord_start "${COORD_ARGS[@]}"
for ((i = 0; i < 100; i++)); do
  grep -q "recovered locality" "$COORD_LOG" && break
  sleep 0.1
done
sleep 1 # anything it would publish arrives by now
ep_assert_match "recovered locality $EP_LOC: 6 live nodes, root gw, 0 assignments published" \
  "$(grep "recovered locality" "$COORD_LOG" || echo "no recovery line")" \
  "e: restarted coordinator publishes no assignment"
ep_assert_eq "$before" "$(ep_loc_parents)" "e: retained parents byte for byte unchanged"
ep_assert_eq "$nrec" "$(wc -l <"$REC")" "e: no parent message at all since the restart"

# --- f. the killed node rejoins ----------------------------------------------------

before=$(ep_loc_parents)
ep_node_start "$victim" --link-mbps "${MBPS[$victim]}" "${COMMON[@]}"
wait_converged "f: $victim rejoins, every index shows all 7 online" 30 "${ALL[*]}" ""
ep_assert_eq "$before" "$(ep_loc_parents | grep -v "^$victim ")" "f: the rejoin moves nobody"
ep_assert_eq "" "$(ep_loc_parent_view | ep_loc_tree_check 2 gw)" "f: a valid tree:2 rooted at gw"
wait_inventory "f: inventories agree after the rejoin" 15 "${ALL[*]}" "${ALL[*]}"

# --- d. broker restart, clean ------------------------------------------------
# SIGTERM (systemctl restart mosquitto): mosquitto 2.0 publishes the Will of
# every connected client as it shuts down, so the coordinator sees all nodes
# go offline at once just before it loses the broker itself. A restart of
# the broker is not the loss of the locality: parents must stay as they were.

live="${ALL[*]}"
victim=
broker_restart stop d2

# --- clean stops -------------------------------------------------------------------

for id in "${ALL[@]}"; do
  rc=0
  ep_node_stop "$id" || rc=$?
  ep_assert_eq 0 "$rc" "$id exits 0 on SIGTERM"
done
ep_assert "coordinator exits 0 on SIGTERM" ep_coord_stop
logs=("$EP_TMP"/edgepulld.*.log "$EP_TMP"/coordinator.*.log)
if grep -qE 'ERROR: (Address|Leak|Thread)Sanitizer|runtime error:' "${logs[@]}"; then
  ep_fail "sanitizer reports: $(grep -lE 'ERROR: (Address|Leak|Thread)Sanitizer|runtime error:' "${logs[@]}" | tr '\n' ' ')"
else
  ep_pass "no sanitizer report in ${#logs[@]} daemon logs"
fi
ep_finish
