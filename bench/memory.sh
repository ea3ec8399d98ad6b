#!/usr/bin/env bash
# The memory aims of issue 14 (point 6), measured in an emulated locality
# (bench/locality: network namespaces, 100 Mbit/s LAN ports, a 200 Mbit/s
# uplink, peers over mutual TLS, every edgepulld with default flags):
#
#   (a) a node streaming a 1 GiB layer to its runtime (a skopeo client
#       pulling through it) and to two children: `edgepullctl deploy` of a
#       one-layer 1024 MB image to N = 6 nodes in tree:2, where the
#       gateway's two children each serve their own client and two
#       children; the figure is the largest VmHWM of the non-gateway nodes.
#       Aim: VmHWM <= 8 MB.
#   (b) the gateway during a 21-node deploy of the default 64 MB, 4-layer
#       image, chain and tree:2. Aim: VmHWM <= 12 MB.
#
# VmHWM (peak RSS) is read from /proc/<pid>/status when each run ends; the
# peak RssAnon (what edgepulld allocated itself: heap, stacks, buffers) is
# sampled every 0.2 s. The rest of VmHWM are pages of shared libraries,
# shared with every other process that maps them. "8 MB" is taken as 8 MiB
# (8192 KiB), as bench/locality's target line does. Run as root.
#
# The floor (also `--floor` alone, no root needed): bench/memory_floor.c
# links only the shared libraries edgepulld must link and initialises them
# as edgepulld does; its VmHWM is how much of each aim those take before
# edgepulld's own code allocates anything.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BENCH_SIZE=1024
BENCH_NODES=6
BENCH_GW_NODES=21
BENCH_DISK=${BENCH_DISK:-disk}
floor_only=
args=()
for arg in "$@"; do
  if [ "$arg" = --floor ]; then floor_only=1; else args+=("$arg"); fi
done
set -- "${args[@]}"
# shellcheck disable=SC2034 # read by bench_parse_args
BENCH_OPTS="--size:BENCH_SIZE --nodes:BENCH_NODES --gw-nodes:BENCH_GW_NODES"
bench_parse_args "VmHWM of edgepulld against the memory aims: a node streaming to its runtime and two
children (aim 8 MiB), the gateway of a 21-node deploy (aim 12 MiB). As root." \
  "  --size MB          (a)'s one-layer image in MB (default $BENCH_SIZE)
  --nodes N          (a)'s node count, tree:2 (default $BENCH_NODES; >= 6 for two children each)
  --gw-nodes N       (b)'s node count (default $BENCH_GW_NODES)
  --floor            only the floor: the mandated libraries alone (bench/memory_floor.c)
Environment: BENCH_DISK=disk|sd|tmpfs, where the stores are (default disk).
" "$@"
[ -n "$floor_only" ] || [ "$(id -u)" = 0 ] ||
  bench_usage_error "run as root: bench/locality builds network namespaces"

ep_init bench_memory $((1800 + BENCH_REPS * (BENCH_SIZE + 1200)))
bench_ensure_build

# floor: BENCH_REPS runs of ep_bench_memory_floor at each of its three stages.
floor() {
  local exe=$EP_BUILD_DIR/bench/ep_bench_memory_floor stage name i k v hwm file anon
  if [ ! -x "$exe" ]; then
    cmake --build "$EP_BUILD_DIR" --target ep_bench_memory_floor >"$EP_TMP/floor.log" 2>&1 ||
      { tail -n 30 "$EP_TMP/floor.log"; ep_die "building ep_bench_memory_floor failed"; }
  fi
  for stage in --mapped --init full; do
    hwm=() file=() anon=()
    for ((i = 1; i <= BENCH_REPS; i++)); do
      if [ "$stage" = full ]; then set --; else set -- "$stage"; fi
      while read -r k v _; do
        case $k in
        VmHWM:) hwm+=("$(bench_calc "$v / 1024")") ;;
        RssFile:) file+=("$(bench_calc "$v / 1024")") ;;
        RssAnon:) anon+=("$(bench_calc "$v / 1024")") ;;
        esac
      done < <("$exe" "$@" || ep_die "ep_bench_memory_floor $* failed")
    done
    case $stage in
    --mapped) name="floor, libraries mapped only" ;;
    --init) name="floor, after curl_global_init and mosquitto_lib_init" ;;
    full) name="**floor: VmHWM**, after one HTTP GET (libcurl to libmicrohttpd), sqlite, SHA-256" ;;
    esac
    bench_record "$name" MiB "%.2f" "${hwm[@]}"
  done
  bench_record "floor: RssFile (shared libraries' pages)" MiB "%.2f" "${file[@]}"
  bench_record "floor: RssAnon" MiB "%.2f" "${anon[@]}"
  mapfile -t r < <(ratios 8 "${hwm[@]}")
  bench_record "**floor / 8 MiB (a)**" "×" "%.2f" "${r[@]}"
  mapfile -t r < <(ratios 12 "${hwm[@]}")
  bench_record "**floor / 12 MiB (b)**" "×" "%.2f" "${r[@]}"
}

# run_locality DIR ARGS...: one bench/locality run into DIR.
run_locality() {
  local dir=$1 rc=0
  shift
  ep_log "bench/locality $*"
  "$BENCH_DIR/locality" --scenarios edgepull-deploy --reps "$BENCH_REPS" --disk "$BENCH_DISK" \
    --no-plots --build-dir "$EP_BUILD_DIR" --out "$dir" "$@" >"$dir.log" 2>&1 || rc=$?
  grep -E '^(PASS|FAIL)' "$dir.log" || true
  [ "$rc" -eq 0 ] || { tail -n 30 "$dir.log"; ep_die "bench/locality failed (log $dir.log)"; }
}

# per_run NODES_CSV gw|others COLUMN: per deploy run, COLUMN (KiB) of the
# gateway, or the largest of the other nodes, in MiB.
per_run() {
  awk -F, -v who="$2" -v c="$3" 'NR > 1 && $1 == "edgepull-deploy" && (($5 == "gw") == (who == "gw")) {
      k = $2 " " $4; if (!(k in m) || $c > m[k]) m[k] = $c }
    END { for (k in m) printf "%.2f\n", m[k] / 1024 }' "$1"
}

ratios() { # AIM_MIB VALUE...
  local aim=$1 v
  shift
  for v in "$@"; do bench_calc "$v / $aim"; echo; done
}

if [ -n "$floor_only" ]; then
  floor
  bench_note "The floor: $EP_BUILD_DIR/bench/ep_bench_memory_floor, $BENCH_REPS run(s) a stage."
  bench_report "memory: the floor of the mandated libraries (issue 14)"
  ep_finish
fi
out=$BENCH_RESULTS/memory-$BENCH_STAMP
mkdir -p "$out"
a=$out/node
b=$out/gateway
run_locality "$a" --nodes "$BENCH_NODES" --topologies tree:2 --size "$BENCH_SIZE" --layers 1
run_locality "$b" --nodes "$BENCH_GW_NODES" --topologies chain,tree:2
# nodes.csv: scenario,topology,nodes,rep,node,ok,done_s,rss_kib,cpu_s,anon_kib
mapfile -t node_hwm < <(per_run "$a/nodes.csv" others 8)
mapfile -t node_anon < <(per_run "$a/nodes.csv" others 10)
mapfile -t gw_hwm < <(per_run "$b/nodes.csv" gw 8)
mapfile -t gw_anon < <(per_run "$b/nodes.csv" gw 10)
mapfile -t a_hwm < <(per_run "$a/nodes.csv" gw 8)
if [ ${#node_hwm[@]} -eq 0 ] || [ ${#gw_hwm[@]} -eq 0 ]; then
  ep_die "no VmHWM in the runs' nodes.csv"
fi
mapfile -t node_ratio < <(ratios 8 "${node_hwm[@]}")
mapfile -t gw_ratio < <(ratios 12 "${gw_hwm[@]}")

bench_record "**(a) node: VmHWM / 8 MiB**" "×" "%.2f" "${node_ratio[@]}"
bench_record "(a) node: VmHWM, largest non-gateway node" MiB "%.2f" "${node_hwm[@]}"
bench_record "(a) node: peak RssAnon (own memory)" MiB "%.2f" "${node_anon[@]}"
bench_record "(a) its gateway: VmHWM" MiB "%.2f" "${a_hwm[@]}"
bench_record "**(b) gateway: VmHWM / 12 MiB**" "×" "%.2f" "${gw_ratio[@]}"
bench_record "(b) gateway: VmHWM" MiB "%.2f" "${gw_hwm[@]}"
bench_record "(b) gateway: peak RssAnon (own memory)" MiB "%.2f" "${gw_anon[@]}"
floor
bench_note "(a) \`edgepullctl deploy\` of a one-layer ${BENCH_SIZE} MB image to N = $BENCH_NODES" \
  "nodes in tree:2 (each node's client pulls through it; the gateway's two children serve" \
  "two children each), $BENCH_REPS run(s). (b) a deploy of the 64 MB, 4-layer image to" \
  "N = $BENCH_GW_NODES, chain and tree:2, $BENCH_REPS run(s) each. Stores on $BENCH_DISK;" \
  "bench/locality defaults otherwise (100 Mbit/s LAN ports, 200 Mbit/s uplink, peers over" \
  "mutual TLS, edgepulld with default flags). Runs: $a, $b."
bench_report "memory: edgepulld's VmHWM against the aims (issue 14)"
ep_finish
