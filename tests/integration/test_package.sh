#!/usr/bin/env bash
# test_package: builds edgepull's .deb with CPack from a fresh release build of
# the source tree, checks its metadata and contents, runs the packaged
# binaries, verifies the systemd units, and then installs, upgrades, removes
# and purges it with the real dpkg and maintainer scripts -- inside a private
# mount namespace whose /etc, /usr and /var are throw-away overlays and whose
# /run is empty (no systemd). The host's package database, users and files are
# never touched.
#
# ctest passes EP_SOURCE_DIR (and EP_BUILD_DIR, unused: the package is built
# from its own release tree, without sanitizers). EP_PKG_KEEP=1 keeps the
# work directory for inspection.
#
# Foreign architectures (scripts/test's cross step): EP_PKG_DEB=path/to.deb
# checks a package built by scripts/package instead of building one, and
# EP_EMULATOR=qemu-arm-static (or qemu-aarch64-static) runs its binaries.
# dpkg installs it in the namespace as a foreign architecture, which needs
# `dpkg --add-architecture` (scripts/deps cross) and the target's libraries
# (multiarch, also from scripts/deps cross).
set -u

SRC=${EP_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
# The executables the package must ship; edgepull-coordinator joins here.
EP_BINARIES="edgepulld edgepullctl edgepull-coordinator"
EP_UNITS="edgepulld.service edgepulld.socket edgepulld-peer.socket edgepulld-snapshotter.socket edgepull-coordinator.service"
EMU=()
[ -z "${EP_EMULATOR:-}" ] || EMU=("$EP_EMULATOR")

pass=0
fail=0
ok() {
  pass=$((pass + 1))
  echo "ok - $*"
}
not_ok() {
  fail=$((fail + 1))
  echo "not ok - $*"
}
# check DESCRIPTION COMMAND...: one test per call.
check() {
  local desc=$1
  shift
  if "$@"; then ok "$desc"; else not_ok "$desc"; fi
}
finish() {
  echo "test_package: $pass passed, $fail failed"
  [ "$fail" -eq 0 ]
  exit $?
}

# verify_units ROOT: systemd-analyze verify of the units installed under ROOT
# (/ inside the install namespace, where /usr/bin/edgepulld exists too).
verify_units() {
  local root=$1 log=$WORK/verify.log u units=
  for u in $EP_UNITS; do units="$units $root/lib/systemd/system/$u"; done
  # shellcheck disable=SC2086
  systemd-analyze verify $units >"$log" 2>&1
  local rc=$?
  if [ "$root" != / ]; then
    # Outside the install root the ExecStart binary is not at its final path.
    grep -v 'Command /usr/bin/edgepulld is not executable' "$log" >"$log.f"
    mv "$log.f" "$log"
    rc=0
  fi
  sed 's/^/# /' "$log"
  check "systemd-analyze verify of the packaged units ($root)" \
    sh -c '[ "$1" -eq 0 ] && ! grep -q . "$2"' - "$rc" "$log"
}

# Runs inside `unshare -m`: /etc, /usr and /var become overlays whose changes
# land in $WORK, /run an empty tmpfs (so the maintainer scripts see no
# systemd, as in a container). Prints ok / not ok lines for the parent.
ns_main() {
  local work=$1 deb=$2 d
  WORK=$work
  for d in etc usr var; do
    mkdir -p "$work/ov/$d.upper" "$work/ov/$d.work"
    if ! mount -t overlay overlay -o "lowerdir=/$d,upperdir=$work/ov/$d.upper,workdir=$work/ov/$d.work" "/$d"; then
      not_ok "overlay on /$d"
      return
    fi
  done
  mount -t tmpfs tmpfs /run
  mkdir -p /run/lock

  # dpkg and the scripts on a host that never had edgepull.
  if getent passwd edgepull >/dev/null; then deluser --system edgepull >/dev/null 2>&1; fi
  if getent group edgepull >/dev/null; then delgroup --system edgepull >/dev/null 2>&1; fi
  rm -rf /var/lib/edgepull /etc/edgepull
  dpkg --purge edgepull >/dev/null 2>&1

  check "dpkg -i installs the package" dpkg -i "$deb"
  check "dpkg -s: install ok installed" \
    sh -c "dpkg-query -W -f='\${Status}' edgepull | grep -qx 'install ok installed'"
  for bin in $EP_BINARIES; do
    check "/usr/bin/$bin installed" test -x "/usr/bin/$bin"
  done
  check "installed edgepulld --version runs" "${EMU[@]}" /usr/bin/edgepulld --version
  check "postinst created system user edgepull" \
    sh -c 'u=$(getent passwd edgepull) && [ "$(echo "$u" | cut -d: -f3)" -lt 1000 ] &&
      [ "$(echo "$u" | cut -d: -f6)" = /var/lib/edgepull ]'
  check "postinst created group edgepull" sh -c "getent group edgepull >/dev/null"
  check "/var/lib/edgepull is edgepull:edgepull 0750" \
    test "$(stat -c '%U:%G %a' /var/lib/edgepull)" = "edgepull:edgepull 750"
  check "/etc/edgepull is root:edgepull 0750" \
    test "$(stat -c '%U:%G %a' /etc/edgepull)" = "root:edgepull 750"
  check "conffile installed" test -f /etc/edgepull/edgepulld.conf
  check "coordinator defaults installed" test -f /etc/default/edgepull-coordinator
  if command -v deb-systemd-helper >/dev/null 2>&1; then
    check "edgepulld.socket enabled (sockets.target.wants)" \
      test -L /etc/systemd/system/sockets.target.wants/edgepulld.socket
    check "edgepulld.service enabled (multi-user.target.wants)" \
      test -L /etc/systemd/system/multi-user.target.wants/edgepulld.service
    check "edgepulld-peer.socket not enabled" \
      test ! -e /etc/systemd/system/sockets.target.wants/edgepulld-peer.socket
    check "edgepulld-snapshotter.socket not enabled" \
      test ! -e /etc/systemd/system/sockets.target.wants/edgepulld-snapshotter.socket
    check "edgepull-coordinator.service not enabled" \
      test ! -e /etc/systemd/system/multi-user.target.wants/edgepull-coordinator.service
  fi
  if command -v systemd-analyze >/dev/null 2>&1; then verify_units /; fi

  # Reinstall = upgrade path (postinst configure with the old version); an
  # admin's edit of the conffile survives it, and so does the state.
  echo '; local edit' >>/etc/edgepull/edgepulld.conf
  touch /var/lib/edgepull/keep
  check "dpkg -i again (upgrade) succeeds" dpkg -i --force-confold "$deb"
  check "conffile edit kept across upgrade" grep -qx '; local edit' /etc/edgepull/edgepulld.conf
  check "state kept across upgrade" test -e /var/lib/edgepull/keep

  check "dpkg -r removes the package" dpkg -r edgepull
  check "binaries gone after remove" test ! -e /usr/bin/edgepulld
  check "units gone after remove" test ! -e /lib/systemd/system/edgepulld.service
  check "conffile kept after remove" test -f /etc/edgepull/edgepulld.conf
  check "user kept after remove" sh -c "getent passwd edgepull >/dev/null"
  check "state kept after remove" test -e /var/lib/edgepull/keep

  check "dpkg --purge purges the package" dpkg --purge edgepull
  check "conffile gone after purge" test ! -e /etc/edgepull/edgepulld.conf
  check "coordinator defaults gone after purge" test ! -e /etc/default/edgepull-coordinator
  check "/etc/edgepull gone after purge" test ! -e /etc/edgepull
  check "state gone after purge" test ! -e /var/lib/edgepull
  check "user gone after purge" sh -c '! getent passwd edgepull'
  check "group gone after purge" sh -c '! getent group edgepull'
  check "no enablement symlinks left after purge" \
    sh -c '! ls /etc/systemd/system/*.wants/edgepulld* 2>/dev/null | grep -q .'
  check "dpkg forgot the package" sh -c '! dpkg-query -W edgepull 2>/dev/null'
  echo "# install run complete"
}
if [ "${1:-}" = --in-namespace ]; then
  shift
  ns_main "$@"
  exit 0
fi

for tool in cmake cpack dpkg dpkg-deb dpkg-shlibdeps curl; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "test_package: $tool is missing (apt-get install cmake dpkg-dev)" >&2
    not_ok "tool $tool available"
    finish
  fi
done

# Under /tmp, never under /etc, /usr or /var, which get overlaid below.
WORK=$(mktemp -d /tmp/ep-test-package.XXXXXX)
cleanup() {
  if [ "${EP_PKG_KEEP:-0}" = 1 ]; then
    echo "# kept $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

# --- build --------------------------------------------------------------------
if [ -n "${EP_PKG_DEB:-}" ]; then
  DEB=$EP_PKG_DEB
  check "given package $DEB exists" test -f "$DEB"
  [ -f "$DEB" ] || finish
else
  B=$WORK/build
  echo "# building a release tree of $SRC in $B"
  if cmake -S "$SRC" -B "$B" -DCMAKE_BUILD_TYPE=Release -DEDGEPULL_TESTS=OFF \
    -DEDGEPULL_SANITIZE=OFF -DEDGEPULL_WERROR=OFF >"$WORK/configure.log" 2>&1; then
    ok "cmake configure"
  else
    tail -n 30 "$WORK/configure.log"
    not_ok "cmake configure"
    finish
  fi
  if cmake --build "$B" -j2 >"$WORK/build.log" 2>&1; then
    ok "cmake build"
  else
    grep -E 'error|Error' "$WORK/build.log" | head -n 30
    not_ok "cmake build"
    finish
  fi
  if (cd "$B" && cpack -G DEB) >"$WORK/cpack.log" 2>&1; then
    ok "cpack -G DEB"
  else
    tail -n 30 "$WORK/cpack.log"
    not_ok "cpack -G DEB"
    finish
  fi
  DEB=$(ls "$B"/edgepull_*.deb 2>/dev/null | head -n 1)
  if [ -z "$DEB" ]; then
    ls "$B"
    not_ok "cpack produced edgepull_*.deb"
    finish
  fi
  ok "cpack produced $(basename "$DEB")"
  # scripts/test's cross step runs lintian on it (no second Release build).
  if [ -n "${EP_BUILD_DIR:-}" ] && [ -d "$EP_BUILD_DIR" ]; then
    mkdir -p "$EP_BUILD_DIR/packages" && cp "$DEB" "$EP_BUILD_DIR/packages/"
  fi
fi

# --- metadata -----------------------------------------------------------------
field() { dpkg-deb -f "$DEB" "$1"; }
arch=${EP_PKG_ARCH:-$(dpkg --print-architecture)}
version=$(field Version)
upstream_version=${version%-*}
depends=$(field Depends)
echo "# Version: $version  Architecture: $(field Architecture)"
echo "# Depends: $depends"
check "Package is edgepull" test "$(field Package)" = edgepull
check "Architecture is $arch" test "$(field Architecture)" = "$arch"
check "Version is <upstream>-<release>" test "$upstream_version" != "$version"
case "$(basename "$DEB")" in
edgepull_"${version}"_"${arch}".deb) ok "file name follows Debian's name_version_arch.deb" ;;
*) not_ok "file name $(basename "$DEB") is not edgepull_${version}_${arch}.deb" ;;
esac
has_dep() { # NAME-REGEX: a Depends entry starts with it
  printf '%s\n' "$depends" | tr ',|' '\n\n' | sed 's/^ *//' | grep -Eq "^($1)( |$)"
}
check "Depends on adduser (maintainer scripts)" has_dep 'adduser'
check "Depends from shlibdeps: libc6" has_dep 'libc6'
check "Depends from shlibdeps: libcurl" has_dep 'libcurl[0-9]+(-gnutls|-openssl)?'
check "Depends from shlibdeps: libsqlite3" has_dep 'libsqlite3-0'
check "Depends from shlibdeps: libmicrohttpd" has_dep 'libmicrohttpd[0-9]+'
# systemd's notify/watchdog/socket protocol is common/sd_proto.c's (issue 14
# point 6: libsystemd and what it loads cost 0.7 MiB of every edgepulld).
no_dep() { ! has_dep "$1"; }
check "no libsystemd in Depends (edgepulld speaks sd_notify itself)" no_dep 'libsystemd0'

CTRL=$WORK/control
dpkg-deb -e "$DEB" "$CTRL"
check "conffiles lists /etc/edgepull/edgepulld.conf" \
  grep -qx /etc/edgepull/edgepulld.conf "$CTRL/conffiles"
check "conffiles lists /etc/default/edgepull-coordinator" \
  grep -qx /etc/default/edgepull-coordinator "$CTRL/conffiles"
check "maintainer scripts call systemctl only for daemon-reload" \
  sh -c '! grep -hE "(^|[;&|] *)systemctl " "$1"/postinst "$1"/prerm "$1"/postrm | grep -v daemon-reload' - "$CTRL"
for s in postinst prerm postrm; do
  check "maintainer script $s is executable" test -x "$CTRL/$s"
  check "maintainer script $s parses (sh -n)" sh -n "$CTRL/$s"
done

# --- contents -----------------------------------------------------------------
dpkg-deb -c "$DEB" >"$WORK/contents"
in_deb() { awk '{print $6}' "$WORK/contents" | grep -qx "./$1"; }
for bin in $EP_BINARIES; do
  check "ships /usr/bin/$bin" in_deb "usr/bin/$bin"
  check "/usr/bin/$bin is mode 0755" \
    grep -Eq "^-rwxr-xr-x root/root .* \./usr/bin/$bin\$" "$WORK/contents"
done
for unit in $EP_UNITS; do
  check "ships /lib/systemd/system/$unit" in_deb "lib/systemd/system/$unit"
done
check "ships /etc/edgepull/edgepulld.conf" in_deb etc/edgepull/edgepulld.conf
check "ships /etc/default/edgepull-coordinator" in_deb etc/default/edgepull-coordinator
check "ships man pages" sh -c 'for m in man8/edgepulld.8 man8/edgepull-coordinator.8 man1/edgepullctl.1; do
  awk "{print \$6}" "$1" | grep -qx "./usr/share/man/$m.gz" || exit 1; done' - "$WORK/contents"
for bin in $EP_BINARIES; do
  check "ships bash completion for $bin" in_deb "usr/share/bash-completion/completions/$bin"
done
for doc in copyright changelog.Debian.gz coordinator.md runtime-integration.md README.packaging.md \
  examples/systemd/edgepulld.service.d/docker.conf \
  examples/containerd/certs.d/_default/hosts.toml examples/docker/daemon.json \
  examples/podman/registries.conf; do
  check "ships /usr/share/doc/edgepull/$doc" in_deb "usr/share/doc/edgepull/$doc"
done
check "every file is owned by root/root" \
  sh -c "! awk '{print \$2}' '$WORK/contents' | grep -vqx root/root"
check "nothing outside /usr, /lib, /etc" \
  sh -c "! awk '{print \$6}' '$WORK/contents' | grep -Ev '^\./(\$|usr/|lib/|etc/)' | grep -q ."
check "nothing under /usr/local" sh -c "! grep -q '\./usr/local' '$WORK/contents'"

# --- the extracted binaries run -------------------------------------------------
X=$WORK/root
dpkg-deb -x "$DEB" "$X"
# libarchive is dlopen()ed by the unpacker (store/archive_dl.h), so no binary
# links it and dpkg-shlibdeps cannot add it: Depends must name it.
check "Depends on libarchive13, which edgepulld loads to unpack layers" has_dep 'libarchive13'
for bin in $EP_BINARIES; do
  if [ -x "$X/usr/bin/$bin" ] && [ ${#EMU[@]} -eq 0 ]; then
    check "$bin: every shared library resolves" \
      sh -c "! ldd '$X/usr/bin/$bin' | grep -q 'not found'"
  fi
done
out=$("${EMU[@]}" "$X/usr/bin/edgepulld" --version 2>&1)
rc=$?
echo "# edgepulld --version: $out"
check "edgepulld --version exits 0" test "$rc" -eq 0
check "edgepulld --version prints $upstream_version" \
  sh -c "printf '%s' \"\$1\" | grep -qF '$upstream_version'" - "$out"
"${EMU[@]}" "$X/usr/bin/edgepulld" --help >"$WORK/edgepulld.help" 2>&1
check "edgepulld --help exits 0" test $? -eq 0
check "edgepulld --help documents --config" grep -q -- --config "$WORK/edgepulld.help"
"${EMU[@]}" "$X/usr/bin/edgepullctl" --help >"$WORK/edgepullctl.help" 2>&1
rc=$?
check "edgepullctl --help exits 0" test "$rc" -eq 0
check "edgepullctl --help lists its commands" grep -q layers "$WORK/edgepullctl.help"
# The packaged daemon starts with the shipped config (on a free loopback port
# and a scratch state dir), answers GET /v2/ and stops cleanly on SIGTERM.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' \
    2>/dev/null || echo $((20000 + RANDOM % 20000))
}
# run_daemon NAME CONF [FLAGS...]: sets rc (exit status) and v2 (HTTP status).
run_daemon() {
  local name=$1 conf=$2 port pid
  shift 2
  port=$(free_port)
  mkdir -p "$WORK/state-$name"
  "${EMU[@]}" "$X/usr/bin/edgepulld" --config "$conf" --state-dir "$WORK/state-$name" \
    --listen "127.0.0.1:$port" "$@" >"$WORK/$name.log" 2>&1 &
  pid=$!
  v2=none
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    v2=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v2/" 2>/dev/null) && break
    v2=none
    sleep 0.1
  done
  kill -TERM "$pid" 2>/dev/null
  wait "$pid"
  rc=$?
  sed 's/^/# /' "$WORK/$name.log"
}
run_daemon shipped "$X/etc/edgepull/edgepulld.conf"
check "edgepulld starts with the shipped edgepulld.conf, GET /v2/ is 200" test "$v2" = 200
check "edgepulld exits 0 on SIGTERM" test "$rc" -eq 0
# Every commented-out example in it must be valid too, once uncommented
# (locality networking and the snapshotter socket, whose /run/edgepull the
# socket unit makes, switched off from the command line, which wins).
# The peer TLS example's files are made by the packaged edgepullctl, as the
# conf's comment tells the operator to.
echo secret >"$WORK/pw"
chmod 0600 "$WORK/pw"
: >"$WORK/ca.pem"
mkdir -m 0700 "$WORK/pki"
"${EMU[@]}" "$X/usr/bin/edgepullctl" ca init --dir "$WORK/pki" >/dev/null
"${EMU[@]}" "$X/usr/bin/edgepullctl" ca issue node-01 --dir "$WORK/pki" >/dev/null
sed -E 's/^;([a-z-]+ = .*)$/\1/; s/^;(\[registry .*\])$/\1/' \
  "$X/etc/edgepull/edgepulld.conf" |
  sed "s|/etc/edgepull/example.password|$WORK/pw|; s|/etc/edgepull/ca.pem|$WORK/ca.pem|" |
  sed "s|/etc/edgepull/ca.crt|$WORK/pki/ca.crt|; s|/etc/edgepull/node-01|$WORK/pki/node-01|" \
    >"$WORK/full.conf"
run_daemon full "$WORK/full.conf" --peer-listen "" --broker "" --snapshotter-socket ""
check "edgepulld accepts every example of edgepulld.conf uncommented" \
  sh -c '[ "$1" = 200 ] && [ "$2" -eq 0 ]' - "$v2" "$rc"
# Socket activation as the packaged edgepulld.socket does it: a listening fd
# under the unit's FileDescriptorName, the daemon started on first connection.
if command -v systemd-socket-activate >/dev/null 2>&1; then
  fdname=$(sed -n 's/^FileDescriptorName=//p' "$X/lib/systemd/system/edgepulld.socket")
  port=$(free_port)
  mkdir -p "$WORK/state-sa"
  systemd-socket-activate -l "127.0.0.1:$port" --fdname="$fdname" \
    "${EMU[@]}" "$X/usr/bin/edgepulld" --config "$X/etc/edgepull/edgepulld.conf" \
    --state-dir "$WORK/state-sa" >"$WORK/sa.log" 2>&1 &
  pid=$!
  v2=none
  for _ in $(seq 50); do
    v2=$(curl -s -m 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v2/" 2>/dev/null) && break
    v2=none
    sleep 0.1
  done
  kill -TERM "$pid" 2>/dev/null
  wait "$pid"
  rc=$?
  sed 's/^/# /' "$WORK/sa.log"
  check "socket-activated edgepulld (fd named $fdname) answers GET /v2/ 200" test "$v2" = 200
  check "socket-activated edgepulld exits 0 on SIGTERM" test "$rc" -eq 0
else
  echo "# systemd-socket-activate not installed: socket activation not tried"
fi
printf '[edgepulld]\nno-such-key = 1\n' >"$WORK/bad.conf"
run_daemon bad "$WORK/bad.conf"
check "edgepulld rejects an unknown config key with exit 2" test "$rc" -eq 2

# --- systemd units ----------------------------------------------------------------
svc=$X/lib/systemd/system/edgepulld.service
check "service runs the packaged binary with the conffile" \
  grep -qx 'ExecStart=/usr/bin/edgepulld --config /etc/edgepull/edgepulld.conf' "$svc"
check "service is Type=notify as user edgepull" \
  sh -c "grep -qx Type=notify '$svc' && grep -qx User=edgepull '$svc'"
check "local socket is 127.0.0.1:5050 named local" \
  sh -c 'grep -qx ListenStream=127.0.0.1:5050 "$1" && grep -qx FileDescriptorName=local "$1"' \
  - "$X/lib/systemd/system/edgepulld.socket"
for unit in $EP_UNITS; do
  for doc in $(sed -n 's|^Documentation=||p' "$X/lib/systemd/system/$unit" | tr ' ' '\n' | sed -n 's|^file://||p'); do
    check "$unit: Documentation $doc is shipped" test -f "$X$doc"
  done
done
check "coordinator unit reads the shipped /etc/default/edgepull-coordinator" \
  sh -c 'grep -qx "EnvironmentFile=-/etc/default/edgepull-coordinator" "$1" && test -f "$2"' - \
  "$X/lib/systemd/system/edgepull-coordinator.service" "$X/etc/default/edgepull-coordinator"
# The man pages document every option the programs' --help lists.
man_covers() { # BIN MANPAGE [SUBCOMMAND]
  local opts o missing=
  opts=$("${EMU[@]}" "$X/usr/bin/$1" ${3:+"$3"} --help 2>&1 | grep -oE -- '--(\[no-\])?[a-z][a-z0-9-]+' |
    sed 's/\[no-\]//' | sort -u)
  for o in $opts; do
    zcat "$X/usr/share/man/$2.gz" | sed 's/\\-/-/g' | grep -qF -- "$o" || missing="$missing $o"
  done
  [ -z "$missing" ] || echo "# $2 lacks:$missing"
  [ -z "$missing" ]
}
check "edgepulld(8) covers edgepulld --help" man_covers edgepulld man8/edgepulld.8
check "edgepullctl(1) covers edgepullctl --help" man_covers edgepullctl man1/edgepullctl.1
check "edgepullctl(1) covers edgepullctl deploy --help" man_covers edgepullctl man1/edgepullctl.1 deploy
check "edgepull-coordinator(8) covers its --help" \
  man_covers edgepull-coordinator man8/edgepull-coordinator.8
check "peer socket is named peer" \
  grep -qx FileDescriptorName=peer "$X/lib/systemd/system/edgepulld-peer.socket"
check "snapshotter socket is named snapshotter, mode 0600" \
  sh -c 'grep -qx FileDescriptorName=snapshotter "$1" && grep -qx SocketMode=0600 "$1"' \
  - "$X/lib/systemd/system/edgepulld-snapshotter.socket"

# --- dpkg install / upgrade / remove / purge in a throw-away root ------------------
can_overlay() {
  [ "$(id -u)" -eq 0 ] && command -v unshare >/dev/null 2>&1 &&
    unshare -m sh -c "mkdir -p '$WORK/probe.u' '$WORK/probe.w' && mount -t overlay overlay \
      -o lowerdir=/etc,upperdir='$WORK/probe.u',workdir='$WORK/probe.w' /etc" 2>/dev/null
}
if can_overlay; then
  status_before=$(md5sum </var/lib/dpkg/status)
  passwd_before=$(cat /etc/passwd /etc/group | md5sum)
  unshare -m --propagation private bash "$0" --in-namespace "$WORK" "$DEB" \
    >"$WORK/ns.log" 2>&1
  cat "$WORK/ns.log"
  pass=$((pass + $(grep -c '^ok - ' "$WORK/ns.log")))
  fail=$((fail + $(grep -c '^not ok - ' "$WORK/ns.log")))
  check "install run completed" grep -q '^# install run complete' "$WORK/ns.log"
  check "host dpkg database untouched" test "$(md5sum </var/lib/dpkg/status)" = "$status_before"
  check "host users and groups untouched" \
    test "$(cat /etc/passwd /etc/group | md5sum)" = "$passwd_before"
else
  echo "# not root, or no overlayfs in a mount namespace: dpkg install not tried"
  if command -v systemd-analyze >/dev/null 2>&1; then verify_units "$X"; fi
fi

finish
