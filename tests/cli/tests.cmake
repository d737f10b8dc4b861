# End-to-end test of the imgsim program (run.sh), included by tests/CMakeLists.txt: trains a tiny
# model on generated images, then drives every subcommand and the error paths.
if(TARGET imgsim_cli)
  add_executable(imgsim_cli_make_images ${CMAKE_CURRENT_LIST_DIR}/make_images.cpp)
  target_link_libraries(imgsim_cli_make_images PRIVATE imgsim::imgsim)
  imgsim_set_warnings(imgsim_cli_make_images)
  # With the benchmark scorer, run.sh checks that `imgsim eval --bench` prints the table
  # imgsim-ndbench-score computes from its predictions file (skipped if it is not built).
  set(imgsim_cli_scorer "")
  if(TARGET imgsim-ndbench-score)
    set(imgsim_cli_scorer $<TARGET_FILE:imgsim-ndbench-score>)
  endif()
  add_test(NAME cli
           COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/run.sh $<TARGET_FILE:imgsim_cli>
                   $<TARGET_FILE:imgsim_cli_make_images> ${CMAKE_CURRENT_BINARY_DIR}/cli-test
                   ${imgsim_cli_scorer})
  set_tests_properties(cli PROPERTIES LABELS cli TIMEOUT 300)
  if(TARGET imgsim-posterior-probe)
    set_tests_properties(
      cli PROPERTIES ENVIRONMENT IMGSIM_POSTERIOR_PROBE=$<TARGET_FILE:imgsim-posterior-probe>)
  endif()
endif()

# The dedup HTML report (src/cli/report.cpp) without a browser: self-contained, names escaped,
# large groups cut.
if(TARGET imgsim_cli)
  find_package(CLI11 2.1 REQUIRED)
  find_package(nlohmann_json 3.10 REQUIRED)
  add_executable(test_cli_report ${CMAKE_CURRENT_LIST_DIR}/test_report.cpp
                 ${PROJECT_SOURCE_DIR}/src/cli/report.cpp ${PROJECT_SOURCE_DIR}/src/cli/common.cpp
                 ${PROJECT_SOURCE_DIR}/src/cli/progress.cpp $<TARGET_OBJECTS:imgsim_catch_main>)
  target_link_libraries(test_cli_report PRIVATE imgsim::imgsim Catch2::Catch2 CLI11::CLI11
                                                nlohmann_json::nlohmann_json)
  target_include_directories(test_cli_report PRIVATE ${CMAKE_CURRENT_LIST_DIR}/..)
  imgsim_set_warnings(test_cli_report)
  add_test(NAME test_cli_report COMMAND test_cli_report)
  set_tests_properties(test_cli_report PROPERTIES LABELS cli)
endif()
