# The Table-1 harness at toy size in WORK: bundled-style data and model copied from DATASET and MODEL into
# WORK/data (epsilon 1e6: the toy model's windows are all kept), one run that makes everything, a second
# run that finds everything made (resume), a third
# after the intermediate files are deleted that needs none of them (the records suffice), then one cell
# deleted and re-made by the harness (which re-makes the augmented dataset it needs) and once more from the
# command line the report records for it; each re-made cell equals the first.
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK}/data/mastars)
file(COPY_FILE ${DATASET} ${WORK}/data/spread_medium_replay.npz)
file(COPY ${MODEL}/ DESTINATION ${WORK}/data/mastars/spread_medium_replay)
set(ARGS table1 --dir ${WORK}/runs --data-dir ${WORK}/data --qualities medium-replay --learners td3bc,omar --methods original,lov
    --ablation none --seeds 0,1 --num 4 --epsilon 1e6 --steps 2 --eval-every 0 --eval-episodes 2 --jobs 2 --out ${WORK}/results.md
    --records ${WORK}/records)
function(run_table1 pass)
  execute_process(COMMAND ${EXE} ${ARGS} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${pass} table1 run exited with ${rc}\n${out}${err}")
  endif()
  set(${pass}_err "${err}" PARENT_SCOPE)
endfunction()
function(expect_same_return first second what)
  string(REGEX MATCH "\"final_return\": [^,]*" r_first "${first}")
  string(REGEX MATCH "\"final_return\": [^,]*" r_second "${second}")
  if(NOT r_first OR NOT r_first STREQUAL r_second)
    message(FATAL_ERROR "${what} differs: '${r_first}' vs '${r_second}'")
  endif()
endfunction()
run_table1(first)
run_table1(second)
if(NOT first_err MATCHES "3 of 12 outputs exist or are not needed; 9 to make"
   OR NOT second_err MATCHES "12 of 12 outputs exist or are not needed; 0 to make")
  message(FATAL_ERROR "expected 9 outputs made by the first run and none by the second:\n${first_err}\n${second_err}")
endif()
file(REMOVE_RECURSE ${WORK}/runs)
run_table1(third)
if(NOT third_err MATCHES "12 of 12 outputs exist or are not needed; 0 to make")
  message(FATAL_ERROR "without the intermediate files the records should suffice:\n${third_err}")
endif()
file(READ ${WORK}/results.md report)
foreach(row "\\| MA-TD3\\+BC \\| Original \\| -?[0-9.]+ ± [0-9.]+ \\|" "\\| OMAR \\| MASTARS-LOV \\| -?[0-9.]+ ± [0-9.]+ \\|")
  if(NOT report MATCHES "${row}")
    message(FATAL_ERROR "results.md has no row matching ${row}:\n${report}")
  endif()
endforeach()
if(NOT report MATCHES "\\| spread \\| medium-replay \\| MASTARS-LOV \\| [0-9]+ \\| [0-9]+ \\|")
  message(FATAL_ERROR "results.md has no dataset row for MASTARS-LOV:\n${report}")
endif()
# Re-make one cell through the harness: it needs the augmented dataset again, so two files are made.
set(cell ${WORK}/records/spread/medium-replay/cells/omar_lov_s1.json)
file(READ ${cell} first_cell)
file(REMOVE ${cell})
run_table1(fourth)
if(NOT fourth_err MATCHES "10 of 12 outputs exist or are not needed; 2 to make")
  message(FATAL_ERROR "expected the augmentation and the cell to be re-made:\n${fourth_err}")
endif()
file(READ ${cell} second_cell)
expect_same_return("${first_cell}" "${second_cell}" "the cell re-made by the harness")
# Re-make one cell alone from its recorded command.
string(REGEX MATCH "coordiff offline-train [^\n]*omar_lov_s1.json[^\n]*" command "${report}")
if(NOT command)
  message(FATAL_ERROR "results.md records no command for omar_lov_s1:\n${report}")
endif()
file(READ ${cell} before)
file(REMOVE ${cell})
string(REPLACE "coordiff " "" command "${command}")
separate_arguments(command UNIX_COMMAND "${command}")
execute_process(COMMAND ${EXE} ${command} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0 OR NOT EXISTS ${cell})
  message(FATAL_ERROR "re-running the cell failed (${rc}):\n${out}${err}")
endif()
file(READ ${cell} after)
expect_same_return("${before}" "${after}" "the cell re-made from its command")
# An augmentation that keeps no window: its data are the original's, so its cell is not run and the report
# shows the Original cell for it.
set(ARGS table1 --dir ${WORK}/runs_empty --records ${WORK}/records_empty --data-dir ${WORK}/data --qualities medium-replay
    --learners td3bc --methods original,lov --ablation none --seeds 0 --num 4 --epsilon 1e-9 --steps 2 --eval-every 0
    --eval-episodes 2 --jobs 2 --out ${WORK}/results_empty.md)
run_table1(fifth)
file(READ ${WORK}/results_empty.md empty_report)
if(NOT fifth_err MATCHES "table1: skip  spread_medium-replay_td3bc_lov_s0"
   OR EXISTS ${WORK}/records_empty/spread/medium-replay/cells/td3bc_lov_s0.json
   OR NOT empty_report MATCHES "\\| MA-TD3\\+BC \\| MASTARS-LOV \\| -?[0-9.]+ ± [0-9.]+ \\(= Original\\) \\|")
  message(FATAL_ERROR "an augmentation with no window kept should stand on the Original cell:\n${fifth_err}\n${empty_report}")
endif()
message("${report}")
