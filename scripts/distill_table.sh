#!/usr/bin/env bash
# distill_table.sh: the dynamic-vs-fixed temperature measurement of cli/distill.md, on the CPU.
#
#   scripts/distill_table.sh [OUT_DIR]          (default runs/distill-table)
#
# 1. Trains the teacher once with the existing SFT (configs/distill-teacher.yaml) into
#    OUT_DIR/teacher (skipped when it is already there).
# 2. For each seed, distils it into the student of configs/distill-student.yaml once with the
#    dynamic temperature and once per fixed temperature, all for the same number of steps on the
#    same teacher-written examples (one top-k cache per seed, shared by its runs).
# 3. Prints a Markdown table: held-out perplexity of the student on teacher-written text and
#    held-out pass@1 after the last step, mean and standard deviation over the seeds, and the
#    dynamic setting against the best fixed one.
#
# Environment: RLPIPE_BIN (default build/rlpipe), SEEDS (default "1 2 3"), FIXED_TAUS (default
# "0.5 1 2 4"), STEPS (default: the config's distill.steps), EXTRA (more --set arguments for
# every distill run). Everything is written under OUT_DIR; rerunning reuses the teacher and the
# caches and replaces the students.
set -euo pipefail

BIN=${RLPIPE_BIN:-build/rlpipe}
OUT=${1:-runs/distill-table}
SEEDS=${SEEDS:-"1 2 3"}
FIXED=${FIXED_TAUS:-"0.5 1 2 4"}
STEP_SET=()
[ -n "${STEPS:-}" ] && STEP_SET=(--set "distill.steps=$STEPS")
read -r -a EXTRA_SET <<<"${EXTRA:-}"

[ -x "$BIN" ] || { echo "distill_table: $BIN not found (build first, or set RLPIPE_BIN)" >&2; exit 2; }
command -v sqlite3 >/dev/null || { echo "distill_table: needs the sqlite3 command" >&2; exit 2; }
mkdir -p "$OUT"
t0=$(date +%s)

if [ ! -f "$OUT/teacher/config.json" ]; then
    echo "== teacher: rlpipe sft configs/distill-teacher.yaml" >&2
    rm -rf "$OUT/teacher-run"
    "$BIN" sft configs/distill-teacher.yaml --set run.out_dir="$OUT/teacher-run" \
        --set logging.progress=never --out "$OUT/teacher" >"$OUT/teacher.txt"
fi
teacher_p1=$(sqlite3 "$OUT/teacher-run/rollouts.db" \
    "SELECT printf('%.1f', 100 * pass_at_1) FROM evals WHERE split = 'heldout' ORDER BY step DESC LIMIT 1" 2>/dev/null || echo "?")

# one distill run: NAME SEED then --set arguments
run() {
    local name=$1 seed=$2
    shift 2
    rm -rf "${OUT:?}/$name"
    echo "== $name" >&2
    "$BIN" distill configs/distill-student.yaml --set run.name="$name" --set run.seed="$seed" \
        --set run.out_dir="$OUT/$name" --set distill.teacher="$OUT/teacher" \
        --set distill.cache_path="$OUT/cache-seed$seed.bin" --set logging.progress=never \
        "${STEP_SET[@]}" "${EXTRA_SET[@]}" "$@" >"$OUT/$name.txt"
}

# final held-out perplexity and pass@1 of a run, as "ppl p1"
result() {
    sqlite3 -separator ' ' "$OUT/$1/rollouts.db" \
        "SELECT (SELECT perplexity FROM evals WHERE split = 'teacher_text' ORDER BY step DESC LIMIT 1),
                (SELECT pass_at_1 FROM evals WHERE split = 'heldout' ORDER BY step DESC LIMIT 1)"
}

rows=$(mktemp)
trap 'rm -f "$rows"' EXIT
for seed in $SEEDS; do
    run "dynamic-s$seed" "$seed" --set distill.tau=dynamic
    echo "dynamic $seed $(result "dynamic-s$seed")" >>"$rows"
    for tau in $FIXED; do
        run "fixed$tau-s$seed" "$seed" --set distill.tau=fixed --set distill.tau_fixed="$tau"
        echo "fixed-$tau $seed $(result "fixed$tau-s$seed")" >>"$rows"
    done
done
steps=$(sqlite3 "$OUT/dynamic-s${SEEDS%% *}/rollouts.db" "SELECT MAX(step) FROM distill_steps")

echo
echo "Teacher held-out pass@1: ${teacher_p1}%. Student: $steps distillation steps; seeds: $SEEDS;"
echo "$(($(date +%s) - t0)) s in all."
echo
awk -v order="dynamic $(for t in $FIXED; do printf 'fixed-%s ' "$t"; done)" '
    { n[$1]++; p[$1] += $3; pp[$1] += $3 * $3; a[$1] += $4; aa[$1] += $4 * $4 }
    function sd(s, ss, k) { v = k > 1 ? (ss - s * s / k) / (k - 1) : 0; return sqrt(v > 0 ? v : 0) }
    END {
        print "| tau | held-out perplexity on teacher text (mean ± sd) | held-out pass@1 (mean ± sd) |"
        print "|---|---|---|"
        m = split(order, names, " ")
        best = ""
        for (i = 1; i <= m; i++) {
            s = names[i]
            if (!(s in n)) continue
            mp = p[s] / n[s]; ma = a[s] / n[s]
            printf "| %s | %.4f ± %.4f | %.1f%% ± %.1f |\n", s, mp, sd(p[s], pp[s], n[s]), 100 * ma, 100 * sd(a[s], aa[s], n[s])
            if (s != "dynamic" && (best == "" || mp < p[best] / n[best])) best = s
        }
        if (best != "" && ("dynamic" in n)) {
            d = p["dynamic"] / n["dynamic"]; b = p[best] / n[best]
            printf "\nBest fixed by perplexity: %s. Dynamic vs best fixed: perplexity %+.1f%%, pass@1 %+.1f points.\n", best, 100 * (d - b) / b, 100 * (a["dynamic"] / n["dynamic"] - a[best] / n[best])
        }
    }' "$rows"
echo
echo "Per run (setting, seed, perplexity, pass@1):"
sort -k1,1 -k2,2n "$rows" | awk '{ printf "    %s seed %s: %.4f, %.1f%%\n", $1, $2, $3, 100 * $4 }'
