#!/usr/bin/python3
"""bench_torch: the PyTorch side of bench/bench_model.c (not a test; needs torch + transformers).

  /usr/bin/python3 bench/bench_torch.py [tiny|25m|qwen0.5b|all] [--steps N] [--decode-steps N]
                                        [--threads N]

Same model sizes, batch and sequence lengths as bench_model.c, run with Hugging Face's
Qwen2ForCausalLM (float32, eager attention: the attention torch 1.13 has) on the CPU:
  train step   forward + per-token log-probs + backward of the mean negative log-likelihood +
               gradient norm and clipping to 1.0 + AdamW (lr 1e-4, betas 0.9/0.95, eps 1e-8,
               weight decay 0.1 on matrices only), B x T random tokens; one warm-up step, then
               the mean of --steps steps
  decoding     batch 64: prefill of the random prompts, then one greedy token per sequence per
               step against the KV cache (past_key_values), argmax on the logits; then the
               same at batch 1 (qwen0.5b, Qwen2.5-0.5B's shape, decodes at batch 1 only and is
               run only when named, as in bench_model)
printed in bench_model's format, so the two can be read side by side.
"""
import argparse
import time

import torch
import transformers
from transformers import Qwen2Config, Qwen2ForCausalLM

# name, C, L, NH, NKV, FF, V, B, T, prompt, gen: exactly bench_model.c's SIZES
SIZES = [
    ("tiny", 128, 4, 4, 1, 336, 272, 32, 128, 32, 96),
    ("25m", 512, 8, 8, 2, 1408, 4096, 8, 256, 32, 64),
    ("qwen0.5b", 896, 24, 14, 2, 4864, 151936, 1, 32, 32, 32),
]
DECODE_ONLY = ("qwen0.5b",)


def make_model(C, L, NH, NKV, FF, V):
    cfg = Qwen2Config(vocab_size=V, hidden_size=C, intermediate_size=FF, num_hidden_layers=L,
                      num_attention_heads=NH, num_key_value_heads=NKV,
                      max_position_embeddings=4096, rope_theta=10000.0, rms_norm_eps=1e-6,
                      tie_word_embeddings=True, attn_implementation="eager",
                      bos_token_id=None, eos_token_id=None)
    torch.manual_seed(1)
    return Qwen2ForCausalLM(cfg).float()


def matmul_params(C, L, NH, NKV, FF, V):
    hd = C // NH
    qkv = (NH + 2 * NKV) * hd
    return L * (C * qkv + C * NH * hd + 3 * C * FF) + V * C


def bench_train(model, size, steps):
    name, C, L, NH, NKV, FF, V, B, T, _, _ = size
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, V, (B, T), generator=g)
    decay = [p for n, p in model.named_parameters() if p.dim() == 2]
    rest = [p for n, p in model.named_parameters() if p.dim() != 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": rest, "weight_decay": 0.0}],
                            lr=1e-4, betas=(0.9, 0.95), eps=1e-8)
    model.train()
    total = 0.0
    for step in range(-1, steps):  # step -1 warms up
        t0 = time.perf_counter()
        logits = model(input_ids=tokens, use_cache=False).logits
        logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
        lp = logp.gather(2, tokens[:, 1:].unsqueeze(-1)).squeeze(-1)
        loss = -lp.sum() / (B * T)  # bench_model seeds dlogp = -1/N on every target
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step >= 0:
            total += time.perf_counter() - t0
    dt = total / steps
    N = B * T
    flops_tok = 6.0 * matmul_params(C, L, NH, NKV, FF, V) + 3.0 * 4.0 * L * C * (T + 1) / 2.0
    print("  train step (B=%d, T=%d):       %8.0f tokens/s, %.3f s/step, %.1f GFLOP/s "
          "(%.1f MFLOP/token)" % (B, T, N / dt, dt, 1e-9 * flops_tok * N / dt,
                                  1e-6 * flops_tok))


@torch.no_grad()
def bench_decode(model, size, batch, gen):
    name, C, L, NH, NKV, FF, V, B, T, P, _ = size
    model.eval()
    g = torch.Generator().manual_seed(2)
    prompts = torch.randint(0, V, (batch, P), generator=g)
    for rep in range(2):  # the first pass warms up, the second is reported
        t0 = time.perf_counter()
        out = model(input_ids=prompts, use_cache=True)
        t_prefill = time.perf_counter() - t0
        past, logits = out.past_key_values, out.logits[:, -1]
        t0 = time.perf_counter()
        for step in range(gen):
            nxt = logits.argmax(dim=-1, keepdim=True)
            out = model(input_ids=nxt, past_key_values=past, use_cache=True)
            past, logits = out.past_key_values, out.logits[:, -1]
        t_decode = time.perf_counter() - t0
    print("  prefill %d x %d tokens:        %8.0f tokens/s" % (batch, P, batch * P / t_prefill))
    print("  decode batch %d, %d steps:    %8.0f tokens/s (%.2f ms/step, positions %d..%d)"
          % (batch, gen, batch * gen / t_decode, 1e3 * t_decode / gen, P, P + gen - 1))


def main():
    ap = argparse.ArgumentParser(description="PyTorch counterpart of bench_model")
    ap.add_argument("which", nargs="?", default="all")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--decode-steps", type=int, default=-1)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    print("backend torch %s (transformers %s), %d threads, float32, eager attention"
          % (torch.__version__, transformers.__version__, torch.get_num_threads()))
    for size in SIZES:
        name, C, L, NH, NKV, FF, V, B, T, P, gen = size
        if args.which != name and (args.which != "all" or name in DECODE_ONLY):
            continue
        model = make_model(C, L, NH, NKV, FF, V)
        n = sum(p.numel() for p in model.parameters())
        print("\n%s: C=%d L=%d NH=%d NKV=%d hd=%d FF=%d V=%d (tied): %.2fM parameters, %.2fM in "
              "matrix products" % (name, C, L, NH, NKV, C // NH, FF, V, 1e-6 * n,
                                   1e-6 * matmul_params(C, L, NH, NKV, FF, V)))
        steps = args.decode_steps if args.decode_steps > 0 else gen
        if name not in DECODE_ONLY:
            bench_train(model, size, args.steps)
            bench_decode(model, size, 64, steps)
        bench_decode(model, size, 1, steps)


if __name__ == "__main__":
    main()
