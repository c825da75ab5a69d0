#!/bin/bash
# gpu_check.sh: the one prepared check of the CUDA backend on a machine with an NVIDIA GPU (an
# H200 in a ~10-minute budget). Every part has a timeout; a part that fails or times out is
# recorded and the script goes on to the next; a summary table ends the log. Exit status 0 only
# when every part that ran passed.
#
#   scripts/gpu_check.sh --prepare   on the development machine (where the Debian -dev packages
#                                    are): builds build-gpu/ (Release, CUDA ON, generic x86-64,
#                                    no -march=native), strips it to executables and bundles the
#                                    non-CUDA shared libraries it needs into build-gpu/_libs.tgz
#                                    (about 26 MB: it fits the device tool's 64 MiB carry).
#   scripts/gpu_check.sh             on the GPU machine, from the repository root:
#     1. device and toolkit information (nvidia-smi, nvcc)
#     2. build: cmake Release, CUDA ON, -j16 in build-dev/ when the machine has the build
#        dependencies; otherwise the carried build-gpu/ (run with carry: ["build-gpu"])
#     3. test_cuda, verbose: every op and the whole model, CUDA against the CPU backend
#     4. test_kernels and test_model with RLPIPE_TEST_BACKEND=cuda (against double references)
#     5. bench_model tiny and 25m on cuda and on cpu, few steps
#     6. the whole ctest suite
#     7. compute-sanitizer memcheck of test_kernels on cuda (when the tool and the time allow)
#   Logs go to $OUT when it is set (gpu_check.log, summary.txt, test_cuda.log, bench.log), else
#   to /tmp/rlpipe-gpu-check/. GPU_CHECK_BUDGET (seconds, default 480) bounds the whole run: a
#   part that would not fit in what is left is skipped and reported as such. GPU_CHECK_SKIP is
#   an extended regular expression: parts whose names match it are skipped (for instance
#   'ctest|bench|sanitizer'). GPU_CHECK_USE_CARRIED=1 uses build-gpu/ without building here.
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)

# ------------------------------------------------------------------------------------------------
# --prepare: build here, strip, bundle libraries

if [ "${1:-}" = "--prepare" ]; then
    set -e
    dir=build-gpu
    jobs=${JOBS:-2}
    rm -rf "$dir"
    # generic x86-64 code (the GPU machine's CPU may lack this one's instructions); absolute paths
    # in the ctest files point into $ROOT, which the GPU run recreates with a symlink
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DRLPIPE_CUDA=ON -DRLPIPE_NATIVE=OFF \
        -DRLPIPE_WERROR=ON >/dev/null
    nice -n 19 cmake --build "$dir" -j"$jobs"
    # keep what runs: executables, plugins, ctest files; drop objects, static libraries, CMake's
    # own files
    find "$dir" -name '*.o' -delete
    find "$dir" -name '*.a' -delete
    find "$dir" -name CMakeFiles -type d -prune -exec rm -rf {} +
    # shared libraries that are neither glibc's nor CUDA's (the GPU machine has its own CUDA)
    mkdir -p "$dir/_libs"
    for exe in "$dir"/rlpipe "$dir"/librlpipe_cuda.so "$dir"/tests/test_* "$dir"/bench/bench_*; do
        [ -x "$exe" ] || continue
        ldd "$exe" | awk '$3 ~ /^\// {print $3}'
    done | sort -u | while read -r lib; do
        case "$(basename "$lib")" in
        libc.so* | libm.so* | libdl.so* | librt.so* | libpthread.so* | ld-linux* | libstdc++.so* | \
            libgcc_s.so* | libcuda* | libcublas* | libnvidia*) ;;
        *) cp -L "$lib" "$dir/_libs/" ;;
        esac
    done
    # compressed: OpenBLAS alone is 36 MB, the device tool carries 64 MiB in all
    tar -czf "$dir/_libs.tgz" -C "$dir" _libs
    rm -rf "$dir/_libs"
    echo "$ROOT" >"$dir/_root"
    du -sh "$dir" "$dir/_libs.tgz"
    echo "prepared $dir: on the GPU machine run scripts/gpu_check.sh with carry [\"$dir\"]"
    exit 0
fi

# ------------------------------------------------------------------------------------------------
# The GPU run

OUTDIR=${OUT:-/tmp/rlpipe-gpu-check}
mkdir -p "$OUTDIR"
LOG=$OUTDIR/gpu_check.log
SUMMARY=$OUTDIR/summary.txt
: >"$LOG"
: >"$SUMMARY"
BUDGET=${GPU_CHECK_BUDGET:-480}
START=$(date +%s)
FAILED=0
OPTIONAL=0 # 1 while running a part whose failure is an expected outcome (building here)

say() { echo "$@" | tee -a "$LOG"; }
elapsed() { echo $(($(date +%s) - START)); }

# part NAME TIMEOUT LOGFILE COMMAND...: runs COMMAND with a timeout (shortened to the budget
# left), appends its output to the log (and LOGFILE, unless -), records the outcome.
part() {
    local name=$1 limit=$2 extra=$3
    shift 3
    if [ -n "${GPU_CHECK_SKIP:-}" ] && echo "$name" | grep -qiE "$GPU_CHECK_SKIP"; then
        printf '%-44s %s\n' "$name" "SKIPPED (GPU_CHECK_SKIP)" >>"$SUMMARY"
        return 0
    fi
    local left=$((BUDGET - $(elapsed)))
    if [ "$left" -lt 20 ]; then
        printf '%-44s %s\n' "$name" "SKIPPED (budget: $(elapsed)s of ${BUDGET}s used)" >>"$SUMMARY"
        say "=== $name: skipped, budget spent"
        return 0
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    say ""
    say "=== $name (timeout ${limit}s, at $(elapsed)s) === $*"
    local t0 rc
    t0=$(date +%s)
    if [ "$extra" = "-" ]; then
        timeout --kill-after=10 "$limit" "$@" >>"$LOG" 2>&1
        rc=$?
    else
        timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$extra" >>"$LOG"
        rc=${PIPESTATUS[0]}
    fi
    local dt=$(($(date +%s) - t0)) verdict
    case $rc in
    0) verdict="ok" ;;
    77) verdict="SKIPPED (exit 77)" ;;
    124 | 137) verdict="TIMEOUT after ${dt}s" ;;
    *) verdict="FAILED (exit $rc)" ;;
    esac
    if [ "$OPTIONAL" = 1 ] && [ "$rc" != 0 ]; then verdict="unavailable (exit $rc), not counted"; fi
    case $rc in 0 | 77) ;; *) [ "$OPTIONAL" = 1 ] || FAILED=1 ;; esac
    printf '%-44s %-28s %4ss\n' "$name" "$verdict" "$dt" >>"$SUMMARY"
    say "=== $name: $verdict in ${dt}s"
    return 0
}

say "rlpipe GPU check, $(date -u '+%Y-%m-%d %H:%M:%S UTC'), in $ROOT, budget ${BUDGET}s"
part "device info" 20 - sh -c 'nvidia-smi; nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv; (nvcc --version || /usr/local/cuda/bin/nvcc --version) 2>&1 | tail -2; uname -m; nproc; cmake --version | head -1'

# The CUDA libraries (the carried build was linked elsewhere, where they live at other paths).
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda/lib; do
    [ -d "$d" ] && LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"
done
export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}
[ -x /usr/local/cuda/bin/nvcc ] && export PATH="/usr/local/cuda/bin:$PATH"

# ---- build: here if the machine can, else the carried build
BUILD=""
if [ -z "${GPU_CHECK_USE_CARRIED:-}" ]; then
    # (the machine may lack the Debian -dev packages: then the carried build is used)
    OPTIONAL=1
    part "configure here (Release, CUDA ON)" 90 - cmake -S . -B build-dev -DCMAKE_BUILD_TYPE=Release \
        -DRLPIPE_CUDA=ON -DRLPIPE_WERROR=OFF
    OPTIONAL=0
    if [ -f build-dev/Makefile ] || [ -f build-dev/build.ninja ]; then
        part "build -j16" 300 - cmake --build build-dev -j16
        [ -x build-dev/tests/test_cuda ] && BUILD=build-dev
    fi
fi
if [ -z "$BUILD" ] && [ -x build-gpu/tests/test_cuda ]; then
    BUILD=build-gpu
    libs=$(mktemp -d /tmp/rlpipe-libs.XXXXXX)
    tar -xzf build-gpu/_libs.tgz -C "$libs"
    export LD_LIBRARY_PATH="$libs/_libs:$LD_LIBRARY_PATH"
    # the carried ctest files and RLPIPE_BIN name the directory it was built in: make it exist
    built_in=$(cat build-gpu/_root 2>/dev/null || true)
    if [ -n "$built_in" ] && [ "$built_in" != "$ROOT" ] && [ ! -e "$built_in" ]; then
        mkdir -p "$(dirname "$built_in")" && ln -s "$ROOT" "$built_in"
    fi
    say "using the carried build-gpu (built in ${built_in:-?}), libraries from build-gpu/_libs.tgz"
    part "carried build runs here" 20 - sh -c 'ldd build-gpu/librlpipe_cuda.so | grep -E "not found|cublas|cudart" ; ! ldd build-gpu/librlpipe_cuda.so build-gpu/tests/test_cuda | grep -q "not found"'
fi
if [ -z "$BUILD" ]; then
    say "no build: neither a build here nor a carried build-gpu (scripts/gpu_check.sh --prepare)"
    printf '%-44s %s\n' "build" "FAILED (nothing to test)" >>"$SUMMARY"
    FAILED=1
else
    if command -v cuobjdump >/dev/null 2>&1; then
        part "sm_80 and sm_90 code in librlpipe_cuda.so" 20 - sh -c "cuobjdump --list-elf $BUILD/librlpipe_cuda.so >/tmp/rlpipe-elf.txt 2>&1; cat /tmp/rlpipe-elf.txt; grep -q sm_80 /tmp/rlpipe-elf.txt && grep -q sm_90 /tmp/rlpipe-elf.txt"
    fi

    # ---- the CUDA tests
    part "test_cuda (every op and the model, verbose)" 180 "$OUTDIR/test_cuda.log" "$BUILD/tests/test_cuda"
    part "test_cuda_flash (fused attention, bf16 and float32)" 90 "$OUTDIR/test_cuda.log" "$BUILD/tests/test_cuda_flash"
    part "test_kernels on cuda" 90 - env RLPIPE_TEST_BACKEND=cuda "$BUILD/tests/test_kernels"
    part "test_model on cuda" 120 - env RLPIPE_TEST_BACKEND=cuda "$BUILD/tests/test_model"

    # ---- throughput (the GPU first: its numbers matter most)
    part "bench_attention (flash bf16 and float32, T 4096)" 90 "$OUTDIR/bench.log" "$BUILD/bench/bench_attention" --device cuda
    for dev in cuda cpu; do
        for size in tiny 25m; do
            part "bench_model $size --device $dev" 90 "$OUTDIR/bench.log" \
                "$BUILD/bench/bench_model" "$size" --device "$dev" --steps 3 --decode-steps 16
        done
    done

    # ---- the whole suite
    part "ctest (whole suite)" 200 - ctest --test-dir "$BUILD" --output-on-failure -j8 --timeout 150

    # ---- memory checker (Firecracker machines only; slow, so last)
    if command -v compute-sanitizer >/dev/null 2>&1; then
        part "compute-sanitizer memcheck test_kernels" 150 - env RLPIPE_TEST_BACKEND=cuda \
            compute-sanitizer --tool memcheck --error-exitcode 99 "$BUILD/tests/test_kernels"
    else
        printf '%-44s %s\n' "compute-sanitizer" "SKIPPED (not installed)" >>"$SUMMARY"
    fi
fi

say ""
say "=== summary ($(elapsed)s of ${BUDGET}s) ==="
tee -a "$LOG" <"$SUMMARY"
if [ "$FAILED" = 0 ]; then say "ALL PARTS THAT RAN PASSED"; else say "SOME PARTS FAILED: see $LOG"; fi
exit "$FAILED"
