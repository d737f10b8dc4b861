# Package consumer builds, included by tests/CMakeLists.txt: a small outside project (app/) is
# built and run against imgsim installed into a temporary prefix (consumer_install) and with
# imgsim added through add_subdirectory (consumer_add_subdirectory, which compiles the library
# again and is therefore also labelled "slow").
set(IMGSIM_CONSUMER_ARGS
    "-DGENERATOR=${CMAKE_GENERATOR}" "-DBUILD_TYPE=${CMAKE_BUILD_TYPE}"
    "-DCXX_COMPILER=${CMAKE_CXX_COMPILER}" "-DSANITIZE=${IMGSIM_SANITIZE}")

if(IMGSIM_INSTALL)
  add_test(NAME consumer_install
           COMMAND ${CMAKE_COMMAND} -DMODE=install -DIMGSIM_BUILD=${PROJECT_BINARY_DIR}
                   -DWORK=${CMAKE_CURRENT_BINARY_DIR}/consumer-install ${IMGSIM_CONSUMER_ARGS}
                   -P ${CMAKE_CURRENT_LIST_DIR}/run.cmake)
  set_tests_properties(consumer_install PROPERTIES LABELS consumer TIMEOUT 600)
endif()

add_test(NAME consumer_add_subdirectory
         COMMAND ${CMAKE_COMMAND} -DMODE=add_subdirectory -DIMGSIM_SOURCE=${PROJECT_SOURCE_DIR}
                 -DWORK=${CMAKE_CURRENT_BINARY_DIR}/consumer-subdirectory ${IMGSIM_CONSUMER_ARGS}
                 -P ${CMAKE_CURRENT_LIST_DIR}/run.cmake)
set_tests_properties(consumer_add_subdirectory PROPERTIES LABELS "consumer;slow" TIMEOUT 1200)
