#!/bin/bash
# gpu_check.sh: the one prepared check of the CUDA backend on a machine with an NVIDIA GPU (an
# H100 or H200 lent for ~10 minutes). Every part has a timeout; a part that fails or times out is
# recorded and the script goes on to the next; a summary table ends the log. Exit status 0 only
# when every part that ran passed (a part that exits 77, "not supported here", counts as skipped).
#
#   scripts/gpu_check.sh --dry-run   anywhere, no GPU needed: checks that this script parses, that
#                                    the build it would use has every binary it runs, that
#                                    bench_model accepts the sizes and precisions below, and
#                                    prints the parts with their time limits
#   scripts/gpu_check.sh --prepare   on the development machine (where the Debian -dev packages
#                                    are): builds build-gpu/ (Release, CUDA ON, generic x86-64,
#                                    no -march=native), strips it to executables and bundles the
#                                    non-CUDA shared libraries it needs into build-gpu/_libs.tgz
#                                    (about 26 MB: it fits the device tool's 64 MiB carry).
#   scripts/gpu_check.sh             on the GPU machine, from the repository root:
#     1. the card (nvidia-smi name, memory, driver, compute capability), the date, the toolkit
#     2. build: cmake Release, CUDA ON, -j16 in build-dev/, only the targets below, when the
#        machine has the build dependencies; otherwise the carried build-gpu/ (carry ["build-gpu"])
#     3. every native CUDA test binary (tests/test_cuda*: float32 and bf16 ops and the model
#        against the CPU backend), verbose
#     4. bench_model: random-weight Qwen2.5-0.5B and R1-Distill-Qwen-1.5B shapes trained at
#        sequence length 4096, each in float32, TF32 and bf16: tokens/s, MFU against the dense
#        bf16 peak (989 TFLOP/s on H100/H200 SXM) and the precision's own, peak memory (the
#        backend's blocks, and nvidia-smi's memory.used sampled every 250 ms)
#     5. bench_rollout when the build has it (GPU_CHECK_ROLLOUT_ARGS: its arguments), and once
#        more with the batch-invariant products (--invariant true) to measure their cost
#     6. test_kernels / test_model on cuda, the whole ctest suite, compute-sanitizer: only with
#        the time left
#   Everything goes to $OUT when it is set, else /tmp/rlpipe-gpu-check/: gpu_check.txt (the card,
#   the date, the summary and every figure: what to paste into the README), gpu_check.log (all
#   output), test_cuda.log, bench.log. GPU_CHECK_BUDGET (seconds, default 450) bounds the whole
#   run: a part that would not fit in what is left is skipped and reported. GPU_CHECK_SKIP is an
#   extended regular expression: parts whose names match it are skipped (e.g. 'ctest|sanitizer').
#   GPU_CHECK_USE_CARRIED=1 uses build-gpu/ without building here; GPU_CHECK_BUILD names another
#   build folder for --dry-run (default: build, then build-gpu, then build-dev).
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
# What runs (shared by the GPU run and --dry-run)

BENCH_SIZES="qwen0.5b-4k r1-1.5b-4k"
BENCH_DTYPES="float32 tf32 bfloat16"
BENCH_STEPS=${GPU_CHECK_BENCH_STEPS:-2}
BENCH_LIMIT=${GPU_CHECK_BENCH_LIMIT:-45} # seconds per (shape, precision)
ROLLOUT_ARGS=${GPU_CHECK_ROLLOUT_ARGS:---device cuda}

# The CMake targets the check needs (native CUDA tests, benchmarks, the CUDA module, rlpipe).
targets_of() { # build dir
    cmake --build "$1" --target help 2>/dev/null | awk '{print $2}' |
        grep -E '^(rlpipe|rlpipe_cuda|bench_model|bench_rollout|test_cuda[A-Za-z0-9_]*|test_kernels|test_model)$' |
        grep -v '^test_cuda_emu$' | sort -u | tr '\n' ' '
}

cuda_tests_in() { # build dir: the native CUDA test binaries
    for t in "$1"/tests/test_cuda*; do
        [ -x "$t" ] && [ -f "$t" ] && echo "$t"
    done
}

# ------------------------------------------------------------------------------------------------
# --dry-run: no GPU needed

if [ "${1:-}" = "--dry-run" ]; then
    fail=0
    bash -n "$0" || fail=1
    B=${GPU_CHECK_BUILD:-}
    if [ -z "$B" ]; then
        for d in build build-gpu build-dev; do
            [ -x "$d/bench/bench_model" ] && B=$d && break
        done
    fi
    echo "gpu_check --dry-run in $ROOT, $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    if [ -z "$B" ] || [ ! -x "$B/bench/bench_model" ]; then
        echo "no build with bench/bench_model (build one, or set GPU_CHECK_BUILD)"
        exit 1
    fi
    echo "build: $B"
    for exe in rlpipe bench/bench_model tests/test_kernels tests/test_model; do
        if [ -x "$B/$exe" ]; then echo "  ok       $B/$exe"; else echo "  MISSING  $B/$exe" && fail=1; fi
    done
    n=$(cuda_tests_in "$B" | wc -l)
    if [ "$n" -gt 0 ]; then
        cuda_tests_in "$B" | sed 's/^/  ok       /'
    else
        echo "  (no tests/test_cuda* here: a build without CUDA; the GPU run builds them)"
    fi
    if [ -x "$B/bench/bench_rollout" ]; then echo "  ok       $B/bench/bench_rollout"; else
        echo "  (no bench/bench_rollout: that part will be skipped)"
    fi
    # bench_model knows the sizes and precisions (on the CPU a GPU precision exits 77 at once)
    for size in $BENCH_SIZES; do
        for dt in $BENCH_DTYPES; do
            [ "$dt" = float32 ] && continue
            "$B/bench/bench_model" "$size" --device cpu --dtype "$dt" --steps 1 >/dev/null 2>&1
            rc=$?
            if [ "$rc" = 77 ]; then echo "  ok       bench_model $size --dtype $dt parses (77 on the CPU)"; else
                echo "  FAILED   bench_model $size --dtype $dt: exit $rc (want 77 on the CPU)" && fail=1
            fi
        done
    done
    "$B/bench/bench_model" no-such-size >/dev/null 2>&1
    [ $? = 2 ] || { echo "  FAILED   bench_model rejects an unknown size"; fail=1; }
    budget=${GPU_CHECK_BUDGET:-450}
    echo "parts (limit in seconds; the whole run is cut at GPU_CHECK_BUDGET=$budget):"
    echo "    10  device info: nvidia-smi, date, nvcc"
    echo "    90  configure (cmake Release, CUDA ON)"
    echo "   200  build -j16 --target <rlpipe rlpipe_cuda bench_model bench_rollout test_cuda* test_kernels test_model>"
    echo "   120  each tests/test_cuda* binary"
    for size in $BENCH_SIZES; do for dt in $BENCH_DTYPES; do
        echo "   $(printf %3d "$BENCH_LIMIT")  bench_model $size --device cuda --dtype $dt --steps $BENCH_STEPS"
    done; done
    echo "    60  bench_rollout $ROLLOUT_ARGS (when built)"
    echo "    60  bench_rollout --shape qwen0.5b --work 512/256 --invariant true (when built)"
    echo "   ...  test_kernels / test_model on cuda, ctest, compute-sanitizer with the time left"
    [ "$fail" = 0 ] && echo "dry run OK" || echo "dry run FAILED"
    exit "$fail"
fi

# ------------------------------------------------------------------------------------------------
# The GPU run

OUTDIR=${OUT:-/tmp/rlpipe-gpu-check}
mkdir -p "$OUTDIR"
LOG=$OUTDIR/gpu_check.log
SUMMARY=$OUTDIR/summary.txt
REPORT=$OUTDIR/gpu_check.txt
FIGURES=$OUTDIR/figures.txt
: >"$LOG"
: >"$SUMMARY"
: >"$FIGURES"
BUDGET=${GPU_CHECK_BUDGET:-450}
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
        printf '%-52s %s\n' "$name" "SKIPPED (GPU_CHECK_SKIP)" >>"$SUMMARY"
        return 0
    fi
    local left=$((BUDGET - $(elapsed)))
    if [ "$left" -lt 15 ]; then
        printf '%-52s %s\n' "$name" "SKIPPED (budget: $(elapsed)s of ${BUDGET}s used)" >>"$SUMMARY"
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
    77) verdict="SKIPPED (exit 77: not supported here)" ;;
    124 | 137) verdict="TIMEOUT after ${dt}s" ;;
    *) verdict="FAILED (exit $rc)" ;;
    esac
    if [ "$OPTIONAL" = 1 ] && [ "$rc" != 0 ]; then verdict="unavailable (exit $rc), not counted"; fi
    case $rc in 0 | 77) ;; *) [ "$OPTIONAL" = 1 ] || FAILED=1 ;; esac
    printf '%-52s %-36s %4ss\n' "$name" "$verdict" "$dt" >>"$SUMMARY"
    say "=== $name: $verdict in ${dt}s"
    PART_RC=$rc
    return 0
}

# bench NAME ARGS...: a bench_model run, with nvidia-smi's memory.used sampled meanwhile; its
# figures (and the sampled peak) go to $FIGURES.
bench() {
    local name=$1
    shift
    local tmp=$OUTDIR/.bench.out mem=$OUTDIR/.mem.txt smi=""
    : >"$tmp"
    : >"$mem"
    if command -v nvidia-smi >/dev/null 2>&1; then
        nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 250 >"$mem" 2>/dev/null &
        smi=$!
    fi
    PART_RC=""
    part "$name" "$BENCH_LIMIT" "$tmp" "$@"
    [ -n "$smi" ] && kill "$smi" 2>/dev/null && wait "$smi" 2>/dev/null
    cat "$tmp" >>"$OUTDIR/bench.log"
    {
        echo "$name"
        if [ -n "$PART_RC" ]; then
            grep -E 'train step|MFU|peak memory|backend |decode|prefill|tokens/s' "$tmp" | sed 's/^/  /'
            grep -E '^bench_[a-z]+:' "$tmp" | sed 's/^/  /' # why it stopped, if it did
            peak=$(sort -n "$mem" 2>/dev/null | tail -1)
            [ -n "$peak" ] && echo "  nvidia-smi memory.used peak: $peak MiB"
            case $PART_RC in 0 | 77) ;; *) echo "  (exit $PART_RC: see gpu_check.log)" ;; esac
        else
            echo "  (not run)"
        fi
    } >>"$FIGURES"
    rm -f "$tmp" "$mem"
}

say "rlpipe GPU check, $(date -u '+%Y-%m-%d %H:%M:%S UTC'), in $ROOT, budget ${BUDGET}s"
CARD=$( (nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv,noheader) 2>/dev/null | head -1)
part "device info" 10 - sh -c 'nvidia-smi; nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv; (nvcc --version || /usr/local/cuda/bin/nvcc --version) 2>&1 | tail -2; uname -m; nproc; cmake --version | head -1'

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
        TARGETS=$(targets_of build-dev)
        say "targets: $TARGETS"
        # shellcheck disable=SC2086 # one word per target
        part "build -j16 (the check's targets)" 200 - cmake --build build-dev -j16 --target $TARGETS
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
    printf '%-52s %s\n' "build" "FAILED (nothing to test)" >>"$SUMMARY"
    FAILED=1
else
    export RLPIPE_BIN="$ROOT/$BUILD/rlpipe" RLPIPE_BUILD_DIR="$ROOT/$BUILD"

    # ---- the native CUDA tests: float32 and bf16 ops and the model against the CPU backend
    for t in $(cuda_tests_in "$BUILD"); do
        part "$(basename "$t") (native, verbose)" 120 "$OUTDIR/test_cuda.log" "$t"
    done

    # ---- the training benchmark: two shapes x three precisions, the GPU's figures first
    : >"$OUTDIR/bench.log"
    bench "bench_attention (flash bf16 and float32, T 4096)" "$BUILD/bench/bench_attention" \
        --device cuda
    for size in $BENCH_SIZES; do
        for dt in $BENCH_DTYPES; do
            bench "bench_model $size --dtype $dt" "$BUILD/bench/bench_model" "$size" \
                --device cuda --dtype "$dt" --steps "$BENCH_STEPS"
        done
    done

    # ---- the rollout benchmark (another module's; when built)
    if [ -x "$BUILD/bench/bench_rollout" ]; then
        # shellcheck disable=SC2086 # the arguments are words
        bench "bench_rollout $ROLLOUT_ARGS" "$BUILD/bench/bench_rollout" $ROLLOUT_ARGS
        # the price of batch invariance on the GPU: matmul_rows (CUDA cores) against cuBLAS
        bench "bench_rollout qwen0.5b 512/256 --invariant true" "$BUILD/bench/bench_rollout" \
            --device cuda --shape qwen0.5b --work 512/256 --batch 1,64,256 --invariant true
    else
        printf '%-52s %s\n' "bench_rollout" "SKIPPED (not in this build)" >>"$SUMMARY"
    fi

    # ---- with the time left: the other suites on cuda, the whole suite, the memory checker
    [ -x "$BUILD/tests/test_kernels" ] &&
        part "test_kernels on cuda" 60 - env RLPIPE_TEST_BACKEND=cuda "$BUILD/tests/test_kernels"
    [ -x "$BUILD/tests/test_model" ] &&
        part "test_model on cuda" 60 - env RLPIPE_TEST_BACKEND=cuda "$BUILD/tests/test_model"
    if [ "$BUILD" = build-gpu ]; then
        part "ctest (whole suite)" 150 - ctest --test-dir "$BUILD" --output-on-failure -j8 --timeout 120
    fi
    if command -v compute-sanitizer >/dev/null 2>&1; then
        part "compute-sanitizer memcheck test_kernels" 120 - env RLPIPE_TEST_BACKEND=cuda \
            compute-sanitizer --tool memcheck --error-exitcode 99 "$BUILD/tests/test_kernels"
    else
        printf '%-52s %s\n' "compute-sanitizer" "SKIPPED (not installed)" >>"$SUMMARY"
    fi
fi

say ""
say "=== summary ($(elapsed)s of ${BUDGET}s) ==="
tee -a "$LOG" <"$SUMMARY"
if [ "$FAILED" = 0 ]; then say "ALL PARTS THAT RAN PASSED"; else say "SOME PARTS FAILED: see $LOG"; fi

# ---- the report: card, date, summary, figures
{
    echo "rlpipe GPU check"
    echo "date:  $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "card:  ${CARD:-unknown (nvidia-smi failed)}"
    echo "build: ${BUILD:-none}; commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo "time:  $(elapsed) s of a ${BUDGET} s budget"
    echo
    echo "== parts"
    cat "$SUMMARY"
    echo
    echo "== figures (bench_model: random weights, sequence length 4096; MFU against the dense"
    echo "   bf16 peak of an H100/H200 SXM, 989 TFLOP/s, and the precision's own peak)"
    cat "$FIGURES"
    echo
    if [ "$FAILED" = 0 ]; then echo "ALL PARTS THAT RAN PASSED"; else echo "SOME PARTS FAILED: see gpu_check.log"; fi
} >"$REPORT"
rm -f "$FIGURES"
exit "$FAILED"
