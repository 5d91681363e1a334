# Runs EXE with ARGS and passes only if it exits with code 2, its message names EXPECT, and OUT does not exist.
include(${CMAKE_CURRENT_LIST_DIR}/refusal.cmake)
file(REMOVE ${OUT})
expect_refusal("${EXPECT}" ${ARGS})
if(EXISTS ${OUT})
  message(FATAL_ERROR "a refused run left ${OUT} behind")
endif()
