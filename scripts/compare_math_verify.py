#!/usr/bin/env python3
"""Compare rlpipe's math verifier with Hugging Face's Math-Verify on a graded table.

Run by hand (CI never needs it). It installs nothing: Math-Verify must already be importable
(`pip install math-verify` in a virtual environment), rlpipe must be built (build/rlpipe).

    python3 scripts/compare_math_verify.py [--table tests/data/math_table.tsv]
        [--rlpipe build/rlpipe] [--junk 5] [--junk-kb 300] [--repeat 20] [--show]

The table has one row per case: kind, reference, completion, label (1: a careful grader accepts
the completion's final answer for the reference; 0: not). --junk adds that many rows of random
LaTeX (--junk-kb KB each, label 0) whose reference is the last number in the junk, the worst
case for a verifier that picks the last number it sees.

Both verifiers grade every row the way an RL trainer calls them:
  rlpipe       `rlpipe verify --only accuracy --extract auto --threads 1` on JSON lines
               ({"answer": reference, "completion": completion}); the score is 1 or 0.
  Math-Verify  verify(parse(reference), parse(completion)) with parse()'s and verify()'s
               defaults; the reference is wrapped in \\boxed{} unless it already holds a box or
               a $ (as veRL does), so that bare LaTeX references parse.

Printed: agreement with the label (overall and per kind), wrong answers accepted (label 0,
verifier 1), right answers refused, and the time per row of each, single-threaded. rlpipe's time
is measured on --repeat copies of the table in one process (start-up included once).
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import defaultdict


def load_table(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            parts = line.split("\t")
            if len(parts) != 4 or parts[3] not in ("0", "1"):
                sys.exit(f"{path}:{n}: expected kind<TAB>reference<TAB>completion<TAB>0|1")
            kind, gold, comp, label = parts
            rows.append((kind, gold.replace("<NL>", "\n"), comp.replace("<NL>", "\n"), int(label)))
    return rows


JUNK_TOKENS = [
    "\\frac{", "}", "{", "\\sqrt{", "^", "_", "x", "y", "n", "+", "-", "=", "\\cdot", "\\alpha",
    "\\beta", "\\left(", "\\right)", "(", ")", "[", "]", "$", "$$", "\\[", "\\]", "&", "\\\\",
    " ", " ", " ", "\n", "\\int", "\\sum_{", "\\infty", "\\pi", ",", ".", "\\boxed{", "\\text{",
    "\\mathrm{", "\\%", "\\over", "\\begin{align}", "\\end{align}", "\\le", "<", ">", "|",
] + [str(d) for d in range(10)] * 3


def junk_rows(count, kb, seed=9):
    rng = random.Random(seed)
    rows = []
    for k in range(count):
        parts, size = [], 0
        while size < kb * 1024:
            t = rng.choice(JUNK_TOKENS)
            parts.append(t)
            size += len(t)
        text = "".join(parts)
        digits = [i for i, c in enumerate(text) if c.isdigit()]
        last = text[digits[-1]] if digits else "7"
        rows.append(("junk", last, text, 0))
    return rows


def run_rlpipe(binary, rows, repeat):
    lines = "".join(json.dumps({"answer": g, "completion": c}) + "\n" for _, g, c, _ in rows)
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False, encoding="utf-8") as f:
        f.write(lines)
        one = f.name
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False, encoding="utf-8") as f:
        f.write(lines * repeat)
        many = f.name
    cmd = [binary, "verify", "--only", "accuracy", "--extract", "auto", "--threads", "1"]
    try:
        with open(one, encoding="utf-8") as inp:
            out = subprocess.run(cmd, stdin=inp, capture_output=True, text=True)
        if out.returncode not in (0,):
            sys.exit(f"rlpipe verify failed ({out.returncode}): {out.stderr.strip()}")
        scores = [int(json.loads(l)["scores"]["accuracy"]) for l in out.stdout.splitlines()]
        t0 = time.perf_counter()
        with open(many, encoding="utf-8") as inp:
            subprocess.run(cmd, stdin=inp, stdout=subprocess.DEVNULL, check=True)
        secs = time.perf_counter() - t0
    finally:
        os.unlink(one)
        os.unlink(many)
    return scores, secs / (len(rows) * repeat)


def run_math_verify(rows):
    try:
        from math_verify import parse, verify
    except ImportError:
        sys.exit("Math-Verify is not installed: pip install math-verify (in a virtual environment)")
    scores, secs = [], []
    for _, gold, comp, _ in rows:
        g = gold if ("\\boxed" in gold or "$" in gold) else "\\boxed{" + gold + "}"
        t0 = time.perf_counter()
        try:
            ok = verify(parse(g), parse(comp))
        except Exception:  # a crash is a refusal, as in a trainer
            ok = False
        secs.append(time.perf_counter() - t0)
        scores.append(1 if ok else 0)
    return scores, secs


def summary(name, rows, scores):
    agree = sum(int(s == r[3]) for r, s in zip(rows, scores))
    fa = sum(int(s == 1 and r[3] == 0) for r, s in zip(rows, scores))
    fr = sum(int(s == 0 and r[3] == 1) for r, s in zip(rows, scores))
    n = len(rows)
    print(f"{name:12s} agrees on {agree}/{n} ({100.0 * agree / n:.1f}%), "
          f"wrong answers accepted: {fa}, right answers refused: {fr}")
    return agree, fa


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--table", default=os.path.join(root, "tests/data/math_table.tsv"))
    ap.add_argument("--rlpipe", default=os.path.join(root, "build/rlpipe"))
    ap.add_argument("--junk", type=int, default=5, help="rows of random LaTeX to add")
    ap.add_argument("--junk-kb", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=20, help="copies of the table timed for rlpipe")
    ap.add_argument("--show", action="store_true", help="list the rows where the two differ")
    a = ap.parse_args()

    rows = load_table(a.table) + junk_rows(a.junk, a.junk_kb)
    rl, rl_t = run_rlpipe(a.rlpipe, rows, a.repeat)
    table = [r for r in rows if r[0] != "junk"]
    _, rl_table_t = run_rlpipe(a.rlpipe, table, a.repeat)
    mv, mv_secs = run_math_verify(rows)
    mv_t = sum(mv_secs) / len(rows)
    mv_table_t = sum(t for r, t in zip(rows, mv_secs) if r[0] != "junk") / len(table)

    print(f"{len(rows)} rows ({sum(r[3] for r in rows)} correct answers, "
          f"{sum(1 - r[3] for r in rows)} wrong), {a.junk} of them {a.junk_kb} KB of random LaTeX")
    rl_agree, rl_fa = summary("rlpipe", rows, rl)
    mv_agree, mv_fa = summary("Math-Verify", rows, mv)
    print(f"time per row, one thread: rlpipe {rl_t * 1e6:.1f} us, Math-Verify {mv_t * 1e3:.2f} ms "
          f"(rlpipe {mv_t / rl_t:.0f}x faster)")
    print(f"  without the junk rows: rlpipe {rl_table_t * 1e6:.1f} us, Math-Verify "
          f"{mv_table_t * 1e3:.2f} ms (rlpipe {mv_table_t / rl_table_t:.0f}x faster)")

    kinds = defaultdict(lambda: [0, 0, 0])
    for r, x, y in zip(rows, rl, mv):
        k = kinds[r[0]]
        k[0] += 1
        k[1] += int(x == r[3])
        k[2] += int(y == r[3])
    print(f"\n{'kind':16s} {'rows':>5s} {'rlpipe':>7s} {'Math-Verify':>12s}")
    for name, (n, x, y) in kinds.items():
        print(f"{name:16s} {n:5d} {x:7d} {y:12d}")

    if a.show:
        print("\nrows where the verifiers differ or either disagrees with the label:")
        for r, x, y in zip(rows, rl, mv):
            if x != r[3] or y != r[3]:
                c = r[2] if len(r[2]) < 120 else r[2][:117] + "..."
                print(f"  [{r[0]}] label {r[3]} rlpipe {x} Math-Verify {y} | {r[1]!r} | {c!r}")

    ok = rl_agree > mv_agree and rl_fa <= mv_fa and mv_table_t / rl_table_t >= 100
    print(f"\ntarget (more agreement, no more false accepts, >= 100x speed): "
          f"{'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
