# Builds and runs the consumer project (app/) against imgsim; run by ctest (tests.cmake).
#
#   cmake -DMODE=install -DIMGSIM_BUILD=<imgsim build tree> -DWORK=<dir> ... -P run.cmake
#     installs the build tree into <dir>/prefix and builds app/ with find_package(imgsim).
#   cmake -DMODE=add_subdirectory -DIMGSIM_SOURCE=<imgsim source> -DWORK=<dir> ... -P run.cmake
#     builds app/ with add_subdirectory(<imgsim source>).
# Also: GENERATOR, BUILD_TYPE (install mode only), CXX_COMPILER, SANITIZE (passed on to the
# consumer build).
cmake_minimum_required(VERSION 3.22)

foreach(var MODE WORK GENERATOR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run.cmake: -D${var}=... is required")
  endif()
endforeach()

set(args -G "${GENERATOR}")
if(BUILD_TYPE AND MODE STREQUAL "install")
  list(APPEND args -DCMAKE_BUILD_TYPE=${BUILD_TYPE})
endif()
if(CXX_COMPILER)
  list(APPEND args -DCMAKE_CXX_COMPILER=${CXX_COMPILER})
endif()

if(MODE STREQUAL "install")
  # A fresh prefix every time, so that nothing stale from an older install can make it pass.
  file(REMOVE_RECURSE ${WORK})
  execute_process(COMMAND ${CMAKE_COMMAND} --install ${IMGSIM_BUILD} --prefix ${WORK}/prefix
                  COMMAND_ERROR_IS_FATAL ANY)
  # The installed command-line program (when the build has it) runs from the prefix.
  if(EXISTS ${WORK}/prefix/bin/imgsim)
    execute_process(COMMAND ${WORK}/prefix/bin/imgsim --version COMMAND_ERROR_IS_FATAL ANY)
  endif()
  list(APPEND args -DCMAKE_PREFIX_PATH=${WORK}/prefix -DCONSUMER_EXPECT_PREFIX=${WORK}/prefix)
elseif(MODE STREQUAL "add_subdirectory")
  # The library is compiled again here: with no build type (no optimisation), which is quicker
  # and enough to check the packaging. The object files are kept for the next run, the cached
  # options are not, so that the options' defaults are what is checked.
  file(REMOVE ${WORK}/build/CMakeCache.txt)
  list(APPEND args -DCONSUMER_ADD_SUBDIRECTORY=ON -DCONSUMER_IMGSIM_SOURCE=${IMGSIM_SOURCE})
  if(SANITIZE)
    list(APPEND args -DIMGSIM_SANITIZE=ON)
  endif()
else()
  message(FATAL_ERROR "run.cmake: MODE must be install or add_subdirectory, not '${MODE}'")
endif()

execute_process(COMMAND ${CMAKE_COMMAND} -S ${CMAKE_CURRENT_LIST_DIR}/app -B ${WORK}/build ${args}
                COMMAND_ERROR_IS_FATAL ANY)
execute_process(COMMAND ${CMAKE_COMMAND} --build ${WORK}/build COMMAND_ERROR_IS_FATAL ANY)
execute_process(COMMAND ${WORK}/build/consumer COMMAND_ERROR_IS_FATAL ANY)
