#!/usr/bin/env bash
# Memory while fanning out: edgepulld's resident memory while it streams one
# large blob it does not hold yet (a fresh state dir and daemon every
# repetition) to several curl clients started at once: the first GET starts
# the upstream fetch, the others join it and follow the growing file. The
# baseline is the same daemon idle, just before the clients start.
#
# Figures: VmHWM (peak RSS) from /proc/<pid>/status after the run; during the
# run, /proc/<pid>/smaps_rollup and status are sampled every 50 ms for the
# maximum of Rss, Anonymous, Private_Dirty, RssFile and Threads. RSS also
# counts the pages of shared libraries' text the daemon touched, which are
# shared with every other process mapping them; Anonymous is what the daemon
# itself allocated (heap, stacks, buffers). The registry's access log must
# show one blob GET per repetition whatever the number of clients.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BENCH_SIZE=1024
BENCH_CLIENTS=8
# shellcheck disable=SC2034 # read by bench_parse_args
BENCH_OPTS="--size:BENCH_SIZE --clients:BENCH_CLIENTS"
bench_parse_args "Peak memory of edgepulld streaming one cold blob to many clients at once." \
  "  --size MIB         blob size in MiB (default $BENCH_SIZE)
  --clients N        concurrent curl clients (default $BENCH_CLIENTS)
" "$@"

ep_init bench_rss_fanout $((600 + BENCH_REPS * BENCH_SIZE / 10))
ep_require_cmd docker-registry curl
bench_ensure_build

ep_start_registry
blob=$EP_TMP/blob.bin
ep_log "making a ${BENCH_SIZE} MiB random blob"
digest=$(bench_random_file "$blob" "$BENCH_SIZE")
size=$(stat -c %s "$blob")
bench_push_blob bench/blob "$blob" "$digest"
rm -f "$blob"
url_path=v2/bench/blob/blobs/$digest

# mem_now PID: "rss anon private_dirty rss_file threads hwm pss" in KiB (threads a count).
mem_now() {
  local k v rss=0 anon=0 pd=0 rf=0 th=0 hwm=0 pss=0
  while read -r k v _; do
    case $k in
    Rss:) rss=$v ;;
    Pss:) pss=$v ;;
    Anonymous:) anon=$v ;;
    Private_Dirty:) pd=$v ;;
    esac
  done <"/proc/$1/smaps_rollup"
  while read -r k v _; do
    case $k in
    RssFile:) rf=$v ;;
    Threads:) th=$v ;;
    VmHWM:) hwm=$v ;;
    esac
  done <"/proc/$1/status"
  echo "$rss $anon $pd $rf $th $hwm $pss"
}

# sampler PID: mem_now lines every 50 ms until killed or PID ends.
sampler() {
  trap 'exit 0' TERM
  while [ -r "/proc/$1/status" ]; do
    mem_now "$1" 2>/dev/null || break
    sleep 0.05
  done
}

# breakdown PID: resident memory by mapping (file mappings by file name),
# largest first, the rest summed up, then the totals (markdown rows, MiB).
breakdown() {
  awk '/^[0-9a-f]+-[0-9a-f]+ / { name = ($6 == "") ? "[anonymous]" : $6
         if (name ~ /^\//) { n = split(name, p, "/"); name = p[n] } next }
       /^Rss:/ { rss[name] += $2 }
       /^Anonymous:/ { anon[name] += $2 }
       END { for (n in rss) if (rss[n] > 0) printf "%d %s %d\n", rss[n], n, anon[n] }' \
    "/proc/$1/smaps" | sort -rn |
    awk 'function row(n, r, a) { printf "| %s | %.2f | %.2f |\n", n, r / 1024, a / 1024 }
         { tr += $1; ta += $3 }
         NR <= 10 { row($2, $1, $3); next }
         { xr += $1; xa += $3; xn++ }
         END { if (xn) row(xn " other mappings", xr, xa); row("**total**", tr, ta) }'
}

mib() {
  bench_calc "$1 / 1024"
}

idle_hwm=() idle_rss=() idle_anon=() peak_hwm=() peak_rss=() peak_anon=() peak_pd=()
peak_file=() peak_pss=() peak_threads=() gets=() agg=()
for ((i = 1; i <= BENCH_REPS; i++)); do
  if [ "$i" = 1 ]; then
    bench_fresh_edgepulld --registry "$REGISTRY_HOST=$REGISTRY_URL"
  else
    bench_fresh_edgepulld
  fi
  sleep 0.5
  read -r rss anon _ _ _ hwm _ < <(mem_now "$EP_PID")
  idle_hwm+=("$(mib "$hwm")")
  idle_rss+=("$(mib "$rss")")
  idle_anon+=("$(mib "$anon")")
  gets_before=$(ep_count_blob_gets "$digest")

  samples=$EP_TMP/samples.$i
  sampler "$EP_PID" >"$samples" &
  spid=$!
  ep_cleanup_push "kill $spid"
  t0=$(bench_now)
  pids=()
  for ((c = 1; c <= BENCH_CLIENTS; c++)); do
    timeout -k 5 900 curl -s -o /dev/null -w '%{http_code} %{size_download}\n' \
      "$EP_URL/$url_path?ns=$REGISTRY_HOST" >"$EP_TMP/client.$i.$c" 2>&1 &
    pids+=($!)
    ep_cleanup_push "kill $!"
  done
  for p in "${pids[@]}"; do wait "$p" || true; done
  t1=$(bench_now)
  bench_wait_stored "$digest" 60 || ep_fail "rep $i: edgepulld did not commit the blob"
  sleep 0.2
  kill "$spid" 2>/dev/null || true
  wait "$spid" 2>/dev/null || true

  ok=0
  for ((c = 1; c <= BENCH_CLIENTS; c++)); do
    [ "$(cat "$EP_TMP/client.$i.$c")" != "200 $size" ] || ok=$((ok + 1))
  done
  ep_assert_eq "$BENCH_CLIENTS" "$ok" "rep $i: clients that got all $size bytes with 200"
  n=$(($(ep_count_blob_gets "$digest") - gets_before))
  gets+=("$n")
  ep_assert_eq 1 "$n" "rep $i: upstream blob GETs for $BENCH_CLIENTS clients"

  read -r _ _ _ _ _ hwm _ < <(mem_now "$EP_PID")
  read -r rss anon pd rf th _ pss < <(awk '{ for (k = 1; k <= 7; k++) if ($k > m[k]) m[k] = $k }
    END { for (k = 1; k <= 7; k++) printf "%d ", m[k]; print "" }' "$samples")
  peak_hwm+=("$(mib "$hwm")")
  peak_rss+=("$(mib "$rss")")
  peak_anon+=("$(mib "$anon")")
  peak_pd+=("$(mib "$pd")")
  peak_file+=("$(mib "$rf")")
  peak_pss+=("$(mib "$pss")")
  peak_threads+=("$th")
  agg+=("$(bench_calc "$BENCH_CLIENTS * $size / 1048576 / ($t1 - $t0)")")
  ep_log "rep $i: VmHWM $(mib "$hwm") MiB, max Anonymous $(mib "$anon") MiB," \
    "$(wc -l <"$samples") samples, upstream GETs $n"
  if [ "$i" = "$BENCH_REPS" ]; then
    mapfile -t rows < <(breakdown "$EP_PID")
  fi
done

bench_record "idle: VmHWM (baseline)" MiB "%.2f" "${idle_hwm[@]}"
bench_record "idle: Rss" MiB "%.2f" "${idle_rss[@]}"
bench_record "idle: Anonymous" MiB "%.2f" "${idle_anon[@]}"
bench_record "**fan-out: VmHWM (peak RSS)** (aim ≤ 8 MiB)" MiB "%.2f" "${peak_hwm[@]}"
bench_record "fan-out: max Rss sampled" MiB "%.2f" "${peak_rss[@]}"
bench_record "fan-out: max RssFile sampled (file pages, mostly shared libs)" MiB "%.2f" "${peak_file[@]}"
bench_record "fan-out: max Pss sampled (shared pages split among their users)" MiB "%.2f" "${peak_pss[@]}"
bench_record "fan-out: max Anonymous sampled" MiB "%.2f" "${peak_anon[@]}"
bench_record "fan-out: max Private_Dirty sampled" MiB "%.2f" "${peak_pd[@]}"
bench_record "fan-out: max threads" "" "%.0f" "${peak_threads[@]}"
r=()
for ((k = 0; k < BENCH_REPS; k++)); do r+=("$(bench_calc "${peak_hwm[k]} / ${idle_hwm[k]}")"); done
bench_record "**ratio peak VmHWM / idle VmHWM**" "×" "%.2f" "${r[@]}"
bench_record "upstream blob GETs per run (must be 1)" "" "%.0f" "${gets[@]}"
bench_record "aggregate client throughput" MiB/s "%.0f" "${agg[@]}"
bench_note "Blob: $BENCH_SIZE MiB of random bytes, not in the store when $BENCH_CLIENTS curl clients" \
  "start at once (fresh state dir per repetition). Resident memory of the last repetition" \
  "after the run, by mapping (file mappings by file name):"
bench_note ""
bench_note "| mapping | Rss MiB | Anonymous MiB |"
bench_note "| --- | ---: | ---: |"
for row in "${rows[@]}"; do bench_note "$row"; done
bench_report "rss_fanout: a cold ${BENCH_SIZE} MiB blob to $BENCH_CLIENTS clients at once"
ep_finish
