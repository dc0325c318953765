# cmake -DVIA=find_package|subdirectory -DCLIENT_SOURCE=... -DCLIENT_BUILD=...
#       -DWORK=... -DCXX=... -P build-and-run.cmake
# Builds the consumer project against the client, then runs its judge
# against $ENV{SANDBOXD_BIN} on a state dir of its own.
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    string(JOIN " " command ${ARGN})
    message(FATAL_ERROR "failed (${rc}): ${command}")
  endif()
endfunction()

file(REMOVE_RECURSE ${WORK})
set(configure ${CMAKE_COMMAND} -S ${CMAKE_CURRENT_LIST_DIR} -B ${WORK}/build
  -DCMAKE_CXX_COMPILER=${CXX} -DSANDBOXD_CLIENT_VIA=${VIA})
if(VIA STREQUAL "find_package")
  run(${CMAKE_COMMAND} --install ${CLIENT_BUILD} --prefix ${WORK}/prefix)
  run(${configure} -DCMAKE_PREFIX_PATH=${WORK}/prefix)
else()
  run(${configure} -DSANDBOXD_CLIENT_DIR=${CLIENT_SOURCE})
endif()
run(${CMAKE_COMMAND} --build ${WORK}/build)

set(flags --state-dir ${WORK}/state --log-level warn)
if(NOT "$ENV{SANDBOXD_TEST_UID_BASE}" STREQUAL "")
  list(APPEND flags --uid-base $ENV{SANDBOXD_TEST_UID_BASE})
endif()
run(${WORK}/build/judge $ENV{SANDBOXD_BIN} ${flags})
file(REMOVE_RECURSE ${WORK})
