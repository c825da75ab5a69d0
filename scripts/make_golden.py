#!/usr/bin/python3
"""make_golden.py: Hugging Face golden fixtures for rlpipe's Qwen2 model (llm.c style).

Run by hand (NOT needed by the build or CI): it needs torch and transformers, e.g. Debian's
python3-torch with transformers 4.44 for /usr/bin/python3.

  /usr/bin/python3 scripts/make_golden.py [--out tests/golden]
      Writes one directory per case under --out: a tiny random Qwen2 checkpoint saved by
      transformers itself (save_pretrained, safetensors) and expected.json with transformers'
      per-token log-probabilities (float32, attn_implementation="eager") for a few sequences;
      some cases also grads.safetensors, the gradient of the summed log-probabilities of all
      sequences with respect to every parameter (Hugging Face tensor names).

  /usr/bin/python3 scripts/make_golden.py check MODEL_DIR OUTPUT.jsonl
      Loads MODEL_DIR (e.g. written by `rlpipe model init` or `rlpipe train`) with
      AutoModelForCausalLM.from_pretrained and compares its log-probabilities with the lines of
      OUTPUT.jsonl ({"ids": [...], "logprobs": [...]}, e.g. `rlpipe logprobs --echo` output).
      Exit 0 when every value agrees within 1e-4.

Cases (all weights random with a scale large enough that the log-probabilities spread over
tens of nats, so a wrong wiring cannot hide in a near-uniform distribution):
  f32_tied_gqa      F32, tied embeddings, NH=4 NKV=2; grads
  f32_untied_mqa    F32, untied lm_head, NH=4 NKV=1 (multi-query), rope_theta 1e6, eps 1e-5; grads
  bf16_untied_mha   BF16 weights (torch_dtype bfloat16), NH=NKV=2, reference in float32
  sliding_window    use_sliding_window, sliding_window=4, max_window_layers=1 of 3 layers,
                    sequences up to 16 tokens; grads
  sharded_mha       NH=NKV=4, untied, save_pretrained(max_shard_size) -> several shards + index
  tied_extra_lm_head  tie_word_embeddings true and the file also holds a redundant copy of the
                    embedding as lm_head.weight (old Qwen1.5 exports); also records what
                    transformers does when that copy differs (see write_case)

Sliding window in transformers 4.44: the eager and sdpa Qwen2 attention ignore the window
entirely (they warn "Sliding Window Attention is enabled but not implemented for `eager`"; this
script checks that the unpatched eager output equals the no-window output); only the
flash-attention-2 path applies it, with window_size=(w, w), i.e. w+1 keys including the query.
Current transformers (masking_utils.sliding_window_overlay: kv_idx > q_idx - sliding_window, and
flash window_size=(w-1, w-1)) uses exactly w keys on every path, on layers
i >= max_window_layers (Qwen2Config.layer_types). rlpipe implements the current rule, so this
script reproduces it in 4.44's eager attention by adding that mask to the causal mask of the
window layers.
"""
import argparse
import json
import math
import os
import shutil
import sys

import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, Qwen2Config, Qwen2ForCausalLM

CASES = [
    dict(name="f32_tied_gqa", hidden=32, layers=2, heads=4, kv=2, ff=64, vocab=128, tie=True,
         theta=10000.0, eps=1e-6, dtype="float32", grads=True, lengths=[1, 2, 7, 13]),
    dict(name="f32_untied_mqa", hidden=32, layers=3, heads=4, kv=1, ff=64, vocab=200, tie=False,
         theta=1e6, eps=1e-5, dtype="float32", grads=True, lengths=[0, 3, 9, 14]),
    dict(name="bf16_untied_mha", hidden=32, layers=2, heads=2, kv=2, ff=96, vocab=160, tie=False,
         theta=10000.0, eps=1e-6, dtype="bfloat16", grads=False, lengths=[2, 6, 11]),
    dict(name="sliding_window", hidden=32, layers=3, heads=4, kv=2, ff=64, vocab=128, tie=True,
         theta=10000.0, eps=1e-6, dtype="float32", grads=True, lengths=[3, 9, 16],
         window=4, max_window_layers=1),
    dict(name="sharded_mha", hidden=32, layers=2, heads=4, kv=4, ff=64, vocab=256, tie=False,
         theta=10000.0, eps=1e-6, dtype="float32", grads=False, lengths=[5, 12],
         shard="40KB"),
    dict(name="tied_extra_lm_head", hidden=32, layers=2, heads=4, kv=2, ff=64, vocab=128,
         tie=True, theta=10000.0, eps=1e-6, dtype="float32", grads=False, lengths=[4, 10],
         extra_lm_head=True),
]


def make_config(c):
    cfg = Qwen2Config(
        vocab_size=c["vocab"], hidden_size=c["hidden"], intermediate_size=c["ff"],
        num_hidden_layers=c["layers"], num_attention_heads=c["heads"],
        num_key_value_heads=c["kv"], max_position_embeddings=64, rope_theta=c["theta"],
        rms_norm_eps=c["eps"], tie_word_embeddings=c["tie"], bos_token_id=None,
        eos_token_id=c["vocab"] - 1, use_sliding_window="window" in c,
        sliding_window=c.get("window", 4096), max_window_layers=c.get("max_window_layers", 28),
        attn_implementation="eager")
    return cfg


def randomize(model, gen):
    """Weights with O(1) activations: embedding std 0.5 (tied: the logits then spread a few
    nats), linear weights N(0, 1/fan_in), biases N(0, 0.2^2), norm weights 1 + N(0, 0.2^2)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            elif name.endswith(".bias"):
                p.copy_(0.2 * torch.randn(p.shape, generator=gen))
            elif name == "model.embed_tokens.weight":
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[1]))


def window_patch(model, window, first_layer):
    """Adds the sliding-window mask (keys kv_idx <= q_idx - window masked) to the eager attention
    of layers >= first_layer, the way current transformers' masking_utils builds it."""
    def wrap(attn):
        inner = attn.forward

        def forward(hidden_states, attention_mask=None, **kw):
            T = hidden_states.shape[1]
            if attention_mask is None:
                raise RuntimeError("expected the 4D causal mask of the eager path")
            m = attention_mask[:, :, :, :T].clone()
            q = torch.arange(T).view(-1, 1)
            k = torch.arange(T).view(1, -1)
            m[:, :, (k <= q - window)] = torch.finfo(m.dtype).min
            return inner(hidden_states, attention_mask=m, **kw)
        attn.forward = forward
    for i, layer in enumerate(model.model.layers):
        if i >= first_layer:
            wrap(layer.self_attn)


def token_logprobs(model, ids):
    """log p(ids[t+1] | ids[..t]) for t < len-1, float32, one sequence (no padding)."""
    if len(ids) < 2:
        return torch.zeros(0)
    x = torch.tensor([ids], dtype=torch.long)
    logits = model(input_ids=x, use_cache=False).logits[0].float()
    lp = torch.log_softmax(logits, dim=-1)
    return lp[:-1].gather(1, x[0, 1:].view(-1, 1)).view(-1)


def load_eager(path):
    return AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32,
                                                attn_implementation="eager")


def write_case(c, out_root, gen):
    d = os.path.join(out_root, c["name"])
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    model = Qwen2ForCausalLM(make_config(c)).float()
    randomize(model, gen)
    if c["dtype"] == "bfloat16":
        model = model.to(torch.bfloat16)
    kw = {"max_shard_size": c["shard"]} if "shard" in c else {}
    model.save_pretrained(d, safe_serialization=True, **kw)

    note = []
    if c.get("extra_lm_head"):
        # What transformers does with a tied config whose file also holds a DIFFERENT lm_head
        # (checked on a scratch copy): the loader copies every key into the module that owns it,
        # embed_tokens first and lm_head last, and both share one Parameter, so lm_head.weight's
        # values end up as the embedding too. rlpipe (like vLLM) keeps the embedding instead;
        # the committed fixture holds what real exports hold, an identical copy.
        st = os.path.join(d, "model.safetensors")
        tensors = load_file(st)
        assert "lm_head.weight" not in tensors
        scratch = d + ".scratch"
        shutil.copytree(d, scratch)
        other = dict(tensors)
        other["lm_head.weight"] = torch.randn(c["vocab"], c["hidden"], generator=gen)
        save_file(other, os.path.join(scratch, "model.safetensors"), metadata={"format": "pt"})
        probe = load_eager(scratch)
        lm_wins = torch.equal(probe.model.embed_tokens.weight, other["lm_head.weight"])
        shutil.rmtree(scratch)
        note.append("transformers %s with a different redundant lm_head.weight: its values "
                    "become the shared embedding/output matrix: %s (rlpipe keeps "
                    "model.embed_tokens.weight, as vLLM does); this fixture's lm_head.weight is an "
                    "identical copy" % (transformers.__version__, lm_wins))
        tensors["lm_head.weight"] = tensors["model.embed_tokens.weight"].clone()
        save_file(tensors, st, metadata={"format": "pt"})

    # The reference: what from_pretrained makes of the directory, in float32, eager attention.
    ref = load_eager(d)
    ref.eval()
    seqs = []
    for n in c["lengths"]:
        ids = torch.randint(0, c["vocab"], (n,), generator=gen).tolist()
        if n >= 3:  # the extreme ids
            ids[1], ids[2] = 0, c["vocab"] - 1
        seqs.append(ids)

    if "window" in c:
        with torch.no_grad():
            plain = [token_logprobs(ref, s) for s in seqs]
            nowin = load_eager(d)
            nowin.config.use_sliding_window = False
            nowin_lp = [token_logprobs(nowin, s) for s in seqs]
        ignored = all(torch.equal(a, b) for a, b in zip(plain, nowin_lp))
        note.append("transformers %s eager attention ignores the sliding window: %s; the "
                    "reference adds the masking_utils window mask (w keys) to layers >= %d"
                    % (transformers.__version__, ignored, c["max_window_layers"]))
        window_patch(ref, c["window"], c["max_window_layers"])

    with torch.no_grad():
        lps = [token_logprobs(ref, s) for s in seqs]
    if "window" in c:
        differs = max((a - b).abs().max().item() for a, b in zip(lps, plain) if a.numel() > 0)
        note.append("the window changes the log-probs by up to %.3g" % differs)
        assert differs > 1e-3

    exp = {
        "case": c["name"],
        "generated_by": "scripts/make_golden.py",
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "compute": "float32, attn_implementation=eager, one sequence per forward (no padding)",
        "notes": note,
        "sequences": [{"ids": s, "logprobs": [float(v) for v in lp]} for s, lp in zip(seqs, lps)],
    }
    if c["grads"]:
        ref.zero_grad()
        total = sum(token_logprobs(ref, s).sum() for s in seqs)
        total.backward()
        grads = {name: p.grad.detach().clone().contiguous()
                 for name, p in ref.named_parameters() if p.grad is not None}
        save_file(grads, os.path.join(d, "grads.safetensors"), metadata={"format": "pt"})
        exp["grads"] = {"file": "grads.safetensors", "objective": "sum of all sequences' "
                        "token log-probs (temperature 1)", "value": float(total)}
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump(exp, f, indent=1)
        f.write("\n")
    for x in os.listdir(d):  # safetensors' writer makes files 0600
        os.chmod(os.path.join(d, x), 0o644)
    size = sum(os.path.getsize(os.path.join(d, x)) for x in os.listdir(d))
    lo = min(float(lp.min()) for lp in lps if lp.numel())
    print("%-20s %7d bytes  %d sequences, min logprob %.2f  %s"
          % (c["name"], size, len(seqs), lo, "; ".join(note)))


def check(model_dir, jsonl):
    model = load_eager(model_dir)
    model.eval()
    cfg = model.config
    if cfg.use_sliding_window:  # 4.44's eager attention ignores it: add the mask (see above)
        window_patch(model, cfg.sliding_window, cfg.max_window_layers)
    worst, n = 0.0, 0
    with open(jsonl) as f, torch.no_grad():
        for line in f:
            row = json.loads(line)
            if "error" in row:
                print("skipping error line:", row["error"])
                continue
            ref = token_logprobs(model, row["ids"])
            got = torch.tensor(row["logprobs"], dtype=torch.float64)
            assert got.numel() == ref.numel(), "length mismatch"
            if got.numel():
                worst = max(worst, (got - ref.double()).abs().max().item())
            n += 1
    print("%s: %d sequences, max |rlpipe - transformers| = %.3g" % (model_dir, n, worst))
    return 0 if worst <= 1e-4 else 1


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "check":
        if len(sys.argv) != 4:
            sys.exit("usage: make_golden.py check MODEL_DIR OUTPUT.jsonl")
        sys.exit(check(sys.argv[2], sys.argv[3]))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests",
                                                  "golden"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    gen = torch.Generator().manual_seed(20240611)
    os.makedirs(args.out, exist_ok=True)
    for c in CASES:
        write_case(c, args.out, gen)


if __name__ == "__main__":
    main()
