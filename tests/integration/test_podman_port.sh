#!/usr/bin/env bash
# podman and skopeo pull through edgepulld from a registry on a non-default
# port (issue 14, point 2).
#
# registries.conf cannot name such a registry in a mirror location the old
# way ("127.0.0.1:5050/127.0.0.1:15000": a path component cannot hold ':',
# podman and skopeo answer "invalid reference format"). The encoding is
# HOST_PORT ("127.0.0.1:5050/127.0.0.1_15000"): `edgepullctl setup podman
# --registry 127.0.0.1:15000` writes it, edgepulld reads it back as
# 127.0.0.1:15000, and that registry must be in edgepulld's allowlist.
# Shown, with a docker-registry on a random port and the drop-in in a
# private /etc/containers:
#  - the old form is refused by skopeo (why the encoding exists);
#  - setup writes the HOST_PORT location;
#  - skopeo copies and podman pulls the image by its own name, served by
#    edgepulld (the registry is plain http and not marked insecure, so the
#    tools' own fallback to it cannot succeed), each blob fetched once;
#  - a HOST_PORT of a registry outside the allowlist is refused (403);
#  - --undo removes the drop-in.
# shellcheck source=../lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source=../lib/mkimage.sh
. "$EP_SOURCE_DIR/tests/lib/mkimage.sh"

ep_init test_podman_port 300
ep_require_root
ep_require_cmd docker-registry skopeo podman jq curl unshare
ctl=$EP_BUILD_DIR/ctl/edgepullctl

ep_start_registry
layout=$(ep_tmpdir layout)
ep_mkimage "$layout" v1 amd64 gzip:1M gzip:256K
ep_push_image "$layout" v1 edge/app --format v2s2
app_digest=$EP_PUSHED_DIGEST
app_blobs=("${EP_PUSHED_BLOBS[@]}")
ep_start_edgepulld --registry "$REGISTRY_HOST=$REGISTRY_URL"
mirror=127.0.0.1:$EP_PORT
encoded=${REGISTRY_HOST%:*}_$REGISTRY_PORT

root=$(ep_tmpdir root)
mkdir -p "$root/etc/containers" "$EP_TMP/home"
echo '{"default": [{"type": "insecureAcceptAnything"}]}' >"$root/etc/containers/policy.json"
printf 'unqualified-search-registries = ["docker.io"]\n' >"$root/etc/containers/registries.conf"
# The tools read /etc/containers; give them ours in a private mount namespace.
in_root() {
  # shellcheck disable=SC2016 # expanded by the inner sh
  HOME=$EP_TMP/home unshare -m sh -c 'mount --bind "$0/etc/containers" /etc/containers && shift && exec "$@"' \
    "$root" -- "$@"
}
skopeo_copy() { # SRC DEST
  in_root timeout -k 5 120 skopeo --tmpdir "$EP_TMP" copy --quiet "$@" >>"$EP_TMP/tools.log" 2>&1
}
EP_LOGS+=("$EP_TMP/tools.log")

# --- the old form: what podman and skopeo refuse ---------------------------------
mkdir -p "$root/etc/containers/registries.conf.d"
cat >"$root/etc/containers/registries.conf.d/50-old.conf" <<EOF
[[registry]]
prefix = "$REGISTRY_HOST"
location = "$REGISTRY_HOST"

[[registry.mirror]]
location = "$mirror/$REGISTRY_HOST"
insecure = true
EOF
out=$(ep_tmpdir copy)
ep_assert_not "the old host:port mirror location fails" skopeo_copy "docker://$REGISTRY_HOST/edge/app:v1" "dir:$out"
ep_assert "... with \"invalid reference format\"" grep -q "invalid reference format" "$EP_TMP/tools.log"
rm -rf "$root/etc/containers/registries.conf.d"

# --- setup writes HOST_PORT ----------------------------------------------------------
ep_assert "setup podman --registry $REGISTRY_HOST succeeds" \
  sh -c "'$ctl' setup podman --registry '$REGISTRY_HOST' --mirror '$mirror' --root '$root' >'$EP_TMP/setup.out' 2>&1"
cat "$EP_TMP/setup.out"
dropin=$root/etc/containers/registries.conf.d/50-edgepull.conf
ep_assert "the drop-in mirrors $REGISTRY_HOST at $mirror/$encoded" \
  grep -qx "location = \"$mirror/$encoded\"" "$dropin"
ep_assert "... and keeps the registry's own name as prefix" grep -qx "prefix = \"$REGISTRY_HOST\"" "$dropin"

# --- skopeo and podman pull through edgepulld ------------------------------------------
out=$(ep_tmpdir copy)
ep_assert "skopeo copies $REGISTRY_HOST/edge/app:v1 (through the mirror)" \
  skopeo_copy "docker://$REGISTRY_HOST/edge/app:v1" "dir:$out"
ep_assert_eq "$app_digest" "$(ep_sha256 "$out/manifest.json")" "skopeo: the manifest is the registry's"
for d in "${app_blobs[@]}"; do
  ep_assert_eq "$d" "$(ep_sha256 "$out/${d#sha256:}")" "skopeo: blob ${d:0:19} verifies"
done
ep_assert_stored "${app_blobs[@]}"
pd=$(mktemp -d /tmp/eppm.XXXXXX) # podman wants a runroot under 50 characters
ep_cleanup_push "rm -rf --one-file-system $pd"
ep_assert "podman pulls $REGISTRY_HOST/edge/app:v1 (through the mirror)" \
  in_root timeout -k 5 120 podman --root "$pd/root" --runroot "$pd/run" --storage-driver vfs \
  pull -q "$REGISTRY_HOST/edge/app:v1"
ep_assert_eq "$app_digest" \
  "$(in_root podman --root "$pd/root" --runroot "$pd/run" --storage-driver vfs \
    image inspect --format '{{.Digest}}' "$REGISTRY_HOST/edge/app:v1" 2>>"$EP_TMP/tools.log")" \
  "podman: the image has the registry's digest"
# Both tools went through edgepulld: the registry served each blob once.
ep_assert_gets 1 "${app_blobs[@]}"

out=$(ep_tmpdir copy)
ep_assert "skopeo copies from the mirror location itself" \
  skopeo_copy --src-tls-verify=false "docker://$mirror/$encoded/edge/app@$app_digest" "dir:$out"

# --- the allowlist holds for the encoded host ---------------------------------------------
other=$(ep_free_port)
b=$EP_TMP/denied.json
ep_assert_eq 403 "$(ep_http "$b" "$EP_URL/v2/${REGISTRY_HOST%:*}_$other/edge/app/manifests/v1")" \
  "an encoded registry outside the allowlist is refused"
ep_assert_eq DENIED "$(jq -r '.errors[0].code' "$b")" "... with DENIED"

ep_assert "setup podman --undo succeeds" "$ctl" setup podman --undo --root "$root"
ep_assert_not "--undo removes the drop-in" test -e "$dropin"
ep_stop_edgepulld
ep_finish
