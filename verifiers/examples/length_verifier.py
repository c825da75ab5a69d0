#!/usr/bin/env python3
"""length_verifier: an example line-protocol verifier for rlpipe (standard library only).

rlpipe starts this program once per scoring thread and keeps it running. It writes one JSON
request per line on our stdin and reads one JSON reply per line from our stdout:

  request  {"prompt": ..., "completion": ..., "n_tokens": 57, "max_tokens": 1024,
            "truncated": false, "answer": "7" (or "tests": [...]), "options": {"max": "200"}}
  reply    {"score": 0.72, "status": "ok", "detail": "57 words of 200"}

Score: 1 - count / max, clipped to [0, 1], where count is the number of whitespace-separated
words of the completion (option unit: words, the default) or its token count (unit: tokens),
and max is the option max (default 256; with unit: tokens and no max, the request's max_tokens).
A truncated completion scores 0. Options arrive as strings in every request.

Use it in a config (the weight is gated by accuracy unless `gate: none`):
  reward:
    verifiers:
      - {name: length, weight: 0.05, command: "python3 verifiers/examples/length_verifier.py",
         unit: words, max: 200}
"""
import json
import sys


def score(req):
    opts = req.get("options") or {}
    unit = opts.get("unit", "words")
    if unit not in ("words", "tokens"):
        return {"score": 0, "status": "error", "detail": "option unit: words or tokens"}
    if unit == "words":
        count = len(str(req.get("completion", "")).split())
        limit = float(opts.get("max", 256))
    else:
        count = int(req.get("n_tokens", 0))
        limit = float(opts.get("max", req.get("max_tokens", 0)))
    if limit <= 0:
        return {"score": 0, "status": "skipped", "detail": "no length budget"}
    if req.get("truncated"):
        return {"score": 0, "detail": "truncated"}
    value = min(1.0, max(0.0, 1.0 - count / limit))
    return {"score": value, "detail": "%d %s of %g" % (count, unit, limit)}


def main():
    for line in sys.stdin:
        try:
            reply = score(json.loads(line))
        except (ValueError, TypeError, AttributeError) as e:
            reply = {"score": 0, "status": "error", "detail": "bad request: %s" % e}
        # One line per request, flushed (rlpipe also sets PYTHONUNBUFFERED=1).
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
