#!/usr/bin/env bash
# tests/lib/sdisk.sh, the emulated SD-card disks of bench/locality --disk sd
# and of the tests that need a slow disk. No wall-clock assertion: what is
# asserted is that the throttle is configured and in the path of the writes,
# as the kernel reports it.
#  a. the disk is a mounted ext4 on its own loop device;
#  b. the write limit is set for that device in the node's blkio group and
#     in the root group; the dirty cache is bounded (bdi max_bytes,
#     strict_limit);
#  c. a process started with sd_exec is in the node's group, and what it
#     writes with fsync is counted by the group's throttle statistics for
#     that device (so it went through the throttle); buffered writes flushed
#     by the kernel are counted by the root group's;
#  d. sd_destroy undoes everything: limits reset, bdi restored, unmounted,
#     detached (also while another mount namespace holds a copy of the
#     mount), group and file gone.
. "$(dirname "$0")/../lib/common.sh"
. "$EP_SOURCE_DIR/tests/lib/sdisk.sh"
ep_init test_sdisk 120
sd_require

SD_MBPS=20 SD_DIRTY_MB=8 sd_create n1 64
dev=${SD_DEV[n1]}
mm=${SD_MM[n1]}
mnt=${SD_MNT[n1]}
ep_assert "a: $dev is a loop device" test -b "$dev"
ep_assert_eq ext4 "$(findmnt -no FSTYPE "$mnt")" "a: ext4 mounted at $mnt"
ep_assert_eq "$dev" "$(findmnt -no SOURCE "$mnt")" "a: from $dev"

ep_assert_eq "20971520 20971520" "$(sd_limit n1)" "b: 20 MiB/s for $mm in the group and the root group"
# The kernel keeps the bound as a fine-grained ratio: max_bytes reads back rounded (±2 %).
dirty=$(cat "/sys/class/bdi/$mm/max_bytes")
ep_assert "b: 8 MiB of dirty cache ($dirty B)" test "$dirty" -le 8560000 -a "$dirty" -ge 8220000
ep_assert_eq 1 "$(cat "/sys/class/bdi/$mm/strict_limit")" "b: strict_limit"

g0=$(sd_group_written n1)
# shellcheck disable=SC2016 # $$ and $0 are the inner shell's
rc=0
sd_exec n1 sh -c 'grep -qx "$$" "$0" && dd if=/dev/zero of="$1" bs=1M count=6 conv=fsync status=none' \
  "$(sd_procs_file n1)" "$mnt/f" || rc=$?
ep_assert_eq 0 "$rc" "c: sd_exec runs the command inside n1's group"
g1=$(sd_group_written n1)
ep_assert "c: the group's throttle counted the 6 MiB written with fsync ($((g1 - g0)) B)" \
  test $((g1 - g0)) -ge $((6 * 1048576))
r0=$(sd_device_written n1)
dd if=/dev/zero of="$mnt/g" bs=1M count=4 status=none
sync -f "$mnt"
r1=$(sd_device_written n1)
ep_assert "c: the root group's throttle counted writes from outside the group ($((r1 - r0)) B)" \
  test $((r1 - r0)) -ge $((4 * 1048576))

# A mount namespace made meanwhile (as any ip netns exec on the machine does)
# holds a copy of the mount: sd_destroy must still detach the device.
unshare -m --propagation slave sleep 300 &
holder=$!
ep_cleanup_push "kill $holder"
sleep 0.2
cg=${SD_CG[n1]}
img=${SD_IMG[n1]}
sd_destroy n1
ep_assert_eq "" "$(awk -v d="$mm" '$1 == d' "$SD_BLKIO/blkio.throttle.write_bps_device")" \
  "d: no limit left on $mm in the root group"
ep_assert_eq "0 100" "$(cat "/sys/class/bdi/$mm/strict_limit") $(cat "/sys/class/bdi/$mm/max_ratio")" \
  "d: the bdi's defaults restored"
ep_assert "d: unmounted" bash -c "! mountpoint -q '$mnt'"
back=$(losetup -nO BACK-FILE "$dev" 2>/dev/null) || back=
ep_assert_eq "" "$(grep -F "$img" <<<"$back")" "d: $dev detached"
ep_assert "d: the group is gone" test ! -d "$cg"
ep_assert "d: the image is gone" test ! -e "$img"
ep_finish
