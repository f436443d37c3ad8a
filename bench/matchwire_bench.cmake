# matchwire-bench: the open-loop load generator (bench/matchwire_bench.c),
# its histogram and WebSocket client modules, and their unit tests.
# Included from bench/CMakeLists.txt. Needs libcrypto (SHA-1, base64 for the
# WebSocket handshake) and cJSON; no part of the reference server.
# libssl-dev is in scripts/deps.sh: a missing libcrypto is a broken setup, not a skip.
pkg_check_modules(MW_BENCH_CRYPTO REQUIRED IMPORTED_TARGET libcrypto)
add_library(mw_bench_client STATIC
    ${CMAKE_CURRENT_LIST_DIR}/bench_hist.c
    ${CMAKE_CURRENT_LIST_DIR}/bench_ws.c)
target_include_directories(mw_bench_client PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(mw_bench_client PUBLIC PkgConfig::MW_BENCH_CRYPTO mw_flags m)

add_executable(matchwire-bench ${CMAKE_CURRENT_LIST_DIR}/matchwire_bench.c)
target_link_libraries(matchwire-bench PRIVATE mw_bench_client PkgConfig::CJSON)

if(BUILD_TESTING)
    foreach(m bench_hist bench_ws)
        add_executable(test_${m} ${CMAKE_CURRENT_LIST_DIR}/test_${m}.c)
        target_link_libraries(test_${m} PRIVATE mw_bench_client PkgConfig::CMOCKA)
        add_test(NAME ${m} COMMAND test_${m})
        set_tests_properties(${m} PROPERTIES TIMEOUT 60 LABELS unit)
    endforeach()
endif()
