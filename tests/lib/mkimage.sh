# shellcheck shell=bash
# shellcheck disable=SC2034 # the EP_IMG_* results are read by the tests
# Builds container images without network: OCI image layouts whose layers are
# tars of random (incompressible) bytes, so every test image is unique and its
# size on the wire is what the test asked for. Tars are deterministic (sorted,
# mtime 0, numeric root owner, GNU format) so the diff_ids in the config are
# exactly the sha256 of the uncompressed layer. Needs bash, coreutils, tar,
# gzip, jq, and skopeo for pushing. Source after common.sh.
#
#   ep_mkimage LAYOUT TAG ARCH SPEC...   one image; SPEC = gzip:SIZE | tar:SIZE
#                                        (SIZE as head -c takes it: 4M, 256M, 100K)
#                                        | gzfiles:COUNTxSIZE (COUNT random files of
#                                        SIZE each, gzip: a layer whose unpack costs)
#                                        | gzipdir:DIR (the tree under DIR)
#   ep_mkimage_runnable LAYOUT TAG ARCH MARKER SPEC...
#                                        busybox, the SPECs, /marker.txt
#   ep_mkimage_index LAYOUT TAG SPEC...  linux/amd64 + linux/arm64 image index
#   ep_push_image LAYOUT TAG REPO [skopeo copy options...]
#
# Results land in globals: EP_IMG_DIGEST/EP_IMG_SIZE/EP_IMG_MEDIATYPE (the
# manifest or index just built), EP_IMG_LAYERS (layer digests), EP_PUSHED_DIGEST
# and EP_PUSHED_BLOBS (what the registry holds after a push).

EP_MT_MANIFEST=application/vnd.oci.image.manifest.v1+json
EP_MT_INDEX=application/vnd.oci.image.index.v1+json
EP_MT_CONFIG=application/vnd.oci.image.config.v1+json
EP_MT_TAR=application/vnd.oci.image.layer.v1.tar
EP_MT_GZIP=application/vnd.oci.image.layer.v1.tar+gzip

# ep__blob_put LAYOUT FILE: move FILE into the layout's blob dir; sets
# EP__DIGEST and EP__SIZE.
ep__blob_put() {
  local hex
  hex=$(sha256sum "$2" | cut -d' ' -f1)
  EP__DIGEST=sha256:$hex
  EP__SIZE=$(stat -c %s "$2")
  mv -f "$2" "$1/blobs/sha256/$hex"
}

ep__layout_init() { # LAYOUT
  mkdir -p "$1/blobs/sha256"
  [ -f "$1/oci-layout" ] || printf '{"imageLayoutVersion":"1.0.0"}' >"$1/oci-layout"
  [ -f "$1/index.json" ] || printf '{"schemaVersion":2,"manifests":[]}' >"$1/index.json"
}

# ep__mklayer LAYOUT KIND SIZE: one layer holding one random file of SIZE
# bytes (KIND gzip or tar), COUNT random files data/f000000.. in name order
# (KIND gzfiles, SIZE COUNTxSIZE), or the tree under the directory SIZE
# names (KIND gzipdir); appends its descriptor to EP__LAYER_DESCS and its diff_id to
# EP__DIFF_IDS.
ep__mklayer() {
  local layout=$1 kind=$2 size=$3 work diff mt root names
  work=$(mktemp -d "$layout/work.XXXXXX")
  if [ "$kind" = gzipdir ]; then
    root=$size
    kind=gzip
    mapfile -t names < <(cd "$root" && ls -A)
  else
    root=$work/root
    names=(data)
    mkdir -p "$root/data"
    if [ "$kind" = gzfiles ]; then
      head -c "$((${size%x*} * $(numfmt --from=iec "${size#*x}")))" /dev/urandom |
        split -b "${size#*x}" -d -a 6 - "$root/data/f"
      kind=gzip
    else
      head -c "$size" /dev/urandom >"$root/data/blob-$RANDOM$RANDOM.bin"
    fi
  fi
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=gnu \
    -C "$root" -cf "$work/layer.tar" -- "${names[@]}"
  diff=sha256:$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
  case $kind in
  gzip)
    gzip -n -1 -c "$work/layer.tar" >"$work/layer.tgz"
    ep__blob_put "$layout" "$work/layer.tgz"
    mt=$EP_MT_GZIP
    ;;
  tar)
    ep__blob_put "$layout" "$work/layer.tar"
    mt=$EP_MT_TAR
    ;;
  *) ep_die "layer kind must be gzip or tar, not '$kind'" ;;
  esac
  rm -rf "$work"
  EP__DIFF_IDS+=("$diff")
  EP__LAYER_DESCS+=("$(jq -cn --arg mt "$mt" --arg d "$EP__DIGEST" --argjson s "$EP__SIZE" \
    '{mediaType: $mt, digest: $d, size: $s}')")
  EP_IMG_LAYERS+=("$EP__DIGEST")
}

# ep__mkmanifest LAYOUT ARCH SPEC...: layers, config and manifest blobs;
# sets EP__DIGEST/EP__SIZE to the manifest's.
ep__mkmanifest() {
  local layout=$1 arch=$2 spec tmp cfg_d cfg_s
  shift 2
  EP__DIFF_IDS=()
  EP__LAYER_DESCS=()
  for spec in "$@"; do
    ep__mklayer "$layout" "${spec%%:*}" "${spec#*:}"
  done
  tmp=$(mktemp "$layout/cfg.XXXXXX")
  printf '%s\n' "${EP__DIFF_IDS[@]}" | jq -cRn --arg arch "$arch" \
    '{architecture: $arch, os: "linux",
      config: {Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
      created: "1970-01-01T00:00:00Z",
      rootfs: {type: "layers", diff_ids: [inputs]}}' |
    tr -d '\n' >"$tmp"
  ep__blob_put "$layout" "$tmp"
  cfg_d=$EP__DIGEST
  cfg_s=$EP__SIZE
  tmp=$(mktemp "$layout/man.XXXXXX")
  printf '%s\n' "${EP__LAYER_DESCS[@]}" | jq -cn --arg cmt "$EP_MT_CONFIG" \
    --arg mt "$EP_MT_MANIFEST" --arg cd "$cfg_d" --argjson cs "$cfg_s" \
    '{schemaVersion: 2, mediaType: $mt,
      config: {mediaType: $cmt, digest: $cd, size: $cs}, layers: [inputs]}' |
    tr -d '\n' >"$tmp"
  ep__blob_put "$layout" "$tmp"
}

# ep__layout_tag LAYOUT TAG MEDIATYPE DIGEST SIZE: point TAG at a descriptor.
ep__layout_tag() {
  local tmp
  tmp=$(mktemp "$1/idx.XXXXXX")
  jq -c --arg tag "$2" --arg mt "$3" --arg d "$4" --argjson s "$5" \
    '.manifests |= (map(select(.annotations["org.opencontainers.image.ref.name"] != $tag))
       + [{mediaType: $mt, digest: $d, size: $s,
           annotations: {"org.opencontainers.image.ref.name": $tag}}])' \
    "$1/index.json" >"$tmp"
  mv -f "$tmp" "$1/index.json"
}

# ep_mkimage LAYOUT TAG ARCH SPEC...: a single-platform OCI image.
ep_mkimage() {
  local layout=$1 tag=$2 arch=$3
  shift 3
  ep__layout_init "$layout"
  EP_IMG_LAYERS=()
  ep__mkmanifest "$layout" "$arch" "$@"
  EP_IMG_DIGEST=$EP__DIGEST
  EP_IMG_SIZE=$EP__SIZE
  EP_IMG_MEDIATYPE=$EP_MT_MANIFEST
  ep__layout_tag "$layout" "$tag" "$EP_MT_MANIFEST" "$EP_IMG_DIGEST" "$EP_IMG_SIZE"
}

# ep_mkimage_runnable LAYOUT TAG ARCH MARKER SPEC...: a single-platform image
# that runs: busybox (/bin/sh, cat, ls, wc) as its first layer, then the
# random layers of the SPECs (each one file in /data), and last a small layer
# with /marker.txt holding MARKER. Needs busybox-static (/bin/busybox) of
# this machine's architecture.
ep_mkimage_runnable() {
  local layout=$1 tag=$2 arch=$3 marker=$4 w t
  shift 4
  [ -x /bin/busybox ] || ep_die "ep_mkimage_runnable needs busybox-static"
  ep__layout_init "$layout"
  w=$(mktemp -d "$layout/rootfs.XXXXXX")
  mkdir -p "$w/bb/bin" "$w/mk"
  chmod 755 "$w/bb" "$w/bb/bin" "$w/mk"
  cp /bin/busybox "$w/bb/bin/busybox"
  for t in sh cat ls wc; do ln -s busybox "$w/bb/bin/$t"; done
  printf '%s\n' "$marker" >"$w/mk/marker.txt"
  chmod 644 "$w/mk/marker.txt"
  ep_mkimage "$layout" "$tag" "$arch" "gzipdir:$w/bb" "$@" "gzipdir:$w/mk"
  rm -rf "$w"
}

# ep_mkimage_index LAYOUT TAG SPEC...: an OCI image index for linux/amd64 and
# linux/arm64, each platform with its own random layers of the given specs.
ep_mkimage_index() {
  local layout=$1 tag=$2 arch descs=() tmp
  shift 2
  ep__layout_init "$layout"
  EP_IMG_LAYERS=()
  for arch in amd64 arm64; do
    ep__mkmanifest "$layout" "$arch" "$@"
    descs+=("$(jq -cn --arg mt "$EP_MT_MANIFEST" --arg d "$EP__DIGEST" \
      --argjson s "$EP__SIZE" --arg arch "$arch" \
      '{mediaType: $mt, digest: $d, size: $s, platform: {architecture: $arch, os: "linux"}}')")
  done
  tmp=$(mktemp "$layout/index.XXXXXX")
  printf '%s\n' "${descs[@]}" | jq -cn --arg mt "$EP_MT_INDEX" \
    '{schemaVersion: 2, mediaType: $mt, manifests: [inputs]}' | tr -d '\n' >"$tmp"
  ep__blob_put "$layout" "$tmp"
  EP_IMG_DIGEST=$EP__DIGEST
  EP_IMG_SIZE=$EP__SIZE
  EP_IMG_MEDIATYPE=$EP_MT_INDEX
  ep__layout_tag "$layout" "$tag" "$EP_MT_INDEX" "$EP_IMG_DIGEST" "$EP_IMG_SIZE"
}

# ep_push_image LAYOUT TAG REPO [OPTIONS...]: skopeo copy into the test
# registry (e.g. OPTIONS = --all --format v2s2 for a Docker manifest list).
# Sets EP_PUSHED_DIGEST (what the registry answers for REPO:TAG) and
# EP_PUSHED_BLOBS (all config and layer digests, every platform; also split
# into EP_PUSHED_LAYERS and EP_PUSHED_CONFIGS). Without
# OPTIONS the image is pushed as built (--preserve-digests: skopeo would
# otherwise gzip the uncompressed layers and so change the manifest).
ep_push_image() {
  local layout=$1 tag=$2 repo=$3
  shift 3
  [ $# -gt 0 ] || set -- --preserve-digests
  ep_ns timeout -k 5 300 skopeo --tmpdir "$EP_TMP" copy --quiet --dest-tls-verify=false \
    "$@" "oci:$layout:$tag" "docker://$REGISTRY_HOST/$repo:$tag" >&2 ||
    ep_die "skopeo copy of $layout:$tag to $REGISTRY_HOST/$repo failed"
  EP_PUSHED_DIGEST=$(ep_registry_digest "$repo" "$tag")
  export EP_PUSHED_DIGEST
  [ -n "$EP_PUSHED_DIGEST" ] || ep_die "registry has no digest for $repo:$tag"
  local all
  all=$(ep_registry_blobs "$repo" "$tag" | sort -u)
  mapfile -t EP_PUSHED_BLOBS < <(awk '{ print $2 }' <<<"$all" | sort -u)
  mapfile -t EP_PUSHED_LAYERS < <(awk '$1 == "layer" { print $2 }' <<<"$all")
  mapfile -t EP_PUSHED_CONFIGS < <(awk '$1 == "config" { print $2 }' <<<"$all")
  ep_log "pushed $REGISTRY_HOST/$repo:$tag = $EP_PUSHED_DIGEST (${#EP_PUSHED_BLOBS[@]} blobs)"
}
