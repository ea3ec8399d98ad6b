# Cross build for Debian armhf: ARMv7-A, VFPv3-D16, Thumb-2 (Pi 2, 3, 4 on a
# Debian armhf system). NOT for Raspberry Pi OS 32-bit on a Pi Zero / Pi 1
# (ARMv6): Debian's armhf libraries and this compiler's libgcc are ARMv7 code
# and die with SIGILL there. Build those natively in Raspberry Pi OS (see
# packaging/README.md, "Raspberry Pi OS armhf, ARMv6").
#   cmake -S . -B build-armhf -DCMAKE_TOOLCHAIN_FILE=packaging/cross/arm-linux-gnueabihf.cmake
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR armv7l)
set(CMAKE_C_COMPILER arm-linux-gnueabihf-gcc)
set(CMAKE_LIBRARY_ARCHITECTURE arm-linux-gnueabihf)
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/arm-linux-gnueabihf/pkgconfig:/usr/share/pkgconfig")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(EDGEPULL_DEB_ARCH armhf CACHE STRING "Debian architecture of the package")
