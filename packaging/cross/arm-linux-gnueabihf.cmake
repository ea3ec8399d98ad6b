# Cross build for Debian armhf: ARMv7-A, VFPv3-D16, Thumb-2 (Pi 2, 3, 4 on a
# Debian armhf or Raspberry Pi OS 32-bit system). For ARMv6 boards (Pi Zero,
# Pi 1) see packaging/rpi-armv6-build and docs/arm.md: Debian's armhf
# libraries, crt files and libgcc are ARMv7 code and die with SIGILL there.
#   cmake -S . -B build-armhf -DCMAKE_TOOLCHAIN_FILE=packaging/cross/arm-linux-gnueabihf.cmake
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR armv7l)
set(CMAKE_C_COMPILER arm-linux-gnueabihf-gcc)
set(CMAKE_LIBRARY_ARCHITECTURE arm-linux-gnueabihf)
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/arm-linux-gnueabihf/pkgconfig:/usr/share/pkgconfig")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
# ctest runs the unit tests under qemu user emulation (libc6:armhf provides
# /lib/ld-linux-armhf.so.3 and /lib/arm-linux-gnueabihf).
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-arm-static)
set(EDGEPULL_DEB_ARCH armhf CACHE STRING "Debian architecture of the package")
