# Debian package of edgepull, built with `cpack -G DEB` from a build tree.
# Included at the end of the top CMakeLists.txt. The executables bring their
# own install() rules; this file adds the system integration files (systemd
# units, the example config as a conffile, docs) and the CPack settings.
#
# The package architecture is the one the binaries are built for:
# `dpkg --print-architecture` natively, the cross target's Debian name when
# cross-compiling (see packaging/README.md), or -DEDGEPULL_DEB_ARCH=... .

set(EDGEPULL_SYSTEMD_UNITDIR "/lib/systemd/system" CACHE PATH
    "Where the systemd units are installed (relative = under the prefix)")
set(EDGEPULL_CONFDIR "/etc/edgepull" CACHE PATH
    "Where the example edgepulld.conf is installed (relative = under the prefix)")
set(EDGEPULL_DEFAULTDIR "/etc/default" CACHE PATH
    "Where edgepull-coordinator's defaults file is installed (relative = under the prefix)")

# --- files --------------------------------------------------------------------
install(FILES ${CMAKE_CURRENT_LIST_DIR}/systemd/edgepulld.service
              ${CMAKE_CURRENT_LIST_DIR}/systemd/edgepulld.socket
              ${CMAKE_CURRENT_LIST_DIR}/systemd/edgepulld-peer.socket
              ${CMAKE_CURRENT_LIST_DIR}/systemd/edgepulld-snapshotter.socket
              ${CMAKE_CURRENT_LIST_DIR}/systemd/edgepull-coordinator.service
        DESTINATION ${EDGEPULL_SYSTEMD_UNITDIR})
install(FILES ${CMAKE_CURRENT_LIST_DIR}/edgepulld.conf DESTINATION ${EDGEPULL_CONFDIR})
install(FILES ${CMAKE_CURRENT_LIST_DIR}/edgepull-coordinator.default
        DESTINATION ${EDGEPULL_DEFAULTDIR} RENAME edgepull-coordinator)
# Debian's copyright format, pointing at /usr/share/common-licenses/Apache-2.0.
install(FILES ${CMAKE_CURRENT_LIST_DIR}/debian/copyright DESTINATION ${CMAKE_INSTALL_DOCDIR})
foreach(doc ${CMAKE_SOURCE_DIR}/README.md ${CMAKE_SOURCE_DIR}/docs/runtime-integration.md
            ${CMAKE_SOURCE_DIR}/docs/coordinator.md ${CMAKE_SOURCE_DIR}/docs/arm.md
            ${CMAKE_CURRENT_LIST_DIR}/README.md)
  if(EXISTS ${doc})
    get_filename_component(docname ${doc} NAME)
    if(doc STREQUAL "${CMAKE_CURRENT_LIST_DIR}/README.md")
      set(docname README.packaging.md)
    endif()
    install(FILES ${doc} DESTINATION ${CMAKE_INSTALL_DOCDIR} RENAME ${docname})
  endif()
endforeach()
install(DIRECTORY ${CMAKE_SOURCE_DIR}/contrib/ DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)

# Man pages and the changelog are compressed as Debian policy wants them
# (gzip -9n: no name, no timestamp, so the package is reproducible).
find_program(EDGEPULL_GZIP gzip REQUIRED)
set(_ep_gz_dir ${CMAKE_BINARY_DIR}/packaging-gz)
set(_ep_gz_files)
foreach(src man/edgepulld.8 man/edgepull-coordinator.8 man/edgepullctl.1 debian/changelog)
  get_filename_component(name ${src} NAME)
  if(name STREQUAL "changelog")
    set(name changelog.Debian)
  endif()
  add_custom_command(OUTPUT ${_ep_gz_dir}/${name}.gz
                     COMMAND ${CMAKE_COMMAND} -E make_directory ${_ep_gz_dir}
                     COMMAND ${EDGEPULL_GZIP} -9nc ${CMAKE_CURRENT_LIST_DIR}/${src} > ${_ep_gz_dir}/${name}.gz
                     DEPENDS ${CMAKE_CURRENT_LIST_DIR}/${src} VERBATIM)
  list(APPEND _ep_gz_files ${_ep_gz_dir}/${name}.gz)
endforeach()
add_custom_target(edgepull_packaging_gz ALL DEPENDS ${_ep_gz_files})
install(FILES ${_ep_gz_dir}/edgepulld.8.gz ${_ep_gz_dir}/edgepull-coordinator.8.gz
        DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
install(FILES ${_ep_gz_dir}/edgepullctl.1.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(FILES ${_ep_gz_dir}/changelog.Debian.gz DESTINATION ${CMAKE_INSTALL_DOCDIR})
# bash completion: one script, loaded on demand under each command's name.
foreach(cmd edgepulld edgepullctl edgepull-coordinator)
  install(FILES ${CMAKE_CURRENT_LIST_DIR}/completion/edgepull.bash
          DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions RENAME ${cmd})
endforeach()

# --- architecture ---------------------------------------------------------------
set(EDGEPULL_DEB_ARCH "" CACHE STRING "Debian architecture of the package (empty = detect)")
if(NOT EDGEPULL_DEB_ARCH)
  if(CMAKE_CROSSCOMPILING AND CMAKE_LIBRARY_ARCHITECTURE)
    # The GNU triplet of the target (aarch64-linux-gnu, arm-linux-gnueabihf).
    execute_process(COMMAND dpkg-architecture -t ${CMAKE_LIBRARY_ARCHITECTURE} -qDEB_HOST_ARCH
                    OUTPUT_VARIABLE _ep_arch OUTPUT_STRIP_TRAILING_WHITESPACE
                    ERROR_QUIET RESULT_VARIABLE _ep_rc)
  elseif(NOT CMAKE_CROSSCOMPILING)
    execute_process(COMMAND dpkg --print-architecture
                    OUTPUT_VARIABLE _ep_arch OUTPUT_STRIP_TRAILING_WHITESPACE
                    ERROR_QUIET RESULT_VARIABLE _ep_rc)
  endif()
  if(_ep_arch)
    set(EDGEPULL_DEB_ARCH ${_ep_arch})
  elseif(CMAKE_CROSSCOMPILING)
    message(WARNING "edgepull: cannot tell the Debian architecture of this cross "
                    "build; pass -DEDGEPULL_DEB_ARCH=arm64|armhf")
  endif()
endif()

# --- CPack ----------------------------------------------------------------------
set(CPACK_PACKAGE_NAME edgepull)
set(CPACK_PACKAGE_VENDOR "edgepull")
set(CPACK_PACKAGE_CONTACT "edgepull maintainers <maintainers@edgepull.dev>")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "streamed container image distribution for edge localities")
set(CPACK_PACKAGE_DESCRIPTION
    "edgepulld is a node daemon acting as a streaming pull-through registry\n\
mirror for containerd, Docker and podman. The nodes of a locality pull each\n\
image layer across the uplink once and stream it to each other over the LAN\n\
while it is still arriving, verifying every blob by its digest.")
set(CPACK_RESOURCE_FILE_LICENSE ${CMAKE_SOURCE_DIR}/LICENSE)
set(CPACK_GENERATOR DEB)
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)

set(CPACK_DEBIAN_PACKAGE_NAME edgepull)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
if(EDGEPULL_DEB_ARCH)
  set(CPACK_DEBIAN_PACKAGE_ARCHITECTURE ${EDGEPULL_DEB_ARCH})
endif()
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Library dependencies come from dpkg-shlibdeps (only what the binaries
# link); the maintainer scripts need adduser. init-system-helpers
# (deb-systemd-helper) is essential in Debian 12 and Raspberry Pi OS.
# libarchive is dlopen()ed when a layer is unpacked (store/archive_dl.h), so
# dpkg-shlibdeps cannot see it: named here.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser, libarchive13")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "containerd | docker.io | podman, mosquitto, sqlite3")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_CURRENT_LIST_DIR}/debian/conffiles
    ${CMAKE_CURRENT_LIST_DIR}/debian/postinst
    ${CMAKE_CURRENT_LIST_DIR}/debian/prerm
    ${CMAKE_CURRENT_LIST_DIR}/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

include(CPack)
