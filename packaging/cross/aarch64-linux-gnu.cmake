# Cross build for Debian / Raspberry Pi OS arm64 (Pi 3, 4, 5 and Zero 2 W in
# 64-bit mode) from a Debian amd64 host (`scripts/deps cross` installs what it
# needs). See packaging/README.md and docs/arm.md.
#   cmake -S . -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=packaging/cross/aarch64-linux-gnu.cmake
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
# Multiarch: the target's libraries are installed as <pkg>:arm64 in /usr.
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
# ctest runs the unit tests under qemu user emulation. The multiarch libc6:arm64
# provides /lib/ld-linux-aarch64.so.1 and /lib/aarch64-linux-gnu, so no -L.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64-static)
set(EDGEPULL_DEB_ARCH arm64 CACHE STRING "Debian architecture of the package")
