#!/usr/bin/env bash
# mpirun.sh N PROGRAM [ARGS...]: runs PROGRAM as N MPI ranks on this machine the way the tests
# need it: as root if need be (OMPI_ALLOW_RUN_AS_ROOT), more ranks than cores (--oversubscribe),
# one OpenMP thread per rank, and, under scripts/test.sh --sanitize, LeakSanitizer told about
# Open MPI's own process-lifetime allocations (tests/lsan_mpi.supp; the slow unwinder, so that
# the stacks reach the MPI libraries the suppressions name).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
n=$1
shift
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Containers often have a small /dev/shm and no CMA: plain copies through the shared segment.
export OMPI_MCA_btl_vader_single_copy_mechanism=none
export OMP_NUM_THREADS=1
env=(-x OMP_NUM_THREADS)
if [ -n "${ASAN_OPTIONS:-}" ]; then
    export ASAN_OPTIONS="$ASAN_OPTIONS:fast_unwind_on_malloc=0"
    export LSAN_OPTIONS="suppressions=$here/lsan_mpi.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
    env+=(-x ASAN_OPTIONS -x LSAN_OPTIONS)
fi
[ -n "${UBSAN_OPTIONS:-}" ] && env+=(-x UBSAN_OPTIONS)
exec mpirun -np "$n" --oversubscribe "${env[@]}" "$@"
