#!/usr/bin/env bash
# The quick variant of bench/locality (issue 5, point 6), so the evaluation
# harness never rots: N = 3, a 12 MB image in 3 layers, one repetition of
# every scenario (baseline, edgepull-pull and edgepull-deploy on chain and
# tree:2, the delta deploy). Its timings are printed, never asserted; what is
# asserted is what must hold whatever the machine's speed:
#  a. bench/locality exits 0 and every run provisioned every node;
#  b. runs.csv has one row per scenario and topology, each ok, each with
#     the kernel threads' CPU seconds (the summary's floor);
#  c. every edgepull run took exactly one copy of the image over the uplink
#     (blob bytes the registry served = the image), the delta deploy only the
#     new blobs; the baseline took N copies;
#  d. the summary, the CSVs and the four PNG figures are written;
#  e. once more on SD-card-class disks (--disk sd: a throttled loop device
#     per node, tests/lib/sdisk.sh), chain only, no figures: every run
#     provisioned every node with one copy over the uplink, every node's
#     processes wrote at least the image to its own device through the
#     throttle (the kernel's blkio counters), the limits were in force, and
#     nothing of the emulation is left afterwards.
. "$(dirname "$0")/../lib/common.sh"
ep_init test_bench_locality 900
ep_require_root
ep_require_cmd gnuplot skopeo docker-registry mosquitto jq ip tc

out=$EP_TMP/out
rc=0
NL_PREFIX=tbl$$ ep_timeout 840 "$EP_SOURCE_DIR/bench/locality" --quick --disk tmpfs \
  --build-dir "$EP_BUILD_DIR" --out "$out" >"$EP_TMP/bench.log" 2>&1 || rc=$?
EP_LOGS+=("$EP_TMP/bench.log")
sed -n '/^## edgepull against/,$p' "$EP_TMP/bench.log"
grep -E '^  (baseline|edgepull-)' "$EP_TMP/bench.log" || true
ep_assert_eq 0 "$rc" "a: bench/locality --quick exits 0"

runs=$out/runs.csv
ep_assert "b: runs.csv exists" test -s "$runs"
want="baseline,- edgepull-pull,chain edgepull-pull,tree:2 edgepull-deploy,chain edgepull-deploy,tree:2 edgepull-delta,chain edgepull-delta,tree:2"
for key in $want; do
  ep_assert_eq 1 "$(awk -F, -v k="$key" '$1 "," $2 == k && $3 == 3 { print $5 }' "$runs" 2>/dev/null)" \
    "b: $key at N = 3 ran and provisioned every node"
done
ep_assert "b: every run counts the kernel threads' CPU seconds" \
  awk -F, 'NR > 1 && $22 !~ /^[0-9]+[.][0-9]+$/ { bad = 1 } END { exit bad }' "$runs"

copies() { # SCENARIO TOPOLOGY: uplink copies (column 11)
  awk -F, -v s="$1" -v t="$2" '$1 == s && $2 == t { print $11; exit }' "$runs" 2>/dev/null
}
ep_assert_eq 3.000 "$(copies baseline -)" "c: the baseline took 3 copies over the uplink"
for key in $want; do
  case $key in baseline*) continue ;; esac
  ep_assert_eq 1.000 "$(copies "${key%%,*}" "${key#*,}")" \
    "c: $key took exactly one copy of what it deployed over the uplink"
done
ep_assert "c: nodes.csv has every node of every run" \
  test "$(tail -n +2 "$out/nodes.csv" | grep -c ',n[123],1,')" -ge 21

for f in summary.md summary.csv params.txt fig2.png fig5.png fig6.png fig7.png; do
  ep_assert "d: $f written" test -s "$out/$f"
done
ep_assert "d: the PNGs are PNG" bash -c "file -b '$out/fig5.png' | grep -q PNG || head -c 8 '$out/fig5.png' | grep -q PNG"
ep_assert "d: a samples file per run" test "$(find "$out/samples" -name '*.csv' | wc -l)" -ge 7
rate=$(awk -F, 'NR > 1 { n++; t = $1 } END { printf "%.0f", (t > 0 ? n / t : 0) }' \
  "$out/samples/edgepull-deploy_chain_N3_r1.csv" 2>/dev/null)
ep_assert "d: throughput sampled at >= 10 Hz (${rate:-?} Hz)" test "${rate:-0}" -ge 10

# e. SD-card-class disks.
[ -w /sys/fs/cgroup/blkio/blkio.throttle.write_bps_device ] || {
  ep_log "e: skipped, no cgroup v1 blkio controller"
  ep_finish
}
sd=$EP_TMP/sd
rc=0
NL_PREFIX=tbs$$ ep_timeout 600 "$EP_SOURCE_DIR/bench/locality" --quick --disk sd --topologies chain \
  --no-plots --build-dir "$EP_BUILD_DIR" --out "$sd" >"$EP_TMP/bench-sd.log" 2>&1 || rc=$?
EP_LOGS+=("$EP_TMP/bench-sd.log")
grep -E '^  (baseline|edgepull-)|stores and copies on' "$EP_TMP/bench-sd.log" || true
ep_assert_eq 0 "$rc" "e: bench/locality --quick --disk sd exits 0"
runs=$sd/runs.csv
ep_assert_eq sd "$(sed -n 's/^disk=//p' "$sd/params.txt" 2>/dev/null)" "e: params.txt says disk=sd"
for key in baseline,- edgepull-pull,chain edgepull-deploy,chain edgepull-delta,chain; do
  ep_assert_eq 1 "$(awk -F, -v k="$key" '$1 "," $2 == k && $3 == 3 { print $5 }' "$runs" 2>/dev/null)" \
    "e: $key at N = 3 on SD disks provisioned every node"
  case $key in baseline*) continue ;; esac
  ep_assert_eq 1.000 "$(copies "${key%%,*}" "${key#*,}")" "e: $key on SD disks took one copy over the uplink"
done
img=$(sed -n 's/^image_bytes=//p' "$sd/params.txt" 2>/dev/null)
for id in gw n1 n2 n3; do
  row=$(awk -F, -v i="$id" '$1 == i' "$sd/disk.csv" 2>/dev/null)
  IFS=, read -r _ mm gw_bytes _ gbps rbps <<<"${row:-,,,,,}"
  ep_assert "e: $id's processes wrote >= the image ($img B) through its device's throttle (${gw_bytes:-?} B)" \
    test "${gw_bytes:-0}" -ge "${img:-1}"
  ep_assert_eq "20971520 20971520" "${gbps:-} ${rbps:-}" "e: $id's device $mm throttled to 20 MiB/s"
  ep_assert_eq "" "$(awk -v d="$mm" '$1 == d' /sys/fs/cgroup/blkio/blkio.throttle.write_bps_device)" \
    "e: no limit left on $id's device $mm"
done
ep_assert_eq "" "$(find /sys/fs/cgroup/blkio -maxdepth 1 -name "tbs$$*")" "e: no blkio group left"
ep_assert_eq "" "$(losetup -a | grep "tbs$$")" "e: no loop device left"
ep_finish
