# End-to-end test of the imgsim program (run.sh), included by tests/CMakeLists.txt: trains a tiny
# model on generated images, then drives every subcommand and the error paths.
if(TARGET imgsim_cli)
  add_executable(imgsim_cli_make_images ${CMAKE_CURRENT_LIST_DIR}/make_images.cpp)
  target_link_libraries(imgsim_cli_make_images PRIVATE imgsim::imgsim)
  imgsim_set_warnings(imgsim_cli_make_images)
  add_test(NAME cli
           COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/run.sh $<TARGET_FILE:imgsim_cli>
                   $<TARGET_FILE:imgsim_cli_make_images> ${CMAKE_CURRENT_BINARY_DIR}/cli-test)
  set_tests_properties(cli PROPERTIES LABELS cli TIMEOUT 300)
endif()
