#!/usr/bin/env bash
# edgepull's own objects built for ARMv6 (Pi Zero, Zero W, Pi 1) with
# Debian's armhf cross compiler and EDGEPULL_ARCH_FLAGS (issue 13; run by
# scripts/test's cross step):
#   EP_ARMV6_BUILD=build-armv6 bash tests/cross/armv6.sh
# Builds the coordinator and the store (the 8-byte atomics of
# coordinator/mqtt.c, the time shim store/time_abi.c), then checks with
# readelf -A that every object says Tag_CPU_arch: v6 and no Thumb-2, and
# that CMake linked libatomic (ARMv6 has no 64-bit exclusive loads). The
# linked binary still says v7: Debian's crt1.o, crti.o, crtbegin.o and
# libgcc are ARMv7 code; a true ARMv6 build takes them from a Raspberry Pi
# OS root (packaging/rpi-armv6-build, docs/arm.md).
set -euo pipefail
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
b=${EP_ARMV6_BUILD:-$src/build-armv6}
flags="-march=armv6+fp -mfpu=vfp -mfloat-abi=hard -marm"
pass=0 fail=0
ok() { echo "PASS: $*"; pass=$((pass + 1)); }
ko() { echo "FAIL: $*" >&2; fail=$((fail + 1)); }

cmake -S "$src" -B "$b" -DCMAKE_TOOLCHAIN_FILE="$src/packaging/cross/arm-linux-gnueabihf.cmake" \
  -DCMAKE_BUILD_TYPE=Release -DEDGEPULL_TESTS=OFF -DEDGEPULL_WERROR=ON \
  -DEDGEPULL_ARCH_FLAGS="$flags" >"$b.configure.log" 2>&1 || {
  cat "$b.configure.log" >&2
  exit 1
}
cmake --build "$b" -j"${EP_JOBS:-2}" --target edgepull-coordinator ep_store >"$b.build.log" 2>&1 || {
  grep -E -A5 'error' "$b.build.log" | head -n 40 >&2
  exit 1
}

cache=$(cat "$b/CMakeCache.txt")
if grep -q '^EDGEPULL_ATOMIC8_LIBATOMIC:INTERNAL=1' <<<"$cache" &&
  ! grep -q '^EDGEPULL_ATOMIC8_BUILTIN:INTERNAL=1' <<<"$cache"; then
  ok "8-byte atomics need libatomic on ARMv6, and CMake links it"
else
  ko "EDGEPULL_ATOMIC8_*: $(grep '^EDGEPULL_ATOMIC8' <<<"$cache" | tr '\n' ' ')"
fi

mapfile -t objs < <(find "$b" -name '*.c.o' -path '*CMakeFiles*' ! -path '*CMakeScratch*' | sort)
bad=()
for o in "${objs[@]}"; do
  a=$(readelf -A "$o")
  grep -qE 'Tag_CPU_arch: v6$' <<<"$a" && ! grep -q 'Thumb-2' <<<"$a" ||
    bad+=("${o#"$b"/}: $(grep -E 'Tag_CPU_arch:|Tag_THUMB_ISA_use' <<<"$a" | tr -s ' \n' ' ')")
done
if [ "${#objs[@]}" -ge 20 ] && [ "${#bad[@]}" -eq 0 ]; then
  ok "readelf -A: all ${#objs[@]} objects say Tag_CPU_arch: v6, no Thumb-2"
else
  ko "readelf -A: ${#bad[@]} of ${#objs[@]} objects not ARMv6"
  printf '  %s\n' "${bad[@]}" >&2
fi
tags=$(readelf -A "$b/store/CMakeFiles/ep_store.dir/time_abi.c.o" | grep -E 'Tag_CPU_arch:|Tag_THUMB_ISA_use|Tag_ABI_VFP_args' | tr -s ' \n' ' ')
echo "  e.g. store/time_abi.c.o:$tags"

bin=$b/coordinator/edgepull-coordinator
if readelf -d "$bin" | grep -q 'Shared library: \[libatomic.so.1\]'; then
  ok "edgepull-coordinator needs libatomic.so.1"
else
  ko "edgepull-coordinator does not link libatomic"
fi
echo "  the linked binary (Debian's ARMv7 crt and libgcc inside):$(readelf -A "$bin" |
  grep -E 'Tag_CPU_arch:|Tag_THUMB_ISA_use' | tr -s ' \n' ' ')"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
