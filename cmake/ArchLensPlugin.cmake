# Backend plugins (core/backends/plugin_abi.h): ARCHLENS_BACKEND_ABI_HASH is the SHA-256 of
# the headers that define the classes a plugin shares with the host (Backend, Tensor, DType,
# Error), so a plugin built against other headers is refused at load time with a clear
# reason instead of crashing. Editing those headers re-runs configure.
set(_archlens_abi_headers
  ${CMAKE_CURRENT_LIST_DIR}/../core/backends/backend.h
  ${CMAKE_CURRENT_LIST_DIR}/../core/backends/plugin_abi.h
  ${CMAKE_CURRENT_LIST_DIR}/../core/tensor/tensor.h
  ${CMAKE_CURRENT_LIST_DIR}/../core/tensor/dtype.h
  ${CMAKE_CURRENT_LIST_DIR}/../core/base/error.h)
set(_archlens_abi_text "")
foreach(h IN LISTS _archlens_abi_headers)
  file(READ ${h} _text)
  string(APPEND _archlens_abi_text "${_text}")
endforeach()
string(SHA256 ARCHLENS_BACKEND_ABI_HASH "${_archlens_abi_text}")
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${_archlens_abi_headers})

# archlens_add_backend_plugin(target SOURCES ... [OUTPUT_DIRECTORY dir] [OUTPUT_NAME name])
# A MODULE library with the ABI hash defined, core linked in privately (its symbols are not
# exported, so the plugin's copy never interposes on the host's).
function(archlens_add_backend_plugin target)
  cmake_parse_arguments(A "" "OUTPUT_DIRECTORY;OUTPUT_NAME" "SOURCES" ${ARGN})
  add_library(${target} MODULE ${A_SOURCES})
  target_link_libraries(${target} PRIVATE archlens_core)
  target_compile_definitions(${target} PRIVATE ARCHLENS_BACKEND_ABI_HASH="${ARCHLENS_BACKEND_ABI_HASH}")
  target_link_options(${target} PRIVATE -Wl,--exclude-libs,ALL -Wl,--no-undefined)
  set_target_properties(${target} PROPERTIES CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON PREFIX "lib")
  if(A_OUTPUT_DIRECTORY)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${A_OUTPUT_DIRECTORY})
  endif()
  if(A_OUTPUT_NAME)
    set_target_properties(${target} PROPERTIES OUTPUT_NAME ${A_OUTPUT_NAME})
  endif()
  archlens_target_warnings(${target})
endfunction()
