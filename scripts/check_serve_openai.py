#!/usr/bin/env python3
"""Checks `rlpipe serve` with the official OpenAI Python client, and measures tokens/s.

Run by hand (not in CI: it needs the `openai` package from PyPI):

    python3 -m venv /tmp/oai && /tmp/oai/bin/pip install openai
    /tmp/oai/bin/python scripts/check_serve_openai.py                      # a tiny random model
    /tmp/oai/bin/python scripts/check_serve_openai.py --model runs/tiny/final
    /tmp/oai/bin/python scripts/check_serve_openai.py --url http://127.0.0.1:8000/v1 --model-id M

Without --url it starts `rlpipe serve` on a free loopback port (the binary from --bin, default
build/rlpipe) and stops it with SIGTERM at the end, checking that it exits 0. Checks: the model
list; chat and text completions, non-streaming and streaming (the streamed text equals the
non-streamed one for the same seed); n > 1; stop strings; log-probs; usage counts; errors raised
as the client's exception classes (400, 404); then C concurrent clients with distinct seeds, each
compared with its answer when alone, and the throughput in generated tokens/s at concurrency 1
and C. Exit status 0 when every check passed.
"""
import argparse
import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

try:
    import openai
except ImportError:
    sys.exit("check_serve_openai: needs the openai package (pip install openai)")

FAILS = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        FAILS.append(what)


def start_server(args, tmp):
    model = args.model
    if not model:
        model = os.path.join(tmp, "m")
        subprocess.run(
            [args.bin, "model", "init", "--out", model, "--seed", "7",
             "--set", "model.hidden_size=64", "--set", "model.num_hidden_layers=2",
             "--set", "model.intermediate_size=128", "--set", "model.num_attention_heads=4",
             "--set", "model.num_key_value_heads=2"],
            check=True, stdout=subprocess.DEVNULL)
    err = open(os.path.join(tmp, "serve.err"), "w+")
    proc = subprocess.Popen([args.bin, "serve", "--model", model, "--port", "0", "--quiet"],
                            stderr=err)
    for _ in range(600):
        err.seek(0)
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", err.read())
        if m:
            return proc, f"http://127.0.0.1:{m.group(1)}/v1", model
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    err.seek(0)
    sys.exit("check_serve_openai: the server did not start:\n" + err.read())


def functional_checks(client, model_id):
    models = client.models.list()
    ids = [m.id for m in models.data]
    check(model_id in ids, f"models.list() names {model_id!r}: {ids}")

    msgs = [{"role": "user", "content": "Compute 3+4*2."}]
    a = client.chat.completions.create(model=model_id, messages=msgs, max_tokens=24, seed=3,
                                       temperature=0.8)
    b = client.chat.completions.create(model=model_id, messages=msgs, max_tokens=24, seed=3,
                                       temperature=0.8)
    text = a.choices[0].message.content
    check(a.object == "chat.completion" and a.choices[0].message.role == "assistant",
          "chat completion object")
    check(text == b.choices[0].message.content, "same seed, same chat answer")
    u = a.usage
    check(u.total_tokens == u.prompt_tokens + u.completion_tokens and u.completion_tokens >= 1,
          f"usage adds up: {u}")

    stream = client.chat.completions.create(model=model_id, messages=msgs, max_tokens=24, seed=3,
                                            temperature=0.8, stream=True,
                                            stream_options={"include_usage": True})
    parts, finish, usage = [], None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for ch in chunk.choices:
            if ch.delta.content:
                parts.append(ch.delta.content)
            if ch.finish_reason:
                finish = ch.finish_reason
    check("".join(parts) == text, "streamed chat text equals the non-streamed one")
    check(finish == a.choices[0].finish_reason, f"stream finish_reason {finish}")
    check(usage is not None and usage.completion_tokens == u.completion_tokens,
          "stream usage chunk")

    c = client.completions.create(model=model_id, prompt="The answer is", max_tokens=16, n=3,
                                  seed=5, logprobs=2, extra_body={"ignore_eos": True})
    check(len(c.choices) == 3 and sorted(ch.index for ch in c.choices) == [0, 1, 2],
          "n=3 gives three choices")
    check(all(len(ch.logprobs.tokens) == 16 for ch in c.choices), "log-probs per token")
    check(c.usage.completion_tokens == 48, f"usage over all choices: {c.usage}")
    full = c.choices[0].text
    # A stop string taken from the text cuts it there.
    k = next((i for i in range(2, len(full) - 1) if full[i].isascii() and full[i].isprintable()
              and full.find(full[i]) == i), None)
    if k is not None:
        s = client.completions.create(model=model_id, prompt="The answer is", max_tokens=16,
                                      seed=5, stop=[full[k]], extra_body={"ignore_eos": True})
        check(s.choices[0].text == full[:k] and s.choices[0].finish_reason == "stop",
              f"stop {full[k]!r} cuts the text")
        st = client.completions.create(model=model_id, prompt="The answer is", max_tokens=16,
                                       seed=5, stop=[full[k]], stream=True,
                                       extra_body={"ignore_eos": True})
        check("".join(ch.choices[0].text for ch in st if ch.choices) == full[:k],
              "streamed stop")

    try:
        client.chat.completions.create(model=model_id, messages=msgs, extra_body={"bogus": 1})
        check(False, "an unknown field raises BadRequestError")
    except openai.BadRequestError as e:
        check(e.status_code == 400 and "bogus" in str(e), f"unknown field -> 400: {e}")
    try:
        client.chat.completions.create(model="no-such-model", messages=msgs)
        check(False, "an unknown model raises NotFoundError")
    except openai.NotFoundError as e:
        check(e.status_code == 404, f"unknown model -> 404: {e}")


async def one_request(aclient, model_id, i, max_tokens, stream):
    kw = dict(model=model_id, prompt=f"client {i} asks: 12+{i}=", max_tokens=max_tokens,
              seed=1000 + i, temperature=0.9, extra_body={"ignore_eos": True})
    if not stream:
        r = await aclient.completions.create(**kw)
        return r.choices[0].text, r.usage.completion_tokens
    text, n = [], 0
    async for ch in await aclient.completions.create(stream=True,
                                                     stream_options={"include_usage": True},
                                                     **kw):
        if ch.usage:
            n = ch.usage.completion_tokens
        for c in ch.choices:
            text.append(c.text)
    return "".join(text), n


async def throughput(base_url, model_id, conc, requests, max_tokens):
    aclient = openai.AsyncOpenAI(base_url=base_url, api_key="none", max_retries=0, timeout=600)
    solo = []
    t0 = time.perf_counter()
    for i in range(requests):  # one at a time: the reference answers and the baseline rate
        solo.append(await one_request(aclient, model_id, i, max_tokens, False))
    t_solo = time.perf_counter() - t0
    sem = asyncio.Semaphore(conc)

    async def limited(i):
        async with sem:
            return await one_request(aclient, model_id, i, max_tokens, i % 2 == 1)

    t0 = time.perf_counter()
    got = await asyncio.gather(*(limited(i) for i in range(requests)))
    t_conc = time.perf_counter() - t0
    await aclient.close()
    same = sum(g[0] == s[0] for g, s in zip(got, solo))
    check(same == requests, f"{conc} concurrent clients: {same}/{requests} answers equal their "
          "solo answers (half of them streamed)")
    tokens = sum(g[1] for g in got)
    print(f"throughput: {requests} requests x {max_tokens} tokens: "
          f"{sum(s[1] for s in solo) / t_solo:.0f} tokens/s one at a time, "
          f"{tokens / t_conc:.0f} tokens/s with {conc} concurrent clients "
          f"({t_conc:.2f} s vs {t_solo:.2f} s)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default="build/rlpipe")
    ap.add_argument("--model", help="model directory to serve (default: a tiny random model)")
    ap.add_argument("--url", help="an already running server's base URL (…/v1)")
    ap.add_argument("--model-id", help="the model id with --url")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=256)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc = None
        if args.url:
            base_url, model_id = args.url, args.model_id
        else:
            proc, base_url, model_id = start_server(args, tmp)
        client = openai.OpenAI(base_url=base_url, api_key="none", max_retries=0)
        if not model_id:
            model_id = client.models.list().data[0].id
        try:
            functional_checks(client, model_id)
            asyncio.run(throughput(base_url, model_id, args.concurrency, args.requests,
                                   args.max_tokens))
        finally:
            if proc:
                proc.send_signal(signal.SIGTERM)
                rc = proc.wait(timeout=120)
                check(rc == 0, f"SIGTERM: the server exits 0 (got {rc})")
    print(f"check_serve_openai: {len(FAILS)} failures")
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
