#!/usr/bin/env bash
# One node, time to runnable (issue 10's benchmark): how long until containerd holds an image
# unpacked and ready to run, pulled CRI-style (../shared/tools/containerd-conformance's cri-pull)
#   - by containerd itself: fetch into its content store, then unpack into its overlayfs
#     snapshotter (containerd 1.6's unpacker: a layer is applied once its fetch has ended);
#   - through edgepull: edgepulld as the mirror and as the proxy snapshotter, which fetches each
#     layer and unpacks it while it streams in; containerd skips the layers.
# Same registry, behind the same emulated uplink (a veth into a network namespace, tc tbf), same
# image: gzip layers of many small random files, so that unpacking (gunzip, thousands of creates
# and writes) costs about what the transfer does. Every repetition starts cold: a fresh
# containerd root and edgepulld state dir, both on the disk measured:
#   disk  the machine's disk (under /var/tmp);
#   sd    an emulated SD card (tests/lib/sdisk.sh, as bench/locality --disk sd: a loop device,
#         writes throttled with cgroup v1 blkio, a bounded dirty cache); containerd and
#         edgepulld write from its blkio group.
# Repetitions alternate the two. Reports each time, and edgepull / containerd (aim <= 0.7).
# Also reports the transfer alone (curl of the layers over the uplink), for scale.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=../tests/lib/sdisk.sh
. "$EP_SOURCE_DIR/tests/lib/sdisk.sh"

BENCH_FILES=6000
BENCH_FILE_KB=8
BENCH_LAYERS=1
BENCH_MBIT=100
BENCH_SD_MBPS=20
BENCH_DISKS=disk,sd
args=()
while [ $# -gt 0 ]; do
  case $1 in
  --disk)
    BENCH_DISKS=${2:?--disk needs a value}
    shift 2
    ;;
  *)
    args+=("$1")
    shift
    ;;
  esac
done
# shellcheck disable=SC2034 # read by bench_parse_args
BENCH_OPTS="--files:BENCH_FILES --file-kb:BENCH_FILE_KB --layers:BENCH_LAYERS --mbit:BENCH_MBIT --sd-mbps:BENCH_SD_MBPS"
bench_parse_args "One node, time to runnable: a CRI-style pull through edgepull (mirror + streaming
unpack in its snapshotter) against containerd's own pull (fetch, then unpack, overlayfs)." \
  "  --files N          files per layer (default $BENCH_FILES)
  --file-kb K        size of each file in KiB, random bytes (default $BENCH_FILE_KB)
  --layers N         gzip layers (default $BENCH_LAYERS)
  --mbit M           the uplink's rate in Mbit/s (default $BENCH_MBIT)
  --disk LIST        disk,sd (default $BENCH_DISKS)
  --sd-mbps M        the emulated SD card's write rate in MiB/s (default $BENCH_SD_MBPS)
" "${args[@]}"
IFS=, read -r -a DISKS <<<"$BENCH_DISKS"
for d in "${DISKS[@]}"; do
  case $d in disk | sd) ;; *) bench_usage_error "--disk: '$d' is not disk or sd" ;; esac
done

ep_init bench_snapshot_runnable $((900 + BENCH_REPS * ${#DISKS[@]} * 120))
ep_require_root
ep_require_cmd containerd docker-registry skopeo curl jq tc ip numfmt
case ",$BENCH_DISKS," in *,sd,*) sd_require ;; esac
bench_ensure_build
ep_conformance_dir
CRI_PULL=${CONFORMANCE_BIN:-${TMPDIR:-/tmp}/containerd-conformance-bin}/cri-pull
ep_timeout 400 "$CONF/build" "$(dirname "$CRI_PULL")" >"$EP_TMP/build.log" 2>&1 ||
  ep_die "containerd-conformance build failed (log: $EP_TMP/build.log)"
ep__overlay_works "$EP_TMP" || ep_die "this benchmark needs overlayfs mounts"

REF=docker.io/library/runnable:v1
ep_uplink_create
ep_start_registry
specs=()
for ((i = 0; i < BENCH_LAYERS; i++)); do specs+=("gzfiles:${BENCH_FILES}x${BENCH_FILE_KB}K"); done
ep_log "making an image of $BENCH_LAYERS layer(s) of $BENCH_FILES files of $BENCH_FILE_KB KiB"
ep_mkimage "$EP_TMP/img" v1 "$(dpkg --print-architecture)" "${specs[@]}"
ep_push_image "$EP_TMP/img" v1 library/runnable
LAYERS=("${EP_IMG_LAYERS[@]}")
layer_bytes=0
for l in "${LAYERS[@]}"; do layer_bytes=$((layer_bytes + $(stat -c %s "$(ep_registry_blob_path "$l")"))); done
rm -rf "$EP_TMP/img"
ep_uplink_shape "${BENCH_MBIT}mbit"

# run DISK MODE DIR: one cold pull (MODE containerd or edgepull) with its state in DIR; its wall
# time in RUN_TIME.
run() {
  local disk=$1 mode=$2 dir=$3 hosts out t0 t1 sock='' line
  mkdir -p "$dir"
  if [ "$mode" = edgepull ]; then
    sock=$EP_TMP/snap-$RANDOM.sock
    EP_STATE=$dir/edgepull EP_PORT=
    ep_start_edgepulld --registry "docker.io=$REGISTRY_URL" --snapshotter-socket "$sock"
    [ "$disk" = disk ] || sd_join sd "$EP_PID"
    hosts=$(ep_hosts_dir docker.io "$REGISTRY_URL" "$EP_URL")
  else
    hosts=$(ep_hosts_dir docker.io "$REGISTRY_URL")
  fi
  EP_CTRD_DIR=$dir/containerd EP_CTRD_SNAP_SOCK=$sock ep_start_containerd
  [ "$disk" = disk ] || sd_join sd "$CTR_PID"
  out=$EP_TMP/pull-$disk-$mode.log
  t0=$(bench_now)
  ep_timeout 600 "$CRI_PULL" -address "$CTR_ADDRESS" -namespace k8s.io \
    -snapshotter "$([ "$mode" = edgepull ] && echo edgepull || echo overlayfs)" \
    -hosts-dir "$hosts" -timeout 9m "$REF" >"$out" 2>&1 || ep_die "cri-pull ($mode, $disk) failed: $(tail -n 3 "$out")"
  t1=$(bench_now)
  RUN_TIME=$(bench_calc "$t1 - $t0")
  line=$(grep -m1 '^layers:' "$out")
  case $mode in
  edgepull) [[ $line == *"fetched: 0,"*"unpacked in edgepull: true" ]] ||
    ep_die "edgepull run: containerd did not skip every layer ($line)" ;;
  *) [[ $line == *"unpacked in overlayfs: true" ]] || ep_die "containerd run: not unpacked ($line)" ;;
  esac
  ep_stop_pid "$CTR_PID" 10 || true
  [ "$mode" != edgepull ] || ep_stop_pid "$EP_PID" 15 || true
  rm -rf "$dir"
  sync
}

transfer() { # the layers over the uplink into /dev/null; prints seconds
  local t0 t1 l
  t0=$(bench_now)
  for l in "${LAYERS[@]}"; do
    curl -fsS -o /dev/null "$REGISTRY_URL/v2/library/runnable/blobs/$l" || ep_die "GET $l failed"
  done
  t1=$(bench_now)
  bench_calc "$t1 - $t0"
}

tr_times=()
for ((r = 0; r < BENCH_REPS; r++)); do tr_times+=("$(transfer)"); done
bench_record "transfer alone (curl of the layers over the uplink)" s "%.2f" "${tr_times[@]}"

for disk in "${DISKS[@]}"; do
  if [ "$disk" = sd ]; then
    SD_MBPS=$BENCH_SD_MBPS SD_PREFIX=epsr$$
    export SD_MBPS SD_PREFIX
    sd_create sd 4096
    base=${SD_MNT[sd]}
  else
    base=$(mktemp -d /var/tmp/ep-runnable.XXXXXX)
    ep_cleanup_push "rm -rf '$base'"
  fi
  c_times=() e_times=() ratios=()
  run "$disk" containerd "$base/warm-c" # untimed warm-ups: binaries and page cache of the tools
  run "$disk" edgepull "$base/warm-e"
  for ((r = 0; r < BENCH_REPS; r++)); do
    # alternate which goes first, so a trend in the machine's load hits both alike
    if ((r % 2 == 0)); then
      run "$disk" containerd "$base/c$r" && c=$RUN_TIME
      run "$disk" edgepull "$base/e$r" && e=$RUN_TIME
    else
      run "$disk" edgepull "$base/e$r" && e=$RUN_TIME
      run "$disk" containerd "$base/c$r" && c=$RUN_TIME
    fi
    c_times+=("$c") e_times+=("$e") ratios+=("$(bench_calc "$e / $c")")
    ep_log "$disk rep $((r + 1)): containerd ${c}s, edgepull ${e}s, ratio $(bench_calc "$e / $c")"
  done
  bench_record "$disk: containerd pull (fetch, then unpack; overlayfs)" s "%.2f" "${c_times[@]}"
  bench_record "$disk: edgepull (mirror + streaming unpack, proxy snapshotter)" s "%.2f" "${e_times[@]}"
  bench_record "$disk: edgepull / containerd" ratio "%.3f" "${ratios[@]}"
done

bench_note "Image: $BENCH_LAYERS gzip layer(s) of $BENCH_FILES random files of $BENCH_FILE_KB KiB, $layer_bytes bytes of layers; uplink ${BENCH_MBIT} Mbit/s (tc tbf on a veth to the registry's netns); runnable = cri-pull returned with the image unpacked in the snapshotter (containerd 1.6's IsUnpacked)."
bench_note "Disks: disk = /var/tmp on the machine's disk; sd = ext4 on a loop device, writes throttled to $BENCH_SD_MBPS MiB/s (cgroup v1 blkio), 32 MiB dirty cache. Each repetition starts with an empty containerd root and edgepulld state dir on that disk; the two modes alternate."
bench_report "Time to runnable, one node: edgepull's streaming unpack vs containerd's pull"
