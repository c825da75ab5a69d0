#!/bin/sh
# Builds rlpipe and runs the whole test suite.
#   scripts/test.sh              Release build in build/, warnings are errors, CUDA when nvcc exists
#   scripts/test.sh --sanitize   the same tests built with AddressSanitizer + UBSan in build-asan/
set -eu
cd "$(dirname "$0")/.."

jobs=$(nproc 2>/dev/null || echo 2)
if [ "${1:-}" = "--sanitize" ]; then
    dir=build-asan
    # CUDA sources are compiled in the plain pass; the sanitizer pass checks the host code.
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRLPIPE_SANITIZE=ON -DRLPIPE_WERROR=ON \
        -DRLPIPE_CUDA=OFF >/dev/null
    export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
    export RLPIPE_SANITIZED=1
else
    dir=build
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DRLPIPE_WERROR=ON >/dev/null
fi
cmake --build "$dir" -j"$jobs"
ctest --test-dir "$dir" --output-on-failure -j"$jobs"
