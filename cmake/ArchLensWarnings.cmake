# archlens_target_warnings(target): strict warnings for our own code only.
# Third-party headers come in as SYSTEM includes (imported targets), so they stay quiet.
function(archlens_target_warnings target)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor
      -Wcast-align -Woverloaded-virtual -Wno-unused-parameter>)
  if(ARCHLENS_WERROR)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-Werror>)
  endif()
endfunction()
