# shellcheck shell=bash
# shellcheck disable=SC2034 # SD_* are read by the tests and benchmarks
# Emulated SD-card-class disks (sourced after common.sh): one per node, so a
# node's fsync, rename and index commit cost what they cost on a Raspberry
# Pi, not on the machine's SSD.
#
# How (../shared/DESIGN.md §9): the kernels these run on have no
# device-mapper targets, no nbd and no cgroup v2 io controller, but cgroup
# v1 blkio throttling works on loop devices. Each disk is
#   - a sparse file under SD_DIR (default /var/tmp), attached to its own loop
#     device, ext4, mounted at <dir>/<id>;
#   - writes throttled to SD_MBPS MB/s (default 20) with
#     blkio.throttle.write_bps_device, set twice because v1 throttling is
#     flat (a group's limit is not its parent's): in the node's own blkio
#     group <prefix>-<id>, which its processes join (their writes and fsyncs),
#     and in the root group (writeback by the kernel's flusher and jbd2
#     threads, which run there);
#   - a bounded dirty cache: the loop device's bdi gets max_bytes SD_DIRTY_MB
#     (default 32) and strict_limit, so buffered writes also wait for the
#     throttled disk once that much is dirty, instead of filling the page
#     cache at memory speed.
# The two limits can add up while the node's own fsync and the kernel's
# writeback run at the same moment (at most twice the rate, briefly); over
# a pull the device sustains SD_MBPS.
# Every disk is undone by common.sh's cleanup stack, also on failure or
# Ctrl-C: the limits reset (they outlive the loop device otherwise), the
# bdi bounds restored, unmounted, detached, the file and the group removed.
#
#   sd_require                     root, blkio v1, losetup, mkfs.ext4
#   sd_create ID SIZE_MB           the disk of node ID, mounted at SD_MNT[ID]
#   sd_procs_file ID               the cgroup.procs file of ID's group
#   sd_exec ID CMD...              CMD run inside ID's group
#   sd_join ID PID                 a running process into ID's group
#   sd_group_written ID            bytes written to ID's device by its group
#   sd_device_written ID           bytes written to it by the root group since
#                                  sd_create (its counters outlive devices)
#   sd_limit ID                    "group_bps root_bps" as the kernel holds them
#   sd_destroy ID                  undo sd_create (also run at exit)
#   sd_destroy_all                 every disk, and their directory

SD_BLKIO=${SD_BLKIO:-/sys/fs/cgroup/blkio}
declare -gA SD_DEV=() SD_MM=() SD_MNT=() SD_CG=() SD_IMG=() SD_ROOT0=()

sd_require() {
  ep_require_root
  ep_require_cmd losetup mkfs.ext4 mount umount lsblk
  [ -w "$SD_BLKIO/blkio.throttle.write_bps_device" ] || {
    echo "$EP_TEST_NAME needs a cgroup v1 blkio controller at $SD_BLKIO (slow disks)" >&2
    exit 77
  }
}

sd__mbps() { echo "${SD_MBPS:-20}"; }

# sd_create ID SIZE_MB: a throttled ext4 disk of SIZE_MB (sparse) for ID.
sd_create() {
  local id=$1 size=$2 dir img dev mm cg bps
  [[ $size =~ ^[0-9]+$ ]] && [ "$size" -ge 16 ] || ep_die "sd_create: size '$size' is not >= 16 MB"
  SD_PREFIX=${SD_PREFIX:-epsd$$}
  if [ -z "${SD_ROOT:-}" ]; then
    SD_ROOT=$(mktemp -d "${SD_DIR:-/var/tmp}/$SD_PREFIX.XXXXXX") || ep_die "sd_create: no directory"
    ep_cleanup_push "rm -rf '$SD_ROOT'"
    # Every mount namespace made while a disk is mounted (any ip netns exec
    # on the machine) copies it, and with a private / our umount would not
    # reach the copy: the loop device stayed busy until those processes
    # ended. Under a shared mount the umount propagates to their copies.
    mount --bind "$SD_ROOT" "$SD_ROOT" && mount --make-shared "$SD_ROOT" ||
      ep_die "sd_create: cannot make $SD_ROOT a shared mount"
    ep_cleanup_push "umount -l '$SD_ROOT'"
  fi
  bps=$(($(sd__mbps) * 1048576))
  img=$SD_ROOT/$id.img
  truncate -s "${size}M" "$img" || ep_die "sd_create: cannot make $img"
  SD_IMG[$id]=$img
  dev=$(losetup -f --show "$img") || ep_die "sd_create: no free loop device"
  SD_DEV[$id]=$dev
  ep_cleanup_push "sd_destroy $id"
  mm=$(lsblk -dno MAJ:MIN "$dev" | tr -d ' ')
  SD_MM[$id]=$mm
  mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$dev" ||
    ep_die "sd_create: mkfs.ext4 on $dev failed"
  SD_MNT[$id]=$SD_ROOT/$id
  mkdir -p "${SD_MNT[$id]}"
  mount "$dev" "${SD_MNT[$id]}" || ep_die "sd_create: cannot mount $dev"
  cg=$SD_BLKIO/$SD_PREFIX-$id
  mkdir -p "$cg" || ep_die "sd_create: cannot create the blkio group $cg"
  SD_CG[$id]=$cg
  echo "$mm $bps" >"$cg/blkio.throttle.write_bps_device" &&
    echo "$mm $bps" >"$SD_BLKIO/blkio.throttle.write_bps_device" ||
    ep_die "sd_create: cannot throttle $mm"
  SD_ROOT0[$id]=$(sd__written "$SD_BLKIO" "$mm")
  echo "$((${SD_DIRTY_MB:-32} * 1048576))" >"/sys/class/bdi/$mm/max_bytes" &&
    echo 1 >"/sys/class/bdi/$mm/strict_limit" || ep_die "sd_create: cannot bound $mm's dirty cache"
}

sd_procs_file() { # ID
  echo "${SD_CG[$1]}/cgroup.procs"
}

# sd_exec ID CMD...: CMD (exec'ed, so the pid is the caller's $!) in ID's group.
sd_exec() {
  local f
  f=$(sd_procs_file "$1")
  shift
  sh -c 'echo $$ >"$0" && exec "$@"' "$f" "$@"
}

sd_join() { # ID PID
  echo "$2" >"$(sd_procs_file "$1")"
}

sd__written() { # GROUP_DIR MAJ:MIN
  awk -v d="$2" '$1 == d && $2 == "Write" { print $3; f = 1 } END { if (!f) print 0 }' \
    "$1/blkio.throttle.io_service_bytes"
}

sd_group_written() { sd__written "${SD_CG[$1]}" "${SD_MM[$1]}"; }
sd_device_written() { echo $(($(sd__written "$SD_BLKIO" "${SD_MM[$1]}") - ${SD_ROOT0[$1]:-0})); }

sd_limit() { # ID
  local g r
  g=$(awk -v d="${SD_MM[$1]}" '$1 == d { print $2 }' "${SD_CG[$1]}/blkio.throttle.write_bps_device")
  r=$(awk -v d="${SD_MM[$1]}" '$1 == d { print $2 }' "$SD_BLKIO/blkio.throttle.write_bps_device")
  echo "${g:-0} ${r:-0}"
}

sd__attached() { # ID: true while ID's loop device is still backed by its file
  local back
  back=$(losetup -nO BACK-FILE "${SD_DEV[$1]}" 2>/dev/null) || return 1
  [[ $back == "${SD_IMG[$1]}"* ]]
}

# sd_destroy ID: every step on its own, so a half-made disk is undone too.
sd_destroy() {
  local id=$1 mm=${SD_MM[$1]:-} cg=${SD_CG[$1]:-} p
  [ -n "${SD_DEV[$id]:-}" ] || return 0
  if [ -n "$cg" ] && [ -d "$cg" ]; then
    # Stragglers go back to the root group, or the group cannot go.
    while read -r p; do echo "$p" >"$SD_BLKIO/cgroup.procs" || true; done <"$cg/cgroup.procs" 2>/dev/null
    rmdir "$cg" 2>/dev/null || true
  fi
  if [ -n "$mm" ]; then
    echo "$mm 0" >"$SD_BLKIO/blkio.throttle.write_bps_device" 2>/dev/null || true
    echo 0 >"/sys/class/bdi/$mm/strict_limit" 2>/dev/null || true
    echo 100 >"/sys/class/bdi/$mm/max_ratio" 2>/dev/null || true
  fi
  if [ -n "${SD_MNT[$id]:-}" ] && mountpoint -q "${SD_MNT[$id]}"; then
    umount "${SD_MNT[$id]}" 2>/dev/null || umount -l "${SD_MNT[$id]}" || true
  fi
  # A device still busy just after the umount is only marked for autoclear:
  # wait (bounded) until it lets go of the file.
  for ((p = 0; p < 50; p++)); do
    losetup -d "${SD_DEV[$id]}" 2>/dev/null || true
    sd__attached "$id" || break
    sleep 0.1
  done
  rm -f "${SD_IMG[$id]:-}" || true
  SD_DEV[$id]=
}

sd_destroy_all() {
  local id
  for id in "${!SD_DEV[@]}"; do sd_destroy "$id"; done
  [ -n "${SD_ROOT:-}" ] || return 0
  umount -l "$SD_ROOT" 2>/dev/null || true
  rm -rf "$SD_ROOT" || true
  SD_ROOT=
}
