# shellcheck shell=bash
# shellcheck disable=SC2034 # NL_* and NODE_* are read by the tests and benchmarks
# An emulated locality in network namespaces (sourced after common.sh,
# mkimage.sh and locality.sh): the paper's testbed on one machine.
#
#   <prefix>-cloud   docker-registry                     198.19.0.2/30
#        | uplink veth "up0", tbf U Mbit/s on both ends
#   <prefix>-gw      gateway edgepulld, mosquitto, coordinator
#        |                                198.19.0.1/30, 198.18.0.1/24
#   <prefix>-lan     bridge br0 (one port "p-<id>" per node), lo only
#        | LAN veths "lan0", tbf L Mbit/s on both ends of each
#   <prefix>-n1..nN  edgepulld                            198.18.0.(10+i)/24
#
# Every node's runtime endpoint is 127.0.0.1:5050 inside its own namespace,
# its peer endpoint <addr>:5051; the broker is 198.18.0.1:1883 (and
# 127.0.0.1:1883 in the gateway). Only addresses from 198.18.0.0/15 are used,
# and only inside namespaces made here: nothing is routed, so the registry is
# reachable from the gateway alone (nodes have no route to the cloud).
# Shaping is tbf on the egress of each veth end, so a node's upload and
# download are each limited to L and the gateway's uplink to U both ways.
# The prefix (NL_PREFIX, default nl<pid>) keeps two runs apart; every
# namespace is deleted and every process stopped by common.sh's cleanup stack,
# also on failure or Ctrl-C. Every wait is bounded.
#
#   nl_create N                        namespaces, links, shaping (NL_UPLINK_MBPS
#                                      default 200, NL_LAN_MBPS default 100,
#                                      NL_GW_LAN_MBPS for the gateway's own LAN
#                                      port, default NL_LAN_MBPS)
#   nl_route_direct on|off             nodes reach the cloud through the gateway
#                                      (a router: the baseline's plain pulls)
#   nl_start_registry                  docker-registry in the cloud (REGISTRY_*);
#                                      ep_push_image then runs skopeo there
#   nl_start_broker                    mosquitto in the gateway
#   nl_start_coordinator TOPOLOGY [ARGS...]
#                                      (NL_COORD_TUNING: extra keepalive and
#                                      heartbeat flags; default none: the
#                                      coordinator's own defaults)
#   nl_start_node ID [ARGS...]         edgepulld in ID's namespace (gw = gateway);
#                                      again after a stop = restart, same state
#                                      (NL_NODE_TUNING likewise, default none:
#                                      what users run)
#   nl_start_all [ARGS...]             gateway + n1..nN
#   nl_wait_topology [SECONDS]         every node has a parent (gw the root)
#   nl_parents                         "id parent" per node (retained; "-" = root)
#   nl_chain                           ids from the root down a chain topology
#   nl_node_exec ID CMD...             run CMD in ID's namespace (gw, cloud, n1...)
#   NL_CGROUP[ID]=PROCS_FILE           every process then started for ID (edgepulld,
#                                      nl_node_exec) joins that cgroup first
#                                      (tests/lib/sdisk.sh's slow disks)
#   nl_node_curl ID ARGS...            bounded curl there
#   nl_start_containerd ID DIR [SOCK]  a containerd of ID's own (proxy
#                                      snapshotter "edgepull" at SOCK)
#   nl_ctr ID ARGS... / nl_stop_containerd ID
#   nl_kill_node ID / nl_stop_node ID  kill -9 / SIGTERM
#   nl_uplink_bytes                    rx_bytes of the gateway's uplink veth
#   nl_lan_rx_bytes ID                 rx_bytes of ID's LAN veth
#   nl_cut_uplink / nl_restore_uplink  the uplink down / up
#   nl_mqtt_retained FILTER [SECONDS] / nl_mqtt_record FILE FILTER...
#   nl_deploy ARGS...                  edgepullctl deploy in the gateway
#   nl_store_problems ID [DIGEST...]   empty when every blob file of ID hashes
#                                      to its name and each DIGEST is there
#   nl_frame_factor                    wire bytes per payload byte (TCP/IPv4
#                                      over Ethernet at the LAN's MTU)
#
# Node tables are locality.sh's: NODE_PID, NODE_STATE, NODE_LOG, NODE_URL
# (an address only valid inside the node's namespace).

NL_LOCAL_PORT=5050
NL_PEER_PORT=5051
NL_MQTT_PORT=1883
NL_LAN_NET=198.18.0
NL_GW_ADDR=198.18.0.1
NL_GW_UP_ADDR=198.19.0.1
NL_CLOUD_ADDR=198.19.0.2
NL_DEV=lan0
NL_UPLINK_DEV=up0
NL_MTU=1500
declare -gA NL_NS=() NL_ADDR=()
declare -ga NL_NODES=() NL_ALL=()
declare -gA NL_CGROUP=()

nl_require() {
  ep_require_root
  ep_loc_require
  ep_require_cmd ip tc docker-registry skopeo sha256sum
}

# Output of the shaping and burst options as tc takes them. The burst must
# hold a whole TSO/GSO packet (up to 64 KiB plus headers): with a smaller one
# tbf cuts every such packet into MTU-sized ones, in software, and a 2-core
# machine ran out of CPU emulating 21 ports (bench/locality at N = 21: 13.2 s
# with 4 KB against 6.3 s with 128 KB). The rate over any stretch longer
# than a few milliseconds is the same.
nl__tbf() { # RATE_MBIT
  printf '%s\n' tbf rate "${1}mbit" burst "${NL_TBF_BURST:-128kb}" latency 50ms
}

nl__ns_add() { # NAME
  ip netns add "$1"
  ep_cleanup_push "ep__netns_delete $1"
  ip -n "$1" link set lo up
  # No IPv6: no router solicitations or DAD in the byte counters.
  ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
    net.ipv6.conf.default.disable_ipv6=1 >/dev/null
}

# nl_create N: the whole network, no process yet.
nl_create() {
  local n=$1 i id
  [[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 200 ] ||
    ep_die "nl_create: node count must be 1..200, not '$n'"
  NL_PREFIX=${NL_PREFIX:-nl$$}
  NL_N=$n
  NL_UPLINK_MBPS=${NL_UPLINK_MBPS:-200}
  NL_LAN_MBPS=${NL_LAN_MBPS:-100}
  NL_GW_LAN_MBPS=${NL_GW_LAN_MBPS:-$NL_LAN_MBPS}
  NL_ROUTED=
  NL_CLOUD_NS=$NL_PREFIX-cloud
  NL_GW_NS=$NL_PREFIX-gw
  NL_LAN_NS=$NL_PREFIX-lan
  ip netns list | grep -q "^$NL_PREFIX-" && ep_die "namespaces $NL_PREFIX-* exist already"
  NL_NODES=()
  for ((i = 1; i <= n; i++)); do NL_NODES+=("n$i"); done
  NL_ALL=(gw "${NL_NODES[@]}")
  NL_NS=([cloud]=$NL_CLOUD_NS [gw]=$NL_GW_NS [lan]=$NL_LAN_NS)
  NL_ADDR=([cloud]=$NL_CLOUD_ADDR [gw]=$NL_GW_ADDR)
  for id in cloud gw lan "${NL_NODES[@]}"; do
    [ -n "${NL_NS[$id]:-}" ] || NL_NS[$id]=$NL_PREFIX-$id
    nl__ns_add "${NL_NS[$id]}"
  done
  # The uplink.
  ip -n "$NL_GW_NS" link add "$NL_UPLINK_DEV" type veth peer name "$NL_UPLINK_DEV" \
    netns "$NL_CLOUD_NS"
  ip -n "$NL_GW_NS" addr add "$NL_GW_UP_ADDR/30" dev "$NL_UPLINK_DEV"
  ip -n "$NL_CLOUD_NS" addr add "$NL_CLOUD_ADDR/30" dev "$NL_UPLINK_DEV"
  for id in gw cloud; do
    ip -n "${NL_NS[$id]}" link set "$NL_UPLINK_DEV" up
    # shellcheck disable=SC2046 # the tbf options are words
    tc -n "${NL_NS[$id]}" qdisc replace dev "$NL_UPLINK_DEV" root $(nl__tbf "$NL_UPLINK_MBPS")
  done
  # The LAN: a bridge in its own namespace, one shaped veth pair per node.
  ip -n "$NL_LAN_NS" link add br0 type bridge
  ip -n "$NL_LAN_NS" link set br0 up
  local rate
  for ((i = 0; i <= n; i++)); do
    id=${NL_ALL[i]}
    rate=$NL_LAN_MBPS
    [ "$id" != gw ] || rate=$NL_GW_LAN_MBPS
    [ "$id" = gw ] || NL_ADDR[$id]=$NL_LAN_NET.$((10 + i))
    ip -n "${NL_NS[$id]}" link add "$NL_DEV" mtu "$NL_MTU" type veth peer name "p-$id" \
      mtu "$NL_MTU" netns "$NL_LAN_NS"
    ip -n "${NL_NS[$id]}" addr add "${NL_ADDR[$id]}/24" dev "$NL_DEV"
    ip -n "${NL_NS[$id]}" link set "$NL_DEV" up
    ip -n "$NL_LAN_NS" link set "p-$id" master br0 up
    # shellcheck disable=SC2046
    tc -n "${NL_NS[$id]}" qdisc replace dev "$NL_DEV" root $(nl__tbf "$rate")
    # shellcheck disable=SC2046
    tc -n "$NL_LAN_NS" qdisc replace dev "p-$id" root $(nl__tbf "$rate")
  done
  # The registry helpers of common.sh (ep_curl, ep_push_image, ...) work in
  # the cloud namespace; node-side commands go through nl_node_exec.
  EP_NETNS=$NL_CLOUD_NS
  EP_NSX=(ip netns exec "$NL_CLOUD_NS")
  EP_LOC_NSX=(ip netns exec "$NL_GW_NS") # broker, coordinator (locality.sh)
  NL_BROKER=$NL_GW_ADDR:$NL_MQTT_PORT
  NL_SECRET_FILE=$EP_TMP/peer.secret
  (umask 077 && head -c 32 /dev/urandom | sha256sum | cut -d' ' -f1 >"$NL_SECRET_FILE")
  export EP_NETNS NL_PREFIX NL_N NL_UPLINK_MBPS NL_LAN_MBPS NL_GW_LAN_MBPS NL_BROKER
  ep_log "locality $NL_PREFIX: $n nodes + gateway, uplink ${NL_UPLINK_MBPS} Mbit/s," \
    "LAN ${NL_LAN_MBPS} Mbit/s per port (gateway ${NL_GW_LAN_MBPS})"
}

# nl__nsx ID [net]: NL_NSX, the command prefix that runs a program as node
# ID's: in its namespace and, when NL_CGROUP[ID] is set, in that cgroup
# (exec'ed, so $! is still the program's pid); with "net", in its network
# namespace but the machine's mount namespace.
nl__nsx() {
  [ -n "${NL_NS[$1]:-}" ] || ep_die "no namespace for node '$1'"
  NL_NSX=()
  # Before ip netns exec, which mounts the namespace's own /sys over the
  # cgroup hierarchies; the cgroup is inherited through both execs.
  [ -z "${NL_CGROUP[$1]:-}" ] ||
    NL_NSX=(sh -c 'echo $$ >"$0" && exec "$@"' "${NL_CGROUP[$1]}")
  if [ "${2:-}" = net ]; then
    # The network namespace only: `ip netns exec` also gives a mount
    # namespace whose /sys is the netns's own, without the cgroup
    # hierarchies runc needs to start a container.
    NL_NSX+=(nsenter "--net=/run/netns/${NL_NS[$1]}")
  else
    NL_NSX+=(ip netns exec "${NL_NS[$1]}")
  fi
}

nl_node_exec() { # ID CMD...
  local id=$1 NL_NSX
  shift
  nl__nsx "$id"
  "${NL_NSX[@]}" "$@"
}

nl_node_curl() { # ID CURL_ARGS...
  local id=$1
  shift
  nl_node_exec "$id" timeout -k 5 120 curl -sS --connect-timeout 5 --max-time 110 "$@"
}

# nl_route_direct on|off: with "on" the gateway forwards between the LAN and
# the uplink, so every node can pull from the registry itself (the paper's
# baseline); with "off" (the state nl_create leaves) nothing is forwarded and
# every byte a node gets must come through edgepull.
nl_route_direct() {
  local v=0 id
  [ "$1" = on ] && v=1
  if [ -z "$NL_ROUTED" ]; then
    for id in "${NL_NODES[@]}"; do
      ip -n "${NL_NS[$id]}" route replace default via "$NL_GW_ADDR"
    done
    ip -n "$NL_CLOUD_NS" route replace "$NL_LAN_NET.0/24" via "$NL_GW_UP_ADDR"
    NL_ROUTED=1
  fi
  ip netns exec "$NL_GW_NS" sysctl -qw "net.ipv4.ip_forward=$v" >/dev/null
}

# --- services ---------------------------------------------------------------

nl_start_registry() {
  EP_UPLINK_ADDR=$NL_CLOUD_ADDR
  EP_NETNS=$NL_CLOUD_NS
  EP_NSX=(ip netns exec "$NL_CLOUD_NS")
  ep_start_registry
  unset EP_UPLINK_ADDR
}

# The broker and the coordinator are locality.sh's, in the gateway's
# namespace (EP_LOC_NSX): the broker on NL_MQTT_PORT of 127.0.0.1 and the
# gateway's LAN address.
nl_start_broker() {
  EP_MQTT_PORT=$NL_MQTT_PORT ep_mqtt_start "$NL_GW_ADDR"
}

nl_start_coordinator() { # TOPOLOGY [ARGS...]
  local topo=$1
  shift
  # shellcheck disable=SC2086 # the tuning flags are words; empty = the defaults
  ep_coord_start --topology "$topo" ${NL_COORD_TUNING-} "$@"
}

# True when this edgepulld build knows --FLAG.
# The help is read whole before matching: `--help | grep -q` under pipefail
# fails whenever grep exits before edgepulld has written its last block
# (SIGPIPE), and a node then started without its peer secret (401s between
# peers, a failed deploy in bench/locality on a loaded machine).
nl__edgepulld_has() { # FLAG
  local help
  help=$("$EP_BUILD_DIR/plugin/edgepulld" --help 2>&1) || true
  grep -q -- "--$1\\b" <<<"$help"
}

# nl_start_node ID [ARGS...]: edgepulld in ID's namespace joined to the
# locality; "gw" is started with --gateway. The arguments of the first start
# are reused on a restart when none are given.
declare -gA NL_NODE_ARGS=()
nl_start_node() {
  local id=$1 args=() save_ns=$EP_NETNS save_nsx=("${EP_NSX[@]}")
  shift
  [ -n "${NL_ADDR[$id]:-}" ] && [ "$id" != cloud ] || ep_die "nl_start_node: unknown node '$id'"
  if [ $# -gt 0 ] || [ -z "${NL_NODE_ARGS[$id]:-}" ]; then
    args=(--advertise-addr "${NL_ADDR[$id]}" --registry "$REGISTRY_HOST=$REGISTRY_URL"
      --link-mbps "$NL_LAN_MBPS")
    # shellcheck disable=SC2206 # the tuning flags are words; empty = the defaults
    args+=(${NL_NODE_TUNING-})
    [ "$id" != gw ] || args+=(--gateway)
    ! nl__edgepulld_has peer-secret-file || args+=(--peer-secret-file "$NL_SECRET_FILE")
    args+=("$@")
    NL_NODE_ARGS[$id]=$(printf '%q ' "${args[@]}")
  else
    eval "args=(${NL_NODE_ARGS[$id]})"
  fi
  NODE_PORT[$id]=${NODE_PORT[$id]:-$NL_LOCAL_PORT}
  NODE_PEER[$id]=${NODE_PEER[$id]:-$NL_PEER_PORT}
  EP_NETNS=${NL_NS[$id]}
  nl__nsx "$id"
  EP_NSX=("${NL_NSX[@]}")
  EP_NODE_PEER_ADDR=${NL_ADDR[$id]} EP_NODE_BROKER=$NL_BROKER ep_node_start "$id" "${args[@]}"
  EP_NETNS=$save_ns
  EP_NSX=("${save_nsx[@]}")
}

nl_start_all() { # [ARGS...] for every node
  local id
  for id in "${NL_ALL[@]}"; do nl_start_node "$id" "$@"; done
}

nl_kill_node() { # ID
  ep_node_kill "$1"
}

nl_stop_node() { # ID: SIGTERM; returns the exit status
  ep_node_stop "$1"
}

# --- a containerd per node ----------------------------------------------------

# nl_start_containerd ID DIR [SNAP_SOCK]: a containerd of ID's own
# (services.sh's ep_containerd_spawn: no CRI, root, state and socket in DIR)
# in ID's network namespace and cgroup (it writes what it pulls on ID's
# disk); SNAP_SOCK is then its proxy snapshotter "edgepull" (ID's edgepulld
# may create it later). Sets NL_CTR_ADDR[ID], NL_CTR_PID[ID], NL_CTR_ROOT[ID];
# the cleanup stack stops it, then unmounts what its containers left under DIR.
declare -gA NL_CTR_ADDR=() NL_CTR_PID=() NL_CTR_ROOT=()
nl_start_containerd() {
  local id=$1 save_nsx=("${EP_NSX[@]}") NL_NSX
  nl__nsx "$id" net
  ep_cleanup_push "ep__umount_under '$2'"
  EP_NSX=("${NL_NSX[@]}")
  EP_CTRD_SNAP_SOCK=${3:-} ep_containerd_spawn "$2"
  EP_NSX=("${save_nsx[@]}")
  NL_CTR_ADDR[$id]=$CTR_ADDRESS
  NL_CTR_PID[$id]=$CTR_PID
  NL_CTR_ROOT[$id]=$CTR_ROOT
}

nl_stop_containerd() { # ID
  [ -z "${NL_CTR_PID[$1]:-}" ] || ep_stop_pid "${NL_CTR_PID[$1]}" 10 || true
  unset "NL_CTR_PID[$1]"
}

# nl_ctr ID ARGS...: ctr against ID's containerd, in ID's namespace (ctr
# itself fetches from registries), bounded by NL_CTR_TIMEOUT (default 180 s).
nl_ctr() {
  local id=$1
  shift
  nl_node_exec "$id" timeout -k 5 "${NL_CTR_TIMEOUT:-180}" ctr --address "${NL_CTR_ADDR[$id]}" "$@"
}

# --- the broker's view ------------------------------------------------------

nl_mqtt_retained() { # FILTER [SECONDS]
  ep_mqtt_retained "$@"
}

# nl_mqtt_record FILE FILTER...: "unix_time topic payload" per message until
# the test ends; pid in NL_REC_PID.
nl_mqtt_record() {
  ep_mqtt_record "$@"
  NL_REC_PID=$MQTT_REC_PID
}

# "id parent" per node with a retained assignment; parent "-" for the root.
nl_parents() {
  ep_loc_parent_view | cut -d' ' -f1,2
}

# nl_wait_topology [SECONDS]: every started node has an assignment, gw is the
# root and every other node has a parent.
nl_wait_topology() {
  local secs=${1:-60} deadline view want
  deadline=$((SECONDS + secs))
  want=$(printf '%s\n' "${NODE_IDS[@]}" | sort | tr '\n' ' ')
  while :; do
    view=$(nl_parents)
    if [ "$(cut -d' ' -f1 <<<"$view" | tr '\n' ' ')" = "$want" ] &&
      [ "$(awk '$2 == "-" { print $1 }' <<<"$view")" = gw ]; then
      ep_log "topology: $(tr '\n' ',' <<<"$view")"
      return 0
    fi
    [ "$SECONDS" -lt "$deadline" ] || break
    sleep 0.5
  done
  ep_die "no complete topology within ${secs}s: $(tr '\n' ',' <<<"$view")"
}

# The ids from the root down, when the topology is a chain.
nl_chain() {
  local view cur=gw i
  view=$(nl_parents)
  for ((i = 0; i <= ${#NODE_IDS[@]}; i++)); do
    echo "$cur"
    cur=$(awk -v p="$cur" '$2 == p { print $1; exit }' <<<"$view")
    [ -n "$cur" ] || break
  done
}

# --- counters and links -----------------------------------------------------

nl__rx() { # NS DEV
  ip -n "$1" -s -j link show "$2" | jq '.[0].stats64.rx.bytes'
}

nl_uplink_bytes() {
  nl__rx "$NL_GW_NS" "$NL_UPLINK_DEV"
}

nl_lan_rx_bytes() { # ID
  nl__rx "${NL_NS[$1]}" "$NL_DEV"
}

nl_cut_uplink() {
  ip -n "$NL_GW_NS" link set "$NL_UPLINK_DEV" down
  ep_log "uplink cut"
}

nl_restore_uplink() {
  ip -n "$NL_GW_NS" link set "$NL_UPLINK_DEV" up
  local i
  for ((i = 0; i < 50; i++)); do
    ip -n "$NL_GW_NS" route get "$NL_CLOUD_ADDR" >/dev/null 2>&1 && break
    sleep 0.1
  done
  ep_log "uplink restored"
}

# Wire bytes (Ethernet + IPv4 + TCP with timestamps) per byte of TCP payload.
nl_frame_factor() {
  awk -v m="$NL_MTU" 'BEGIN { printf "%.4f\n", (m + 14) / (m - 52) }'
}

# --- deploy and stores ----------------------------------------------------------

# nl_deploy ARGS...: edgepullctl deploy ARGS in the gateway, against the
# locality's broker; bounded by NL_DEPLOY_TIMEOUT (default 180 s).
nl_deploy() {
  ip netns exec "$NL_GW_NS" timeout -k 5 "${NL_DEPLOY_TIMEOUT:-180}" \
    "$EP_BUILD_DIR/ctl/edgepullctl" deploy "$@" --broker "127.0.0.1:$NL_MQTT_PORT" \
    --locality "$EP_LOC"
}

# nl_store_problems ID [DIGEST...]: one line per problem in ID's store.
nl_store_problems() {
  local id=$1 f d dir
  shift
  dir=${NODE_STATE[$id]}/blobs/sha256
  for f in "$dir"/*; do
    [ -f "$f" ] || continue
    [ "$(sha256sum "$f" | cut -d' ' -f1)" = "${f##*/}" ] || echo "$id: ${f##*/} does not hash to its name"
  done
  for d in "$@"; do
    [ -f "$dir/${d#sha256:}" ] || echo "$id: lacks ${d:0:19}"
  done
}

# Size in bytes of a blob in the registry's storage.
nl_blob_size() { # DIGEST
  stat -c %s "$(ep_registry_blob_path "$1")"
}

# nl_mkimage_on LAYOUT BASE_TAG TAG ARCH SPEC...: a new image whose layers are
# BASE_TAG's (same blobs) followed by new random layers of the given specs;
# sets EP_IMG_DIGEST and EP_IMG_LAYERS (the new layers only).
nl_mkimage_on() {
  local layout=$1 base=$2 tag=$3 arch=$4 bm bc d tmp
  shift 4
  bm=$(jq -r --arg t "$base" '.manifests[] |
    select(.annotations["org.opencontainers.image.ref.name"] == $t) | .digest' "$layout/index.json")
  [ -n "$bm" ] || ep_die "nl_mkimage_on: no tag $base in $layout"
  bm=$layout/blobs/sha256/${bm#sha256:}
  bc=$layout/blobs/sha256/$(jq -r '.config.digest | ltrimstr("sha256:")' "$bm")
  mapfile -t EP__DIFF_IDS < <(jq -r '.rootfs.diff_ids[]' "$bc")
  mapfile -t EP__LAYER_DESCS < <(jq -c '.layers[]' "$bm")
  EP_IMG_LAYERS=()
  for d in "$@"; do ep__mklayer "$layout" "${d%%:*}" "${d#*:}"; done
  tmp=$(mktemp "$layout/cfg.XXXXXX")
  printf '%s\n' "${EP__DIFF_IDS[@]}" | jq -cRn --arg arch "$arch" \
    '{architecture: $arch, os: "linux", created: "1970-01-01T00:00:00Z",
      rootfs: {type: "layers", diff_ids: [inputs]}}' | tr -d '\n' >"$tmp"
  ep__blob_put "$layout" "$tmp"
  local cd=$EP__DIGEST cs=$EP__SIZE
  tmp=$(mktemp "$layout/man.XXXXXX")
  printf '%s\n' "${EP__LAYER_DESCS[@]}" | jq -cn --arg cmt "$EP_MT_CONFIG" \
    --arg mt "$EP_MT_MANIFEST" --arg cd "$cd" --argjson cs "$cs" \
    '{schemaVersion: 2, mediaType: $mt,
      config: {mediaType: $cmt, digest: $cd, size: $cs}, layers: [inputs]}' |
    tr -d '\n' >"$tmp"
  ep__blob_put "$layout" "$tmp"
  EP_IMG_DIGEST=$EP__DIGEST
  EP_IMG_SIZE=$EP__SIZE
  ep__layout_tag "$layout" "$tag" "$EP_MT_MANIFEST" "$EP_IMG_DIGEST" "$EP_IMG_SIZE"
}

# Sum of the registry's sizes of the given blobs.
nl_blobs_size() { # DIGEST...
  local d s=0
  for d in "$@"; do s=$((s + $(nl_blob_size "$d"))); done
  echo "$s"
}

# nl_wait_stores SECONDS "ID..." DIGEST...: until every listed node holds
# every digest verified; prints the remaining problems (empty = all there).
nl_wait_stores() {
  local deadline=$((SECONDS + $1)) ids=$2 id out
  shift 2
  while :; do
    out=$(for id in $ids; do nl_store_problems "$id" "$@"; done)
    [ -n "$out" ] && [ "$SECONDS" -lt "$deadline" ] || break
    sleep 0.5
  done
  printf '%s' "$out"
}

# nl_wait_fetches_idle SECONDS: until no node has a blob fetch in flight
# (edgepull_fetches_in_flight is 0 on every node's local /metrics), so that
# what a test measures next is not the tail of what came before (a child's
# retry that started a new fetch at its parent). Fails on the deadline.
nl_wait_fetches_idle() {
  local deadline=$((SECONDS + $1)) id n busy
  while :; do
    busy=
    for id in "${NODE_IDS[@]}"; do
      n=$(nl_node_curl "$id" "http://127.0.0.1:5050/metrics" 2>/dev/null |
        awk '$1 == "edgepull_fetches_in_flight" { print $2 }')
      [ "${n:-x}" = 0 ] || busy+=" $id=${n:-?}"
    done
    [ -z "$busy" ] && return 0
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "fetches still in flight after $1 s:$busy" >&2
      return 1
    fi
    sleep 0.5
  done
}

# Bytes of DIGEST in ID's ingest/ (0 when there is no partial).
nl_partial_size() { # ID DIGEST
  local f=${NODE_STATE[$1]}/ingest/${2#sha256:}.partial
  if [ -f "$f" ]; then stat -c %s "$f"; else echo 0; fi
}

# nl_ratio A B: A / B with three decimals.
nl_ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", (b > 0 ? a / b : 0) }'
}

# nl_le A B FACTOR: true when A <= B × FACTOR.
nl_le() {
  awk -v a="$1" -v b="$2" -v f="$3" 'BEGIN { exit !(a <= b * f) }'
}

# nl_stop_all: SIGTERM every node; one assertion per node on the exit status,
# then the sanitizer check of every edgepulld log.
nl_stop_all() {
  local id rc
  for id in "${NODE_IDS[@]}"; do
    kill -0 "${NODE_PID[$id]}" 2>/dev/null || continue
    rc=0
    nl_stop_node "$id" || rc=$?
    ep_assert_eq 0 "$rc" "$id exits 0 on SIGTERM"
  done
  ep_check_sanitizers "$EP_TMP"/edgepulld.*.log
}

# nl_json_report FILE: true when the last line of FILE is deploy's final
# report (a JSON object with "event": "report").
nl_json_report() {
  local last
  last=$(tail -n 1 "$1" 2>/dev/null)
  [ -n "$last" ] && jq -e 'type == "object" and .event == "report"' <<<"$last" >/dev/null 2>&1
}
