# shellcheck shell=bash
# bench/locality's measurements (sourced by bench/locality after lib.sh,
# locality.sh and netlocality.sh): the locality's set-up and one function per
# scenario. Each run appends one row to runs.csv, one row per node to
# nodes.csv and writes its throughput samples to samples/<run>.csv.
#
# The client in `baseline` and `edgepull-pull` is skopeo (containers/image,
# the library podman and CRI-O pull with): one process per node, in the
# node's namespace, writing an OCI layout that it verifies against the
# manifest's digests. One process per node, unlike one shared containerd,
# keeps the machine's single daemon out of the measurement. An OCI layout,
# not a dir: copy: containers/image 5.23 writes a dir: destination one layer
# at a time, so every layer after the first waited for the one before and the
# chain idled between layers; into an OCI layout it fetches them at once, as
# containerd and podman do.

LOC_FAILED_RUNS=0
LOC_RUN_SEQ=0

# Builds what bench_ensure_build does not: the coordinator, edgepullctl and
# the sampler.
loc_build_tools() {
  cmake --build "$EP_BUILD_DIR" -j"$(nproc)" --target edgepull-coordinator edgepullctl \
    ep_bench_netsample >>"$EP_TMP/cmake.log" 2>&1 ||
    { tail -n 30 "$EP_TMP/cmake.log"; ep_die "building the coordinator, edgepullctl or the sampler failed"; }
  LOC_SAMPLER=$EP_BUILD_DIR/bench/ep_bench_netsample
}

# loc_disk_setup DISK: where the stores, the clients' copies and skopeo's
# temporary files go, one directory per node, loc__dir ID:
#   tmpfs  one tmpfs: the network alone is measured (the paper's view);
#   disk   the machine's own disk, under /var/tmp (/tmp may be a tmpfs);
#   sd     an SD-card-class disk per node (tests/lib/sdisk.sh): its own loop
#          device, writes throttled to LOC_SD_MBPS, LOC_SD_DIRTY_MB of dirty
#          cache, and every process of the node (edgepulld, skopeo) in its
#          blkio group.
loc_disk_setup() {
  local need avail id i
  LOC_DISK=$1
  case $LOC_DISK in
  tmpfs)
    need=$(((2 * LOC_SIZE * (${LOC_NS[-1]} + 2) + 4 * LOC_SIZE + 256) * 1000000))
    avail=$(awk '/^MemAvailable:/ { printf "%.0f", $2 * 1024 }' /proc/meminfo)
    [ "$need" -lt $((avail / 3)) ] ||
      ep_die "--disk tmpfs: $((need / 1000000)) MB of stores do not fit in a third of the free memory"
    LOC_FS=$EP_TMP/fs-tmpfs
    mkdir -p "$LOC_FS"
    mount -t tmpfs -o "size=$need,mode=0755" tmpfs "$LOC_FS" || ep_die "cannot mount a tmpfs"
    ep_cleanup_push "umount -l '$LOC_FS'"
    LOC_DISK_DESC="tmpfs (memory: the network alone is measured)"
    ;;
  disk)
    LOC_FS=$(mktemp -d /var/tmp/edgepull-bench.XXXXXX) || ep_die "cannot create a directory in /var/tmp"
    ep_cleanup_push "rm -rf '$LOC_FS'"
    LOC_DISK_DESC="the machine's disk ($(df --output=source "$LOC_FS" | tail -n 1), $(findmnt -no FSTYPE -T "$LOC_FS"), /var/tmp)"
    ;;
  sd)
    SD_MBPS=$LOC_SD_MBPS SD_DIRTY_MB=$LOC_SD_DIRTY_MB SD_PREFIX=${NL_PREFIX}sd
    export SD_MBPS SD_DIRTY_MB SD_PREFIX
    for id in gw $(for ((i = 1; i <= ${LOC_NS[-1]}; i++)); do echo "n$i"; done); do
      # The store, the client's copy, skopeo's temporary copy, the v2 layer.
      sd_create "$id" $((4 * LOC_SIZE + 128))
      NL_CGROUP[$id]=$(sd_procs_file "$id")
    done
    LOC_FS=$SD_ROOT
    LOC_DISK_DESC="SD-card class: a loop device per node (ext4 on a sparse file in /var/tmp), writes throttled to $LOC_SD_MBPS MiB/s (cgroup v1 blkio), $LOC_SD_DIRTY_MB MiB dirty cache (bdi max_bytes, strict_limit)"
    ;;
  *) ep_die "unknown disk '$LOC_DISK'" ;;
  esac
  for id in gw $(for ((i = 1; i <= ${LOC_NS[-1]}; i++)); do echo "n$i"; done); do
    mkdir -p "$LOC_FS/$id/tmp"
  done
  ep_log "stores and copies on $LOC_DISK: $LOC_DISK_DESC ($LOC_FS)"
}

loc__dir() { # ID: that node's directory on the disk measured
  echo "$LOC_FS/$1"
}

# loc_disk_teardown: undoes loc_disk_setup (the cleanup stack does too, on
# failure), after writing disk.csv: per node, the bytes the kernel counted
# as written to its device and the limits in force (sd only).
loc_disk_teardown() {
  local id
  case $LOC_DISK in
  tmpfs) umount -l "$LOC_FS" ;;
  disk) rm -rf "$LOC_FS" ;;
  sd)
    echo "node,device,group_write_bytes,root_write_bytes,group_write_bps,root_write_bps" \
      >"$LOC_OUT/disk.csv"
    for id in "${!SD_DEV[@]}"; do
      [ -n "${SD_DEV[$id]}" ] || continue
      printf '%s,%s,%s,%s,%s\n' "$id" "${SD_MM[$id]}" "$(sd_group_written "$id")" \
        "$(sd_device_written "$id")" "$(sd_limit "$id" | tr ' ' ,)"
    done | sort -t, -k1,1V >>"$LOC_OUT/disk.csv"
    sd_destroy_all
    NL_CGROUP=()
    ;;
  esac
}

# loc__image: v1 = LOC_LAYERS random gzip layers of LOC_SIZE MB in all; v2 =
# v1's layers plus one new layer of the same size (the delta deploy).
loc__image() {
  local layout specs=() i layer=$((LOC_SIZE * 1000000 / LOC_LAYERS)) d
  layout=$(ep_tmpdir layout)
  for ((i = 0; i < LOC_LAYERS; i++)); do specs+=("gzip:$layer"); done
  ep_log "making a ${LOC_LAYERS}-layer image of $LOC_SIZE MB"
  ep_mkimage "$layout" v1 amd64 "${specs[@]}"
  nl_mkimage_on "$layout" v1 v2 amd64 "gzip:$layer"
  ep_push_image "$layout" v1 bench/app
  LOC_V1_BLOBS=("${EP_PUSHED_BLOBS[@]}")
  LOC_V1_DIGEST=$EP_PUSHED_DIGEST
  ep_push_image "$layout" v2 bench/app
  LOC_V2_DIGEST=$EP_PUSHED_DIGEST
  LOC_NEW_BLOBS=()
  for d in "${EP_PUSHED_BLOBS[@]}"; do
    printf '%s\n' "${LOC_V1_BLOBS[@]}" | grep -qx "$d" || LOC_NEW_BLOBS+=("$d")
  done
  rm -rf "$layout"
  LOC_IMAGE_BYTES=$(nl_blobs_size "${LOC_V1_BLOBS[@]}")
  LOC_NEW_BYTES=$(nl_blobs_size "${LOC_NEW_BLOBS[@]}")
  LOC_REF=$REGISTRY_HOST/bench/app
  ep_log "v1: ${#LOC_V1_BLOBS[@]} blobs, $LOC_IMAGE_BYTES B; v2 adds ${#LOC_NEW_BLOBS[@]}, $LOC_NEW_BYTES B"
}

# loc_setup NMAX: the locality for the largest N (smaller N use n1..nN),
# the registry with both images, the broker, and a process in the gateway's
# and n1's namespaces whose /proc/PID/net/dev the sampler reads.
loc_setup() {
  NL_UPLINK_MBPS=$LOC_UPLINK NL_LAN_MBPS=$LOC_LAN
  # The gateway routes the uplink to the LAN: its own port is not the
  # baseline's bottleneck (the paper's routers were not either).
  NL_GW_LAN_MBPS=$((LOC_LAN > LOC_UPLINK ? LOC_LAN : LOC_UPLINK))
  NL_PREFIX=${NL_PREFIX:-eploc$$}
  nl_create "$1"
  nl_route_direct off
  nl_start_registry
  "${LOC_IMAGE_FN:-loc__image}"
  nl_start_broker
  LOC_CLK_TCK=$(getconf CLK_TCK)
  LOC_FRAME=$(nl_frame_factor)
  # ip execs sleep: $! is a process inside the namespace.
  ip netns exec "${NL_NS[gw]}" sleep 1d &
  LOC_GW_HOLD=$!
  ep_cleanup_push "kill $LOC_GW_HOLD"
  ip netns exec "${NL_NS[n1]}" sleep 1d &
  LOC_N1_HOLD=$!
  ep_cleanup_push "kill $LOC_N1_HOLD"
}

loc_csv_headers() {
  echo "scenario,topology,nodes,rep,ok,provision_s,first_done_s,registry_bytes,uplink_wire_bytes,image_bytes,uplink_copies,node_lan_util,rss_max_kib,rss_gw_kib,cpu_max_s,cpu_gw_s,anon_max_kib,host_cpu_busy,edgepulld_cpu_s,client_cpu_s,host_cpu_s,kthread_cpu_s" \
    >"$LOC_OUT/runs.csv"
  echo "scenario,topology,nodes,rep,node,ok,done_s,rss_kib,cpu_s,anon_kib,client_cpu_s" >"$LOC_OUT/nodes.csv"
  {
    echo "image_bytes=$LOC_IMAGE_BYTES"
    echo "new_bytes=$LOC_NEW_BYTES"
    echo "size_mb=$LOC_SIZE"
    echo "layers=$LOC_LAYERS"
    echo "uplink_mbps=$LOC_UPLINK"
    echo "lan_mbps=$LOC_LAN"
    echo "gw_lan_mbps=$NL_GW_LAN_MBPS"
    echo "nodes=$LOC_NODES"
    echo "reps=$LOC_REPS"
    echo "topologies=$LOC_TOPOS"
    echo "hz=$LOC_HZ"
    echo "disk=$LOC_DISK"
    echo "fs=$LOC_DISK_DESC"
    echo "build=$BENCH_BUILD_TYPE"
    echo "frame_factor=$LOC_FRAME"
    echo "machine=$(uname -srm), $(nproc) CPUs, $(awk '/^MemTotal:/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
    echo "date=$(date -u +%Y-%m-%dT%H:%MZ)"
    echo "args=$LOC_ARGS"
  } >"$LOC_OUT/params.txt"
}

# --- pieces of a run -----------------------------------------------------------

# loc__sampler_start NAME: 4 columns at LOC_HZ into samples/NAME.csv.
loc__sampler_start() {
  local ready=$EP_TMP/sampler.ready i
  rm -f "$ready"
  LOC_SAMPLES=$LOC_OUT/samples/$1.csv
  "$LOC_SAMPLER" --hz "$LOC_HZ" --max-seconds 7200 --ready "$ready" --out "$LOC_SAMPLES" \
    "uplink_rx=$LOC_GW_HOLD:$NL_UPLINK_DEV:rx" "gw_lan_tx=$LOC_GW_HOLD:$NL_DEV:tx" \
    "node_rx=$LOC_N1_HOLD:$NL_DEV:rx" "node_tx=$LOC_N1_HOLD:$NL_DEV:tx" 2>>"$EP_TMP/sampler.log" &
  LOC_SAMPLER_PID=$!
  for ((i = 0; i < 100; i++)); do
    [ -e "$ready" ] && return 0
    kill -0 "$LOC_SAMPLER_PID" 2>/dev/null || break
    sleep 0.05
  done
  ep_die "the sampler did not start: $(tail -n 3 "$EP_TMP/sampler.log" 2>/dev/null)"
}

loc__sampler_stop() {
  kill -TERM "$LOC_SAMPLER_PID" 2>/dev/null
  wait "$LOC_SAMPLER_PID" 2>/dev/null || true
}

# loc__lan_util: mean of n1's LAN receive rate while it received (from the
# first to the last sample above 1 % of L), as a fraction of L.
loc__lan_util() {
  awk -F, -v l="$LOC_LAN" 'NR > 1 && $4 != "" { t[++n] = $4 }
    END { for (i = 1; i <= n; i++) if (t[i] > l / 100) { if (!a) a = i; b = i }
          if (!a) { print "0.000"; exit }
          for (i = a; i <= b; i++) s += t[i]
          printf "%.3f\n", s / (b - a + 1) / l }' "$LOC_SAMPLES"
}

# loc__proc_stats PID: "peak_rss_kib cpu_seconds" of a running process.
loc__proc_stats() {
  local rss cpu
  rss=$(awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null)
  cpu=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null |
    awk -v hz="$LOC_CLK_TCK" '{ printf "%.2f", ($12 + $13) / hz }')
  echo "${rss:-0} ${cpu:-0}"
}

# "busy total" jiffies of the whole machine (all CPUs) from /proc/stat.
loc__cpu_ticks() {
  awk '$1 == "cpu" { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t; exit }' /proc/stat
}

# loc__kthread_ticks: "pid ticks" of every kernel thread (kthreadd, pid 2,
# and its children). Among them are the loop devices' workers, which copy
# every byte written to an emulated SD card into its backing file: on this
# machine that is CPU a real card's controller spends, not the node's.
# (cat, not awk on the files: mawk stops at a process that ended meanwhile.)
loc__kthread_ticks() {
  { cat /proc/[0-9]*/stat 2>/dev/null || true; } |
    awk '{ l = $0; sub(/^[^)]*\) /, "", l); split(l, a, " ")
           if ($1 == 2 || a[2] == 2) print $1, a[12] + a[13] }'
}

# loc__kthread_cpu MARK: CPU seconds the kernel threads used since MARK (the
# output of loc__kthread_ticks). A thread that ended since is not counted:
# the figure is a lower bound.
loc__kthread_cpu() {
  awk -v hz="$LOC_CLK_TCK" 'FILENAME == ARGV[1] { t0[$1] = $2; next }
    { s += $2 - ($1 in t0 ? t0[$1] : 0) } END { printf "%.2f\n", s / hz }' \
    <(printf '%s\n' "$1") <(loc__kthread_ticks)
}

# loc__cpu_busy "BUSY0 TOTAL0": "share seconds": the machine's busy share
# since that mark, and the busy CPU seconds (all CPUs, every process).
loc__cpu_busy() {
  local b0 t0 b1 t1
  read -r b0 t0 <<<"$1"
  read -r b1 t1 < <(loc__cpu_ticks)
  awk -v b="$((b1 - b0))" -v t="$((t1 - t0))" -v hz="$LOC_CLK_TCK" \
    'BEGIN { printf "%.3f %.2f\n", (t > 0 ? b / t : 0), b / hz }'
}

# loc__client ID SOURCE DEST DONE_FILE: skopeo copy in ID's namespace; appends
# "id exit_status end_time" to DONE_FILE, and "id cpu_seconds" of the copy
# to LOC_RUN_DIR/client_cpu. The CPU is what this subshell's children used
# (bash's `times`: ip, timeout and skopeo, each reaped by its parent): on a
# machine of 2 cores, 21 clients at once take a share the locality's
# edgepullds then do not get, and the summary says how much.
loc__client() {
  local rc=0 t
  nl_node_exec "$1" timeout -k 5 "$LOC_CLIENT_TIMEOUT" skopeo --tmpdir "$(loc__dir "$1")/tmp" copy --quiet \
    --src-tls-verify=false "docker://$2" "oci:$3:v1" >"$LOC_RUN_DIR/client-$1.log" 2>&1 || rc=$?
  times >"$LOC_RUN_DIR/times-$1" # in this shell: a $(...) would be a new one
  t=$(sed -n 2p "$LOC_RUN_DIR/times-$1")
  awk -v id="$1" -v t="$t" 'BEGIN { n = split(t, a, /[ms]+/); s = 0
    for (i = 1; i + 1 <= n; i += 2) s += a[i] * 60 + a[i + 1]
    printf "%s %.2f\n", id, s }' >>"$LOC_RUN_DIR/client_cpu"
  # The layout holds the manifest as a blob under its digest: the image's
  # own manifest, byte for byte, when that blob hashes to that digest.
  local m=$3/blobs/sha256/${LOC_V1_DIGEST#sha256:}
  if [ "$rc" -eq 0 ] && { [ ! -f "$m" ] || [ "$(sha256sum <"$m" | cut -d' ' -f1)" != "${LOC_V1_DIGEST#sha256:}" ]; }; then
    rc=99
  fi
  printf '%s %s %s\n' "$1" "$rc" "$EPOCHREALTIME" >>"$4"
}

# loc__clients N SOURCE_HOST: every node n1..nN copies SOURCE_HOST/bench/app:v1 at once.
loc__clients() {
  local n=$1 src=$2 i pids=()
  for ((i = 1; i <= n; i++)); do
    loc__client "n$i" "$src/bench/app:v1" "$(loc__dir "n$i")/copy" "$LOC_RUN_DIR/done" &
    pids+=($!)
  done
  wait "${pids[@]}" 2>/dev/null || true
}

# loc__row SCENARIO TOPO N REP T0 UP0 LOG0 RSSCPU_GW: rows from LOC_RUN_DIR/done
# ("id status end_time"), LOC_RUN_DIR/stats ("id rss cpu anon") and
# LOC_RUN_DIR/client_cpu ("id cpu").
loc__row() {
  local sc=$1 topo=$2 n=$3 rep=$4 t0=$5 up0=$6 log0=$7 reg wire util ok busy cpus
  busy=$LOC_BUSY
  reg=$(ep_registry_blob_bytes "$log0")
  wire=$(($(nl_uplink_bytes) - up0))
  util=$(loc__lan_util)
  touch "$LOC_RUN_DIR/stats" "$LOC_RUN_DIR/client_cpu"
  awk -v sc="$sc" -v tp="$topo" -v n="$n" -v rep="$rep" -v t0="$t0" '
    FILENAME == ARGV[1] { rss[$1] = $2; cpu[$1] = $3; anon[$1] = $4; next }
    FILENAME == ARGV[2] { ccpu[$1] = $2; next }
    { printf "%s,%s,%d,%d,%s,%d,%.3f,%s,%s,%s,%s\n", sc, tp, n, rep, $1, ($2 == 0), $3 - t0,
        rss[$1], cpu[$1], anon[$1], ccpu[$1] }' \
    "$LOC_RUN_DIR/stats" "$LOC_RUN_DIR/client_cpu" "$LOC_RUN_DIR/done" |
    sort -t, -k7,7g >>"$LOC_OUT/nodes.csv"
  # CPU seconds of the run: every edgepulld, every client, the whole machine.
  cpus=$(awk 'FILENAME == ARGV[1] { e += $3; next } { c += $2 }
    END { printf "%.2f,%.2f", e, c }' "$LOC_RUN_DIR/stats" "$LOC_RUN_DIR/client_cpu")
  ok=$(awk -v n="$n" '$1 ~ /^n[0-9]+$/ && $2 == 0 { c++ } END { print (c == n) ? 1 : 0 }' \
    "$LOC_RUN_DIR/done")
  [ "$ok" = 1 ] || LOC_FAILED_RUNS=$((LOC_FAILED_RUNS + 1))
  awk -v sc="$sc" -v tp="$topo" -v n="$n" -v rep="$rep" -v t0="$t0" -v ok="$ok" -v reg="$reg" \
    -v wire="$wire" -v img="$LOC_RUN_BYTES" -v util="$util" -v busy="$busy" -v cpus="$cpus" \
    -v busy_s="$LOC_BUSY_S" -v kt="${LOC_KT_S:-}" '
    FILENAME == ARGV[1] { if ($2 > rmax) rmax = $2; if ($3 > cmax) cmax = $3
                if ($4 > amax) amax = $4; if ($1 == "gw") { rgw = $2; cgw = $3 }; next }
    $1 ~ /^n[0-9]+$/ { d = $3 - t0; if (d > last) last = d; if (first == "" || d < first) first = d }
    END { printf "%s,%s,%d,%d,%d,%.3f,%.3f,%d,%d,%d,%.3f,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s\n", sc, tp,
            n, rep, ok, last, first, reg, wire, img, (img > 0 ? reg / img : 0), util, rmax, rgw, cmax,
            cgw, amax, busy, cpus, busy_s, kt }' \
    "$LOC_RUN_DIR/stats" "$LOC_RUN_DIR/done" | tee -a "$LOC_OUT/runs.csv" | loc__say
}

# One line per run on the terminal: the figures that matter.
loc__say() {
  awk -F, '{ printf "  %-16s %-7s N=%-3s rep %s: %s  %.2f s, uplink %.2f copies, n1 LAN %.0f %%, CPU %.0f %% (%s s: edgepulld %s, clients %s, kernel threads %s)%s\n",
    $1, $2, $3, $4, ($5 == 1 ? "ok    " : "FAILED"), $6, $11, $12 * 100, $18 * 100, $21, $19, $20, $22,
    ($13 != "" ? sprintf(", peak RSS %.1f MiB (own %.1f)", $13 / 1024, $17 / 1024) : "") }'
}

loc__run_begin() { # NAME
  LOC_RUN_DIR=$EP_TMP/runs/$1
  mkdir -p "$LOC_RUN_DIR"
  : >"$LOC_RUN_DIR/done"
  LOC_RUN_BYTES=$LOC_IMAGE_BYTES
  LOC_CLIENT_TIMEOUT=$((120 + LOC_SIZE * 8 * 4 * ${LOC_NS[-1]} / LOC_UPLINK))
}

# loc__run_end: the next run starts with empty stores and nothing dirty.
loc__run_end() {
  local d
  rm -rf "$LOC_FS"/*/copy "$LOC_FS"/*/state.* "$LOC_FS"/*/tmp/* "$LOC_FS"/*/ctrd.* "$LOC_FS"/*/snap.sock
  [ "$LOC_DISK" = tmpfs ] || for d in "$LOC_FS"/*/; do sync -f "$d"; done
}

# --- scenarios -----------------------------------------------------------------

# loc_run_baseline N REP: n1..nN pull from the registry at once, routed.
loc_run_baseline() {
  local n=$1 rep=$2 t0 up0 log0
  loc__run_begin "baseline-N$n-r$rep"
  nl_route_direct on
  loc__sampler_start "baseline_-_N${n}_r$rep"
  log0=$(($(wc -l <"$REGISTRY_LOG") + 1))
  up0=$(nl_uplink_bytes)
  LOC_CPU0=$(loc__cpu_ticks)
  LOC_KT0=$(loc__kthread_ticks)
  t0=$EPOCHREALTIME
  loc__clients "$n" "$REGISTRY_HOST"
  read -r LOC_BUSY LOC_BUSY_S < <(loc__cpu_busy "$LOC_CPU0")
  LOC_KT_S=$(loc__kthread_cpu "$LOC_KT0")
  loc__sampler_stop
  nl_route_direct off
  loc__row baseline - "$n" "$rep" "$t0" "$up0" "$log0"
  loc__run_end
}

# loc__locality TOPO N: a fresh locality (new name, empty stores): the
# coordinator with TOPO, the gateway and n1..nN.
loc__locality() {
  local i id extra
  LOC_RUN_SEQ=$((LOC_RUN_SEQ + 1))
  ep_loc_set "bench$LOC_RUN_SEQ"
  nl_start_coordinator "$1"
  for id in gw $(for ((i = 1; i <= $2; i++)); do echo "n$i"; done); do
    NODE_STATE[$id]=$(mktemp -d "$(loc__dir "$id")/state.XXXXXX")
    extra=()
    if [ -n "${LOC_CTRD:-}" ]; then
      # bench/locality_import: a containerd per node, edgepulld its snapshotter.
      nl_start_containerd "$id" "$(mktemp -d "$(loc__dir "$id")/ctrd.XXXXXX")" "$(loc__dir "$id")/snap.sock"
      extra=(--snapshotter-socket "$(loc__dir "$id")/snap.sock" --containerd-address "${NL_CTR_ADDR[$id]}")
    fi
    # Runtimes name the image without the registry (a Docker registry-mirror).
    EP_START_NOWAIT=1 nl_start_node "$id" --default-registry "$REGISTRY_HOST" "${extra[@]}"
  done
  for id in "${NODE_IDS[@]}"; do
    EP_NETNS=${NL_NS[$id]} ep_wait_http "http://127.0.0.1:$NL_LOCAL_PORT/v2/" 30 "${NODE_PID[$id]}" ||
      ep_die "edgepulld $id did not start (log ${NODE_LOG[$id]})"
  done
  nl_wait_topology 120
  loc__mem_watch_start
}

# loc__mem_watch_start: the largest RssAnon of every edgepulld, read every
# 0.2 s into LOC_RUN_DIR/mem ("id kib") when stopped. VmHWM also counts the
# pages of the shared libraries, which other processes share; RssAnon is
# edgepulld's own memory: heap, stacks, buffers. The watcher runs through the
# timed work, so it is one perl process (perl-base is Essential in Debian):
# the bash loop it replaces read 22 status files line by line and forked a
# sleep every tick, and perf put it at 2-3 % of a 2-core machine that an
# N = 21 run keeps busy, time the locality then did not get.
loc__mem_watch_start() {
  local id args=()
  for id in "${!NODE_PID[@]}"; do args+=("$id" "${NODE_PID[$id]}"); done
  # shellcheck disable=SC2016 # perl's variables, not the shell's
  perl -MTime::HiRes=sleep -e '
    my $out = shift; my %pid = @ARGV; my %peak; my $stop = 0;
    $SIG{TERM} = sub { $stop = 1 };
    until ($stop) {
      for my $id (keys %pid) {
        open(my $f, "<", "/proc/$pid{$id}/status") or next;
        while (<$f>) {
          next unless /^RssAnon:\s+(\d+)/;
          $peak{$id} = $1 if $1 > ($peak{$id} // 0);
          last;
        }
        close $f;
      }
      sleep 0.2 unless $stop;
    }
    open(my $o, ">", $out) or die "$out: $!\n";
    print $o "$_ $peak{$_}\n" for sort keys %peak;
    close $o or die "$out: $!\n";' "$LOC_RUN_DIR/mem" "${args[@]}" &
  LOC_MEM_PID=$!
}

loc__locality_stop() {
  local id
  kill -TERM "$LOC_MEM_PID" 2>/dev/null
  wait "$LOC_MEM_PID" 2>/dev/null
  : >"$LOC_RUN_DIR/stats"
  for id in "${NODE_IDS[@]}"; do
    echo "$id $(loc__proc_stats "${NODE_PID[$id]}") $(awk -v i="$id" '$1 == i { print $2 }' \
      "$LOC_RUN_DIR/mem" 2>/dev/null)" >>"$LOC_RUN_DIR/stats"
  done
  for id in "${NODE_IDS[@]}"; do nl_stop_node "$id" || true; done
  for id in "${!NL_CTR_PID[@]}"; do nl_stop_containerd "$id"; done
  ep_coord_stop || true
  [ "$LOC_KEEP_LOGS" = 1 ] || return 0
  local keep=$LOC_OUT/logs/${LOC_RUN_DIR##*/}
  mkdir -p "$keep"
  for id in "${NODE_IDS[@]}"; do cp "${NODE_LOG[$id]}" "$keep/$id.log" 2>/dev/null || true; done
  cp "$COORD_LOG" "$keep/coordinator.log" 2>/dev/null || true
  cp "$LOC_RUN_DIR"/client-*.log "$keep/" 2>/dev/null || true
  return 0
}

# loc__deploy TAG: edgepullctl deploy --wait --json with a receive time on
# every line; "node 0 time" in LOC_RUN_DIR/done for every node done.
# loc__stamp_lines: each line of stdin with its receive time (seconds since
# the epoch, as EPOCHREALTIME) in front. perl, not a bash read loop: bash
# reads a pipe a byte at a time, and this runs while the deploy is timed.
loc__stamp_lines() {
  # shellcheck disable=SC2016 # perl's variables, not the shell's
  perl -MTime::HiRes=time -ne 'printf "%.6f %s", time, $_'
}

loc__deploy() {
  local out=$LOC_RUN_DIR/deploy-$1.jsonl
  NL_DEPLOY_TIMEOUT=$LOC_CLIENT_TIMEOUT nl_deploy "$LOC_REF:$1" --wait --json --import none \
    2>"$out.err" | loc__stamp_lines >"$out"
  mkdir -p "$LOC_OUT/deploys"
  cp "$out" "$LOC_OUT/deploys/${LOC_RUN_DIR##*/}-$1.jsonl"
  awk '{ t = $1; $1 = ""; printf "{\"t\":%s,\"l\":%s}\n", t, substr($0, 2) }' "$out" |
    jq -r 'select(.l.event == "progress" and .l.state == "done") | "\(.l.node) 0 \(.t)"' \
      2>/dev/null | sort -u -k1,1 >"$LOC_RUN_DIR/done"
}

# loc_run_edgepull MODE TOPO N REP [TLS]: MODE pull (every runtime pulls through its
# edgepulld), deploy (edgepullctl deploy) or delta (deploy v1 untimed, then
# the measured deploy of v2). TLS "plain" runs the peers over plain HTTP
# (--peer-insecure) and names the scenario edgepull-MODE-plain; default tls.
loc_run_edgepull() {
  local mode=$1 topo=$2 n=$3 rep=$4 t0 up0 log0 sc=edgepull-$1
  [ "${5:-tls}" = tls ] || sc=edgepull-$1-plain
  loc__run_begin "${sc#edgepull-}-$topo-N$n-r$rep"
  if [ "$sc" = "edgepull-$mode" ]; then
    loc__locality "$topo" "$n"
  else
    EP_PEER_TLS=off loc__locality "$topo" "$n"
  fi
  if [ "$mode" = delta ]; then
    loc__deploy v1
    LOC_RUN_BYTES=$LOC_NEW_BYTES
  fi
  loc__sampler_start "${sc}_${topo}_N${n}_r$rep"
  log0=$(($(wc -l <"$REGISTRY_LOG") + 1))
  up0=$(nl_uplink_bytes)
  LOC_CPU0=$(loc__cpu_ticks)
  LOC_KT0=$(loc__kthread_ticks)
  t0=$EPOCHREALTIME
  case $mode in
  pull) loc__clients "$n" "127.0.0.1:$NL_LOCAL_PORT" ;;
  deploy) loc__deploy v1 ;;
  delta) loc__deploy v2 ;;
  esac
  read -r LOC_BUSY LOC_BUSY_S < <(loc__cpu_busy "$LOC_CPU0")
  LOC_KT_S=$(loc__kthread_cpu "$LOC_KT0")
  loc__sampler_stop
  loc__locality_stop
  loc__row "$sc" "$topo" "$n" "$rep" "$t0" "$up0" "$log0"
  loc__run_end
}
