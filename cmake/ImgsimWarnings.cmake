# Warning flags for imgsim's own targets; IMGSIM_WERROR turns them into errors (CI does).
function(imgsim_set_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor
                                           -Wcast-align -Woverloaded-virtual -Wnull-dereference)
  if(IMGSIM_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
