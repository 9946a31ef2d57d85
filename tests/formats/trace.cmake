# HDF5 trace tests: tst_trace (GoogleTest) and tst_trace_h5py, where h5py, an independent
# reader, checks a trace written by trace_fixture_writer.
if(ARCHLENS_HDF5)
  archlens_add_gtest(tst_trace SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/tst_trace.cpp LABELS unit
    LIBS ${HDF5_C_LIBRARIES})
  # the test edits traces with the HDF5 C API to make the damage the reader must detect
  target_include_directories(tst_trace SYSTEM PRIVATE ${HDF5_INCLUDE_DIRS})
  target_compile_definitions(tst_trace PRIVATE ${HDF5_DEFINITIONS})

  add_executable(trace_fixture_writer ${CMAKE_CURRENT_SOURCE_DIR}/trace_fixture_writer.cpp)
  target_link_libraries(trace_fixture_writer PRIVATE archlens_core)
  archlens_target_warnings(trace_fixture_writer)

  # Debian's python3-h5py lives with /usr/bin/python3, not with a pyenv or venv python.
  set(ARCHLENS_SYSTEM_PYTHON /usr/bin/python3)
  if(EXISTS ${ARCHLENS_SYSTEM_PYTHON})
    add_test(NAME tst_trace_h5py
      COMMAND ${ARCHLENS_SYSTEM_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/check_trace_h5py.py
        $<TARGET_FILE:trace_fixture_writer> ${CMAKE_CURRENT_BINARY_DIR}/trace_h5py_fixture.h5)
  else()
    add_test(NAME tst_trace_h5py
      COMMAND sh -c "echo 'SKIP: ${ARCHLENS_SYSTEM_PYTHON} not found (apt install python3-h5py)'; exit 77")
  endif()
  set_tests_properties(tst_trace_h5py PROPERTIES LABELS unit SKIP_RETURN_CODE 77)
endif()
