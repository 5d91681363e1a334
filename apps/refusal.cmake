# expect_refusal(EXPECT ARGS...): runs EXE with ARGS and fails the test unless it exits with code 2 and its
# message names EXPECT (the wording of a coordiff::Error).
function(expect_refusal expect)
  execute_process(COMMAND ${EXE} ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 2)
    message(FATAL_ERROR "expected exit code 2 from ${ARGN}, got ${rc}\n${out}${err}")
  endif()
  string(FIND "${err}" "${expect}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "the message does not name '${expect}':\n${err}")
  endif()
endfunction()
