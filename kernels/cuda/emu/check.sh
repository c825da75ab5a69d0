#!/bin/sh
# shellcheck disable=SC2086,SC2046  # $cxx, $cc, $san and pkg-config output are word lists
# check.sh: runs the CUDA backend's tests on a machine WITHOUT a GPU, against the CPU emulation
# in this folder: the kernels of kernels/cuda/*.cu are compiled as C++ with their launches
# rewritten (launch_rewrite.py), linked with emu.cpp instead of the CUDA runtime, cuBLAS and
# cuBLASLt, and the CUDA tests (each CUDA test against the CPU backend, test_cuda_lmhead and
# test_cuda_graphs included; test_kernels, test_model and test_lmhead with
# RLPIPE_TEST_BACKEND=cuda, against double references) run with them; the list is the `for t in`
# line below. Device memory is inaccessible to host code outside kernels and copies, so these
# runs also prove that the model, optimizer and decoder never dereference backend memory on the
# host.
#
# What it checks: indexing, formulas, reductions, barrier / shuffle use, launch shapes within
# CUDA's limits, the cuBLAS operand swap. What it cannot: real concurrency (races), GPU math
# library accuracy, performance, anything about the real toolkit (compile with nvcc for that).
#
#   kernels/cuda/emu/check.sh [--asan]     (from anywhere; takes a few minutes on 2 cores)
# $EMU_TESTS (a space-separated list, default all) selects the test programs to build and run.
# --asan adds AddressSanitizer + UBSan (out-of-bounds accesses inside kernels become errors).
# Needs a CPU-only build of the project's libraries: made in $EMU_BUILD (default
# /tmp/rlpipe-emu-build, or /tmp/rlpipe-emu-build-asan) when absent.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
san=""
build=${EMU_BUILD:-/tmp/rlpipe-emu-build}
cmake_args="-DCMAKE_BUILD_TYPE=Release"
if [ "${1:-}" = "--asan" ]; then
    san="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
    build=${EMU_BUILD:-/tmp/rlpipe-emu-build-asan}
    cmake_args="-DCMAKE_BUILD_TYPE=RelWithDebInfo -DRLPIPE_SANITIZE=ON"
    # fibers switch stacks: ASan warns once and may report false positives on them; the fiber
    # stacks live for the whole process
    export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:detect_stack_use_after_return=0"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
fi
obj=$build/emu
mkdir -p "$obj"
cmake -S "$root" -B "$build" -DRLPIPE_CUDA=OFF $cmake_args >/dev/null
nice -n 19 cmake --build "$build" -j2 --target rl_policy rl_rollout >/dev/null

cxx="g++ -std=c++20 -O1 -g $san -fno-math-errno -Wall -Wno-unused-parameter -Wno-unknown-pragmas"
cc="gcc -std=c11 -O1 -g $san"
for f in "$root"/kernels/cuda/*.cu; do
    n=$(basename "$f" .cu)
    [ "$n" = comm_nccl ] && continue # NCCL has no emulation (and the tests need no communicator)
    python3 "$here/launch_rewrite.py" "$f" "$obj/$n.cpp"
    nice -n 19 $cxx -I"$here" -I"$root" -DRLPIPE_HAVE_CUDA_BACKEND -c "$obj/$n.cpp" -o "$obj/k_$n.o"
done
nice -n 19 $cxx -I"$here" -c "$here/emu.cpp" -o "$obj/emu.o"
# backend.c without its rl_backend_cuda stub
nice -n 19 $cc -fopenmp $(pkg-config --cflags openblas) -I"$root" -DRLPIPE_HAVE_CUDA_BACKEND \
    -c "$root/kernels/backend.c" -o "$obj/backend.o"
status=0
for t in ${EMU_TESTS:-test_cuda test_cuda_bf16 test_cuda_mixed test_cuda_sample test_cuda_flash test_cuda_lmhead test_cuda_paged test_cuda_rows test_cuda_graphs test_kernels test_model test_lmhead}; do
    nice -n 19 $cc -I"$root" -I"$root/tests" -DRLPIPE_HAVE_CUDA_BACKEND -c "$root/tests/$t.c" \
        -o "$obj/$t.o"
    nice -n 19 g++ $san -o "$obj/$t" "$obj/$t.o" "$obj/backend.o" "$obj"/k_*.o "$obj/emu.o" \
        "$build/rollout/librl_rollout.a" "$build/policy/librl_policy.a" \
        "$build/kernels/librl_kernels.a" \
        $(pkg-config --libs openblas jansson libpcre2-8 libutf8proc) -fopenmp -lm
    echo "=== $t (emulated CUDA backend)"
    if (cd "$root" && RLPIPE_TEST_BACKEND=cuda OMP_NUM_THREADS=2 nice -n 19 "$obj/$t" >"$obj/$t.log" 2>&1); then
        tail -1 "$obj/$t.log"
    else
        status=1
        grep -E "FAIL|ERROR|error" "$obj/$t.log" | head -20
        echo "$t failed: full log in $obj/$t.log"
    fi
done
exit $status
