# edgepull's libraries, each with the include path of itself and of what it
# links, and a one-way graph between them (docs/design.md, "Modules").
#
#   ep_add_library(<target> DIR <dir> SOURCES <files...>
#                  [DEPS <targets...>] [PUBLIC_DEPS <targets...>]
#                  [PKGS <imported targets...>] [PUBLIC_PKGS <imported targets...>])
#
# <dir> is the library's folder relative to the repository root ("store",
# "plugin/fetch"); SOURCES are relative to the calling CMakeLists.txt. Headers
# are included spelled from the root ("plugin/fetch/fetch.h"), but there is
# no global include path: each library gets a directory of its own,
# ${CMAKE_BINARY_DIR}/include/<target>/, holding a single symlink <dir> ->
# ${CMAKE_SOURCE_DIR}/<dir>, exported PUBLIC. A library therefore sees only
# its own headers and those of the libraries it links; including the header
# of a library above it (or one it does not declare) fails to compile.
#
# DEPS are linked PRIVATE. A dependency whose header appears in one of this
# library's public headers goes in PUBLIC_DEPS instead, so that its users can
# compile that header. PKGS / PUBLIC_PKGS are the same for pkg-config
# targets (PkgConfig::CURL, Threads::Threads).
#
#   ep_add_executable(<target> DIR <dir> SOURCES <files...> [DEPS ...] [PKGS ...])
#
# An executable with the include path of its own folder and of its DEPS.
#
# Cycles: CMake links static libraries in a cycle without a word, so every
# ep_add_library records its DEPS and PUBLIC_DEPS, and ep_check_graph(),
# called once after every add_subdirectory, fails the configure on a cycle.

function(_ep_include_dir target dir out)
  set(inc ${CMAKE_BINARY_DIR}/include/${target})
  get_filename_component(parent ${inc}/${dir} DIRECTORY)
  file(MAKE_DIRECTORY ${parent})
  # Replaced at every configure, so a moved source tree is followed.
  file(CREATE_LINK ${CMAKE_SOURCE_DIR}/${dir} ${inc}/${dir} SYMBOLIC)
  set(${out} ${inc} PARENT_SCOPE)
endfunction()

function(ep_add_library target)
  cmake_parse_arguments(A "" "DIR" "SOURCES;DEPS;PUBLIC_DEPS;PKGS;PUBLIC_PKGS" ${ARGN})
  if(NOT A_DIR OR NOT A_SOURCES)
    message(FATAL_ERROR "ep_add_library(${target}): DIR and SOURCES are required")
  endif()
  add_library(${target} STATIC ${A_SOURCES})
  _ep_include_dir(${target} ${A_DIR} inc)
  target_include_directories(${target} PUBLIC ${inc})
  target_link_libraries(${target} PUBLIC ${A_PUBLIC_DEPS} ${A_PUBLIC_PKGS}
                        PRIVATE ${A_DEPS} ${A_PKGS})
  set_property(GLOBAL APPEND PROPERTY EP_LIBRARIES ${target})
  set_property(GLOBAL PROPERTY EP_DEPS_${target} ${A_DEPS} ${A_PUBLIC_DEPS})
endfunction()

function(ep_add_executable target)
  cmake_parse_arguments(A "" "DIR" "SOURCES;DEPS;PKGS" ${ARGN})
  add_executable(${target} ${A_SOURCES})
  _ep_include_dir(${target} ${A_DIR} inc)
  target_include_directories(${target} PRIVATE ${inc})
  target_link_libraries(${target} PRIVATE ${A_DEPS} ${A_PKGS})
endfunction()

# Kahn's algorithm over the recorded graph: peel off libraries whose edgepull
# dependencies are all peeled; whatever remains sits on a cycle.
function(ep_check_graph)
  get_property(libs GLOBAL PROPERTY EP_LIBRARIES)
  set(left ${libs})
  set(done "")
  list(LENGTH left nleft)
  while(nleft GREATER 0)
    set(next "")
    foreach(lib IN LISTS left)
      get_property(deps GLOBAL PROPERTY EP_DEPS_${lib})
      set(ready TRUE)
      foreach(dep IN LISTS deps)
        if(dep IN_LIST libs AND NOT dep IN_LIST done)
          set(ready FALSE)
        endif()
      endforeach()
      if(ready)
        list(APPEND next ${lib})
      endif()
    endforeach()
    if(NOT next)
      set(edges "")
      foreach(lib IN LISTS left)
        get_property(deps GLOBAL PROPERTY EP_DEPS_${lib})
        foreach(dep IN LISTS deps)
          if(dep IN_LIST left)
            string(APPEND edges "\n  ${lib} -> ${dep}")
          endif()
        endforeach()
      endforeach()
      message(FATAL_ERROR "edgepull's library graph has a cycle (these libraries are on it or above it): ${left}${edges}\n"
                          "A lower module must not use a higher one: pass it a callback "
                          "(see the *_deps structs) or move the shared part down.")
    endif()
    list(APPEND done ${next})
    list(REMOVE_ITEM left ${next})
    list(LENGTH left nleft)
  endwhile()
endfunction()
