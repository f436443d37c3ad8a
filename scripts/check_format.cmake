# Fails when any C source or header in the tree differs from .clang-format.
file(GLOB_RECURSE sources
    ${ROOT}/reference/src/*.[ch] ${ROOT}/reference/tests/*.[ch] ${ROOT}/reference/tools/*.[ch]
    ${ROOT}/fuzz/*.[ch] ${ROOT}/bench/*.[ch] ${ROOT}/clients/c/*.[ch])
execute_process(COMMAND ${CLANG_FORMAT} --dry-run --Werror ${sources}
    RESULT_VARIABLE rc ERROR_VARIABLE out)
if(NOT rc EQUAL 0)
    message(FATAL_ERROR "clang-format: these files need `make format`:\n${out}")
endif()
list(LENGTH sources n)
message(STATUS "clang-format: ${n} files clean")
