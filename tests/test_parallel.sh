#!/usr/bin/env bash
# test_parallel: data parallel over 2 MPI ranks on the CPU (policy/PARALLEL.md) against one
# process with the same total batch, through the binary:
#   1. `train` (RL only): the logged rollouts of every rank are the one process's, row for row
#      (per-sample random streams: the samples do not depend on which rank draws them); the
#      step statistics (loss, grad norm, KL, ...) agree to 1e-4 relative and the weights after
#      3 steps to 1e-4 absolute (measured: ~2e-6; see BOUND below);
#   2. ZeRO-1 (parallel.zero: 1) gives bit-for-bit the weights and optimizer state of the plain
#      all-reduce (2 ranks: a + b is the same sum in either layout);
#   3. `sft` and `eval`: the same (weights to 1e-4; eval's pass@1 table row identical);
#   4. a checkpoint written by one process resumes under 2 ranks with ZeRO-1 (reshard);
#   5. SIGKILL of rank 1 mid-run ends the job with mpirun's error naming the signal, and
#      `--resume` under 2 ranks finishes with exactly the weights and log of an uninterrupted run.
# The ranks start through tests/mpirun.sh (as root, --oversubscribe on 2 cores, 1 OpenMP thread
# per rank, the sanitizer settings for Open MPI).
set -u
BIN=${RLPIPE_BIN:-build/rlpipe}
CFG=configs/tiny.yaml
command -v mpirun >/dev/null || { echo "SKIP: no mpirun (scripts/install-deps.sh installs Open MPI)"; exit 77; }
export OMP_NUM_THREADS=1
MPI=(bash "$(dirname "$0")/mpirun.sh" 2)
# Max |w_1 - w_2| over every weight. float32 gradient sums are reassociated (two partial sums
# instead of one), a relative change of ~1e-7 per step, which Adam turns into weight changes
# of at most ~lr x 1e-3 for normal gradients: 1e-4 after 3 steps at lr 3e-3 leaves a margin of
# 50x over what we measure, while one step of a wrong reduction moves weights by ~lr = 3e-3.
BOUND=1e-4

T=$(mktemp -d /tmp/rlpipe-parallel.XXXXXX)
trap 'rm -rf "$T"' EXIT
fails=0
pass() { echo "ok   $*"; }
fail() { echo "FAIL $*"; fails=$((fails + 1)); }

micro() { # the tiny model, small enough for seconds per run
    echo --set model.hidden_size=32 --set model.num_hidden_layers=2 \
        --set model.num_attention_heads=4 --set model.num_key_value_heads=2 \
        --set model.intermediate_size=48 --set sft.enabled=false --set sft.steps=6 \
        --set sft.batch_size=7 --set sft.warmup_steps=2 --set algorithm.steps=3 \
        --set rollout.prompts_per_step=5 --set rollout.group_size=4 \
        --set rollout.max_new_tokens=24 --set eval.n=9 --set eval.k=2 --set eval.every=0 \
        --set checkpoint.every=1 --set checkpoint.keep=0 --set data.heldout_size=20 \
        --set logging.progress=never --set algorithm.lr=3e-3 --set run.threads=1 \
        --set run.out_dir="$1"
}

# max |a - b| over two safetensors files' float32 data (the same writer, so the same layout).
maxdiff() {
    local na nb
    na=$(od -A n -t u8 -N 8 "$1" | tr -d ' ')
    nb=$(od -A n -t u8 -N 8 "$2" | tr -d ' ')
    [ "$na" = "$nb" ] || { echo inf; return; }
    paste -d' ' <(od -A n -v -t f4 -w4 -j $((8 + na)) "$1") <(od -A n -v -t f4 -w4 -j $((8 + nb)) "$2") |
        awk '{d = $1 - $2; if (d < 0) d = -d; if (d > m) m = d; n++} END {if (n == 0) print "inf"; else printf "%.3g\n", m}'
}
within() { awk -v d="$1" -v b="$2" 'BEGIN {exit !(d <= b)}'; }

rollouts() { # every logged rollout of the RL run, in order, without ids and timestamps
    # (sample_logprob_sum: see logprobs)
    sqlite3 "$1/rollouts.db" "SELECT r.step, group_id, sample_idx, prompt_idx, task, prompt,
        completion, answer, n_tokens, n_prompt_tokens, finish_reason, reward, advantage
        FROM rollouts r JOIN runs ON runs.id = r.run_id WHERE runs.name = 'tiny' ORDER BY r.id"
}
n_rollouts() { sqlite3 "$1/rollouts.db" "SELECT count(*) FROM rollouts"; }
# The summed sampling log-probs: equal at step 1; later they come from weights that differ by the
# reassociation of float32 sums (a relative 1e-6 is allowed).
logprobs_agree() {
    paste -d' ' <(sqlite3 "$1/rollouts.db" "SELECT sample_logprob_sum FROM rollouts ORDER BY id") \
        <(sqlite3 "$2/rollouts.db" "SELECT sample_logprob_sum FROM rollouts ORDER BY id") |
        awk '{d = $1 - $2; if (d < 0) d = -d; s = $1 < 0 ? -$1 : $1; if (d > 1e-6 * s + 1e-9) bad = 1; n++}
             END {exit bad || n == 0}'
}
scores() {
    sqlite3 "$1/rollouts.db" "SELECT rollout_id, verifier, score, status, detail FROM scores ORDER BY rollout_id, verifier"
}
steps() { # step statistics that must agree (times and rates do not)
    sqlite3 -separator ' ' "$1/rollouts.db" "SELECT step, loss, kl, entropy, clip_frac, grad_norm,
        reward_mean, accuracy, n_rollouts FROM steps s JOIN runs ON runs.id = s.run_id
        WHERE runs.name = 'tiny' ORDER BY step"
}
steps_agree() { # two step tables, numbers to 1e-4 relative (1e-9 absolute)
    paste -d' ' <(steps "$1") <(steps "$2") | awk '{
        h = NF / 2; if (NF != 18) bad = 1
        for (i = 1; i <= h; i++) { a = $i; b = $(i + h); d = a - b; if (d < 0) d = -d
            s = (a < 0 ? -a : a); if (d > 1e-9 && d > 1e-4 * s) { bad = 1; print "  col " i ": " a " vs " b } }
    } END { exit bad }'
}

# ---- 1. train: 1 process vs 2 ranks ----------------------------------------------------------
# With an entropy bonus and a KL term every sample has a gradient (the micro model's rewards are
# mostly 0), so the weights move every step; the KL term also needs the reference model, which
# rank 0 writes and every rank reads.
signal() { micro "$1"; echo --set algorithm.entropy_coef=0.01 --set algorithm.kl_coef=0.02; }
"$BIN" train "$CFG" $(signal "$T/one") >"$T/one.log" 2>&1 || { cat "$T/one.log"; fail "1 process train"; }
"${MPI[@]}" "$BIN" train "$CFG" $(signal "$T/two") >"$T/two.log" 2>&1 ||
    { cat "$T/two.log"; fail "2-rank train"; }
n1=$(n_rollouts "$T/one")
if [ "$n1" -eq 60 ] && [ "$(rollouts "$T/one" | md5sum)" = "$(rollouts "$T/two" | md5sum)" ] &&
    [ "$(scores "$T/one" | md5sum)" = "$(scores "$T/two" | md5sum)" ] &&
    logprobs_agree "$T/one" "$T/two"; then
    pass "2 ranks log the same $n1 rollouts and verifier scores as 1 process"
else
    fail "rollouts differ ($n1 rows with 1 process, $(n_rollouts "$T/two") with 2 ranks)"
    diff <(rollouts "$T/one") <(rollouts "$T/two") | head -5
fi
if steps_agree "$T/one" "$T/two"; then pass "step statistics agree (global loss normalisers)"
else fail "step statistics differ"; fi
d=$(maxdiff "$T/one/final/model.safetensors" "$T/two/final/model.safetensors")
if within "$d" $BOUND; then pass "weights after 3 steps: max |diff| $d <= $BOUND"
else fail "weights after 3 steps differ by $d (> $BOUND)"; fi
# The one process's weights must have moved, or the comparison proves nothing.
d0=$(maxdiff "$T/one/final/model.safetensors" "$T/one/checkpoints/step-00000001/model/model.safetensors")
if within 1e-3 "$d0"; then pass "the weights moved ($d0 between step 1 and step 3)"
else fail "the weights barely moved ($d0)"; fi
# The default config (no KL, no entropy) leaves zero-advantage samples out of the passes but
# counts them in the normalisers; a rank may hold no trained row at all.
"$BIN" train "$CFG" $(micro "$T/one0") >"$T/one0.log" 2>&1 || { cat "$T/one0.log"; fail "1 process train"; }
"${MPI[@]}" "$BIN" train "$CFG" $(micro "$T/two0") >"$T/two0.log" 2>&1 ||
    { cat "$T/two0.log"; fail "2-rank train"; }
if steps_agree "$T/one0" "$T/two0" && [ "$(rollouts "$T/one0" | md5sum)" = "$(rollouts "$T/two0" | md5sum)" ]; then
    pass "left-out zero-advantage samples: the same rollouts and step statistics"
else fail "left-out samples: step statistics differ"; fi

# ---- 2. ZeRO-1 == plain all-reduce -------------------------------------------------------------
"${MPI[@]}" "$BIN" train "$CFG" $(signal "$T/zero") --set parallel.zero=1 >"$T/zero.log" 2>&1 ||
    { cat "$T/zero.log"; fail "2-rank ZeRO-1 train"; }
if cmp -s "$T/two/final/model.safetensors" "$T/zero/final/model.safetensors" &&
    cmp -s "$T/two/checkpoints/step-00000003/optimizer.safetensors" \
        "$T/zero/checkpoints/step-00000003/optimizer.safetensors"; then
    pass "ZeRO-1: weights and AdamW moments bit-for-bit those of the all-reduce"
else fail "ZeRO-1 differs from the all-reduce"; fi

# ---- 3. sft and eval ---------------------------------------------------------------------------
"$BIN" sft "$CFG" $(micro "$T/sft1") --set sft.enabled=true >"$T/sft1.log" 2>&1 ||
    { cat "$T/sft1.log"; fail "1 process sft"; }
"${MPI[@]}" "$BIN" sft "$CFG" $(micro "$T/sft2") --set sft.enabled=true --set parallel.zero=1 \
    >"$T/sft2.log" 2>&1 || { cat "$T/sft2.log"; fail "2-rank sft"; }
d=$(maxdiff "$T/sft1/sft/model.safetensors" "$T/sft2/sft/model.safetensors")
if within "$d" $BOUND; then pass "sft (batch 7 over 2 ranks, ZeRO-1): max |diff| $d"
else fail "sft weights differ by $d"; fi
row() { grep '^| ' "$1" | tail -1 | awk -F'|' '{print $3 $4 $5 $6 $7 $8 $9 $10 $11 $12 $13}'; }
"$BIN" eval "$CFG" $(micro "$T/one") --model "$T/one/final" >"$T/ev1.log" 2>"$T/ev1.err" ||
    { cat "$T/ev1.err"; fail "1 process eval"; }
"${MPI[@]}" "$BIN" eval "$CFG" $(micro "$T/two") --model "$T/one/final" --set run.name=tiny2 \
    >"$T/ev2.log" 2>"$T/ev2.err" || { cat "$T/ev2.err"; fail "2-rank eval"; }
if [ -n "$(row "$T/ev1.log")" ] && [ "$(row "$T/ev1.log")" = "$(row "$T/ev2.log")" ] &&
    [ "$(grep -c '^| ' "$T/ev2.log")" = 2 ]; then
    pass "eval sharded over 2 ranks: the same table row, printed once"
else fail "eval differs: '$(row "$T/ev1.log")' vs '$(row "$T/ev2.log")'"; fi

# ---- 4. reshard: a 1-process checkpoint resumed by 2 ranks with ZeRO-1 --------------------------
cp -r "$T/one" "$T/re"
rm -rf "$T/re/checkpoints/step-00000003"
"${MPI[@]}" "$BIN" train "$CFG" $(signal "$T/re") --set parallel.zero=1 --resume >"$T/re.log" 2>&1 ||
    { cat "$T/re.log"; fail "2-rank resume of a 1-process checkpoint"; }
d=$(maxdiff "$T/one/final/model.safetensors" "$T/re/final/model.safetensors")
if within "$d" $BOUND && [ "$(rollouts "$T/one" | md5sum)" = "$(rollouts "$T/re" | md5sum)" ] &&
    logprobs_agree "$T/one" "$T/re"; then
    pass "1-process checkpoint resumed by 2 ZeRO-1 ranks: same rollouts, weights within $d"
else fail "reshard resume: weights differ by $d or rollouts differ"; fi

# ---- 5. SIGKILL of one rank, then --resume -----------------------------------------------------
long() { signal "$1"; echo --set algorithm.steps=12; }
"${MPI[@]}" "$BIN" train "$CFG" $(long "$T/full") >"$T/full.log" 2>&1 ||
    { cat "$T/full.log"; fail "uninterrupted 12-step run"; }
"${MPI[@]}" "$BIN" train "$CFG" $(long "$T/kill") >"$T/kill.log" 2>&1 &
job=$!
victim=""
for _ in $(seq 1 1200); do
    if [ -d "$T/kill/checkpoints/step-00000002" ]; then
        # rank 1 of this job: its command line names $T/kill, its environment its rank
        for d in /proc/[0-9]*; do
            if tr '\0' '\n' <"$d/cmdline" 2>/dev/null | grep -qx "run.out_dir=$T/kill" &&
                tr '\0' '\n' <"$d/environ" 2>/dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=1'; then
                victim=${d#/proc/}
            fi
        done
        break
    fi
    sleep 0.02
done
if [ -n "$victim" ]; then kill -9 "$victim"; fi
wait $job
rc=$?
if [ -n "$victim" ] && [ $rc -ne 0 ] && grep -q "signal 9" "$T/kill.log"; then
    pass "SIGKILL of rank 1 ended the job (mpirun exit $rc: $(grep -m1 'signal 9' "$T/kill.log" | sed 's/^ *//'))"
else
    fail "SIGKILL of rank 1 (pid '${victim}') did not end the job with an error (exit $rc)"
    tail -20 "$T/kill.log"
fi
"${MPI[@]}" "$BIN" train "$CFG" $(long "$T/kill") --resume >"$T/resume.log" 2>&1 ||
    { cat "$T/resume.log"; fail "--resume after the SIGKILL"; }
if cmp -s "$T/full/final/model.safetensors" "$T/kill/final/model.safetensors" &&
    [ "$(rollouts "$T/full" | md5sum)" = "$(rollouts "$T/kill" | md5sum)" ] &&
    [ "$(sqlite3 "$T/full/rollouts.db" "SELECT sample_logprob_sum FROM rollouts ORDER BY step, group_id, sample_idx" | md5sum)" = \
      "$(sqlite3 "$T/kill/rollouts.db" "SELECT sample_logprob_sum FROM rollouts ORDER BY step, group_id, sample_idx" | md5sum)" ]; then
    pass "--resume finished the killed run exactly (weights bit-for-bit, the same $(n_rollouts "$T/kill") rollouts)"
else fail "--resume after the kill differs from the uninterrupted run"; fi

[ $fails -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "all parallel checks passed"
