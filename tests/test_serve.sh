#!/bin/bash
# test_serve: `rlpipe serve` end to end over HTTP with curl, on a tiny random model and free
# loopback ports. Endpoints (non-streaming and streaming), n > 1, stop strings, log-probs, seeded
# determinism (alone and batched with 31 other clients), the error cases (400 404 405 413 429,
# 408 timeout) in OpenAI's error format, a disconnecting client freeing its slot, the SQLite
# request log, and SIGTERM (exit 0, running requests finished or cancelled, port released).
#
#   RLPIPE_BIN=build/rlpipe tests/test_serve.sh       (ctest sets RLPIPE_BIN)
# JSON is read with python3's standard library (a Debian package CI installs; no PyPI).
set -u
BIN=${RLPIPE_BIN:-build/rlpipe}
command -v curl >/dev/null || { echo "test_serve: curl missing (scripts/install-deps.sh)"; exit 1; }
T=$(mktemp -d /tmp/rlpipe-serve-test.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    wait 2>/dev/null
    if [ -n "${RLPIPE_TEST_KEEP:-}" ]; then echo "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
# Sanitizer builds are several times slower: scale the waits.
SLOW=1
[ -n "${RLPIPE_SANITIZED:-}" ] && SLOW=4
# The server hands request data between threads: under ASan also catch use of a returned stack
# frame (how a dangling pointer to a connection thread's locals would show).
[ -n "${RLPIPE_SANITIZED:-}" ] && export ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_stack_use_after_return=1"

FAILS=0
CHECKS=0
ok() { # ok CONDITION_STATUS MESSAGE
    CHECKS=$((CHECKS + 1))
    if [ "$1" != 0 ]; then
        FAILS=$((FAILS + 1))
        echo "FAIL: $2"
    fi
}
# py EXPR: evaluates a Python expression with j = the JSON on stdin; prints the result.
py() { python3 -c "import json,sys; j=json.load(sys.stdin); print($1)"; }
# pyok EXPR MESSAGE: checks a Python boolean over the JSON on stdin.
pyok() {
    local r
    r=$(python3 -c "import json,os,sys; j=json.load(sys.stdin); print('yes' if ($1) else 'no')" 2>&1)
    [ "$r" = yes ]
    ok $? "$2 (got: $(echo "$r" | tail -1))"
}

"$BIN" model init --out "$T/m" --seed 7 --set model.hidden_size=32 --set model.num_hidden_layers=2 \
    --set model.intermediate_size=64 --set model.num_attention_heads=4 \
    --set model.num_key_value_heads=2 >/dev/null || { echo "model init failed"; exit 1; }

# start_server NAME ARGS...: starts a server on a free port; sets PORT_<NAME>, PID_<NAME>.
start_server() {
    local name=$1
    shift
    "$BIN" serve --model "$T/m" --port 0 "$@" 2>"$T/$name.err" &
    local pid=$!
    PIDS+=("$pid")
    local port=""
    for _ in $(seq 1 $((300 * SLOW))); do
        port=$(grep -o 'listening on http://127.0.0.1:[0-9]*' "$T/$name.err" 2>/dev/null | sed 's/.*://')
        [ -n "$port" ] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$port" ]; then
        echo "FAIL: server $name did not start:"
        cat "$T/$name.err"
        exit 1
    fi
    eval "PORT_$name=$port; PID_$name=$pid"
}

start_server main --log "$T/requests.db" --quiet
U="http://127.0.0.1:$PORT_main"
# post PATH BODY: prints the body, then the HTTP status on its own last line.
post() { curl -s -w '\n%{http_code}' -H 'Content-Type: application/json' "$U$1" -d "$2"; }
body() { sed '$d'; }
status() { tail -n 1; }
# 0 once a short request on $U is served (200) within 4 s (x SLOW), 1 if it never is.
slot_freed() {
    for _ in $(seq 1 $((40 * SLOW))); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$U/v1/completions" -d '{"prompt":"hi","max_tokens":2}')" = 200 ] && return 0
        sleep 0.1
    done
    return 1
}

# ---- /v1/models ------------------------------------------------------------------------------
R=$(curl -s -w '\n%{http_code}' "$U/v1/models")
ok "$([ "$(echo "$R" | status)" = 200 ]; echo $?)" "GET /v1/models is 200"
pyok "j['object']=='list' and j['data'][0]['id']=='$T/m' and j['data'][0]['object']=='model'" \
    "models list names the model" <<<"$(echo "$R" | body)"
ok "$([ "$(curl -s -o /dev/null -w '%{http_code}' "$U/health")" = 200 ]; echo $?)" "GET /health"

# ---- chat, non-streaming: usage counts, seeded determinism ------------------------------------
CHAT='{"model":"'$T/m'","messages":[{"role":"user","content":"hello"}],"max_tokens":16,"seed":5}'
R=$(post /v1/chat/completions "$CHAT")
ok "$([ "$(echo "$R" | status)" = 200 ]; echo $?)" "chat completion is 200: $R"
C1=$(echo "$R" | body)
pyok "j['object']=='chat.completion' and j['choices'][0]['message']['role']=='assistant' and j['choices'][0]['index']==0" \
    "chat completion shape" <<<"$C1"
# The plain template with the byte tokenizer: the prompt is 'hello', 5 tokens.
pyok "j['usage']['prompt_tokens']==5 and 1<=j['usage']['completion_tokens']<=16 and j['usage']['total_tokens']==5+j['usage']['completion_tokens']" \
    "chat usage counts" <<<"$C1"
pyok "j['choices'][0]['finish_reason'] in ('stop','length') and (j['choices'][0]['finish_reason']=='length')==(j['usage']['completion_tokens']==16)" \
    "finish_reason agrees with the token count" <<<"$C1"
TEXT1=$(echo "$C1" | py "json.dumps(j['choices'][0]['message']['content'])")
TEXT1b=$(post /v1/chat/completions "$CHAT" | body | py "json.dumps(j['choices'][0]['message']['content'])")
ok "$([ "$TEXT1" = "$TEXT1b" ]; echo $?)" "same seed, same text ($TEXT1 vs $TEXT1b)"
TEXT_OTHER=$(post /v1/chat/completions "${CHAT/\"seed\":5/\"seed\":6}" | body | py "json.dumps(j['choices'][0]['message']['content'])")
ok "$([ "$TEXT1" != "$TEXT_OTHER" ]; echo $?)" "another seed, another text"

# ---- chat, streaming: the deltas add up to the same text; usage; [DONE] -----------------------
STREAM=${CHAT%\}}',"stream":true,"stream_options":{"include_usage":true}}'
curl -sN "$U/v1/chat/completions" -d "$STREAM" >"$T/chat.sse"
ok "$([ "$(grep -c '^data: ' "$T/chat.sse")" -ge 3 ]; echo $?)" "stream has several events"
ok "$([ "$(grep '^data: ' "$T/chat.sse" | tail -n 1)" = "data: [DONE]" ]; echo $?)" "stream ends with data: [DONE]"
python3 - "$T/chat.sse" "$C1" <<'EOF'
import json, sys
lines = [l[6:] for l in open(sys.argv[1], encoding="utf-8").read().split("\n") if l.startswith("data: ")]
want = json.loads(sys.argv[2])
chunks = [json.loads(l) for l in lines[:-1]]
assert all(c["object"] == "chat.completion.chunk" for c in chunks), "chunk objects"
assert len({c["id"] for c in chunks}) == 1, "one id per stream"
assert chunks[0]["choices"][0]["delta"]["role"] == "assistant", "first delta has the role"
text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
assert text == want["choices"][0]["message"]["content"], f"stream text {text!r} != {want['choices'][0]['message']['content']!r}"
fin = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
assert fin == [want["choices"][0]["finish_reason"]], f"finish {fin}"
assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == want["usage"], f"usage chunk {chunks[-1]}"
EOF
ok $? "streamed chat equals the non-streamed answer"

# ---- completions: n > 1, streaming n > 1, log-probs -------------------------------------------
COMP='{"prompt":"Compute 3+4.","max_tokens":12,"seed":11,"n":3,"ignore_eos":true}'
R=$(post /v1/completions "$COMP" | body)
pyok "j['object']=='text_completion' and [c['index'] for c in j['choices']]==[0,1,2] and j['usage']['completion_tokens']==36 and j['usage']['prompt_tokens']==12" \
    "n=3: three choices, usage over all of them" <<<"$R"
pyok "len({c['text'] for c in j['choices']})>1" "n=3: the samples differ" <<<"$R"
ONE=$(post /v1/completions "${COMP/\"n\":3/\"n\":1}" | body | py "json.dumps(j['choices'][0]['text'])")
A="$ONE" pyok "j['choices'][0]['text']==json.loads(os.environ['A'])" \
    "choice 0 of n=3 equals n=1 with the same seed" <<<"$R"
curl -sN "$U/v1/completions" -d "${COMP%\}},\"stream\":true}" >"$T/comp.sse"
python3 - "$T/comp.sse" "$R" <<'EOF'
import json, sys
lines = [l[6:] for l in open(sys.argv[1], encoding="utf-8").read().split("\n") if l.startswith("data: ")]
assert lines[-1] == "[DONE]"
want = json.loads(sys.argv[2])
texts = {0: "", 1: "", 2: ""}
fins = {}
for l in lines[:-1]:
    c = json.loads(l)
    assert c["object"] == "text_completion"
    for ch in c["choices"]:
        texts[ch["index"]] += ch["text"]
        if ch["finish_reason"]:
            fins[ch["index"]] = ch["finish_reason"]
for i in range(3):
    assert texts[i] == want["choices"][i]["text"], (i, texts[i], want["choices"][i]["text"])
    assert fins[i] == "length"
EOF
ok $? "streamed n=3 completions equal the non-streamed ones"
# Generated text may hold any byte, NUL included: 16 x 64 random bytes hold one for this seed.
NULS='{"prompt":"nul","max_tokens":64,"seed":11,"n":16,"ignore_eos":true}'
R=$(post /v1/completions "$NULS" | body)
pyok "any('\\x00' in c['text'] for c in j['choices'])" \
    "a NUL byte in a completion is kept (\\u0000)" <<<"$R"
curl -sN "$U/v1/completions" -d "${NULS%\}},\"stream\":true}" >"$T/nul.sse"
python3 - "$T/nul.sse" "$R" <<'EOF2'
import json, sys
lines = [l[6:] for l in open(sys.argv[1], encoding="utf-8").read().split("\n") if l.startswith("data: ")]
want = json.loads(sys.argv[2])
texts = {}
for l in lines[:-1]:
    for ch in json.loads(l)["choices"]:
        texts[ch["index"]] = texts.get(ch["index"], "") + ch["text"]
for i in range(16):
    assert texts[i] == want["choices"][i]["text"], i
EOF2
ok $? "streamed NUL-holding completions equal the non-streamed ones"
R=$(post /v1/completions '{"prompt":"abc","max_tokens":8,"seed":2,"logprobs":2,"ignore_eos":true}' | body)
pyok "len(j['choices'][0]['logprobs']['tokens'])==8 and all(x<=0 for x in j['choices'][0]['logprobs']['token_logprobs']) and all(1<=len(d)<=3 for d in j['choices'][0]['logprobs']['top_logprobs']) and j['choices'][0]['logprobs']['text_offset'][0]==0" \
    "completions logprobs: one entry per token, log-probs <= 0, up to 2 alternatives + the sampled token" <<<"$R"
R=$(post /v1/chat/completions '{"messages":[{"role":"user","content":"x"}],"max_tokens":6,"seed":2,"logprobs":true,"top_logprobs":3,"ignore_eos":true}' | body)
pyok "len(j['choices'][0]['logprobs']['content'])==6 and all(len(t['top_logprobs'])==3 and t['top_logprobs'][0]['logprob']>=t['top_logprobs'][2]['logprob'] and t['logprob']<=t['top_logprobs'][0]['logprob']+1e-6 for t in j['choices'][0]['logprobs']['content'])" \
    "chat logprobs: top 3 alternatives, sorted, the sampled token's at most the best" <<<"$R"

# ---- stop strings -----------------------------------------------------------------------------
BASE='{"prompt":"The answer is","max_tokens":60,"seed":21,"ignore_eos":true,"temperature":1.0'
FULL=$(post /v1/completions "$BASE}" | body | py "json.dumps(j['choices'][0]['text'])")
# Pick an ASCII pair of characters past the start whose first occurrence is at position k.
PICK=$(python3 -c "
import json,sys
t=json.loads(sys.argv[1])
for k in range(2,len(t)-1):
    s=t[k:k+2]
    if s.isascii() and s.isprintable() and '\"' not in s and '\\\\' not in s and t.find(s)==k and t.find(s[0])==k:
        print(k, json.dumps(s)); break
" "$FULL")
if [ -z "$PICK" ]; then
    ok 1 "no usable stop string in $FULL"
else
    K=${PICK%% *}
    S=${PICK#* }
    WANT=$(python3 -c "import json,sys; print(json.dumps(json.loads(sys.argv[1])[:int(sys.argv[2])]))" "$FULL" "$K")
    for STOP in "$S" "[$S, \"@@@@\"]" "$(python3 -c "import json,sys; print(json.dumps(json.loads(sys.argv[1])[0]))" "$S")"; do
        R=$(post /v1/completions "$BASE,\"stop\":$STOP}" | body)
        A="$WANT" pyok "j['choices'][0]['text']==json.loads(os.environ['A']) and j['choices'][0]['finish_reason']=='stop'" \
            "stop $STOP cuts the text before it" <<<"$R"
        curl -sN "$U/v1/completions" -d "$BASE,\"stop\":$STOP,\"stream\":true}" >"$T/stop.sse"
        python3 - "$T/stop.sse" "$WANT" <<'EOF'
import json, sys
lines = [l[6:] for l in open(sys.argv[1], encoding="utf-8").read().split("\n") if l.startswith("data: ")]
text = "".join(json.loads(l)["choices"][0]["text"] for l in lines[:-1])
assert text == json.loads(sys.argv[2]), (text, sys.argv[2])
EOF
        ok $? "streamed stop $STOP: no part of the stop string is sent"
    done
fi

# ---- errors: OpenAI's error object -------------------------------------------------------------
# expect_error STATUS PARAM(or -) CURL_ARGS...
expect_error() {
    local want=$1 param=$2
    shift 2
    local r
    r=$(curl -s -w '\n%{http_code}' "$@")
    ok "$([ "$(echo "$r" | status)" = "$want" ]; echo $?)" "want $want for $*: got $(echo "$r" | tail -c 300)"
    pyok "set(j['error'])=={'message','type','param','code'} and isinstance(j['error']['message'],str) and len(j['error']['message'])>0 and ('$param'=='-' or j['error']['param']=='$param')" \
        "error JSON for $want $*" <<<"$(echo "$r" | body)"
}
expect_error 400 - "$U/v1/chat/completions" -d '{"messages": [{"role":"user","content":"hi"}'
expect_error 400 - "$U/v1/chat/completions" -d '[1,2]'
expect_error 400 bogus "$U/v1/chat/completions" -d '{"messages":[{"role":"user","content":"hi"}],"bogus":1}'
expect_error 400 temperature "$U/v1/chat/completions" -d '{"messages":[{"role":"user","content":"hi"}],"temperature":"hot"}'
expect_error 400 n "$U/v1/completions" -d '{"prompt":"hi","n":0}'
expect_error 400 messages "$U/v1/chat/completions" -d '{"messages":[]}'
expect_error 400 messages "$U/v1/chat/completions" -d '{"messages":[{"role":"wizard","content":"hi"}]}'
expect_error 400 stop "$U/v1/completions" -d '{"prompt":"hi","stop":[1]}'
expect_error 400 prompt "$U/v1/completions" -d '{"prompt":"hi","max_tokens":100000}'
expect_error 400 prompt "$U/v1/completions" -d '{"prompt":""}'
expect_error 400 - "$U/v1/completions" -d '{"prompt":"hi","prompt":"again"}'
expect_error 404 model "$U/v1/chat/completions" -d '{"model":"gpt-9","messages":[{"role":"user","content":"hi"}]}'
expect_error 404 - "$U/v1/embeddings" -d '{}'
expect_error 404 - "$U/nothing/here"
expect_error 405 - "$U/v1/completions"
expect_error 405 - -X DELETE "$U/v1/models"
head -c 9000000 /dev/zero | tr '\0' 'a' >"$T/big.txt"
expect_error 413 - "$U/v1/completions" -H 'Content-Type: application/json' --data-binary "@$T/big.txt"

# ---- 32 concurrent clients: none lost, none mixed up, each as when alone ----------------------
for i in $(seq 0 31); do
    echo "{\"prompt\":\"client $i asks\",\"max_tokens\":$((8 + i % 9)),\"seed\":$((1000 + i)),\"temperature\":0.9}" >"$T/req$i.json"
    post /v1/completions "@$T/req$i.json" | body | py "json.dumps(j['choices'][0]['text'])" >"$T/solo$i.txt"
done
for i in $(seq 0 31); do
    if [ $((i % 2)) = 0 ]; then
        curl -s "$U/v1/completions" -d "@$T/req$i.json" >"$T/conc$i.json" &
    else # half of them streaming
        python3 -c "import json,sys; r=json.load(open(sys.argv[1])); r['stream']=True; print(json.dumps(r))" "$T/req$i.json" >"$T/sreq$i.json"
        curl -sN "$U/v1/completions" -d "@$T/sreq$i.json" >"$T/conc$i.sse" &
    fi
done
wait_curls() { for p in $(jobs -p); do case " ${PIDS[*]} " in *" $p "*) ;; *) wait "$p" ;; esac; done; }
wait_curls
LOST=0
for i in $(seq 0 31); do
    if [ $((i % 2)) = 0 ]; then
        got=$(py "json.dumps(j['choices'][0]['text'])" <"$T/conc$i.json" 2>/dev/null)
    else
        got=$(python3 -c "
import json,sys
ls=[l[6:] for l in open(sys.argv[1],encoding='utf-8').read().split('\n') if l.startswith('data: ')]
assert ls[-1]=='[DONE]'
print(json.dumps(''.join(json.loads(l)['choices'][0]['text'] for l in ls[:-1])))" "$T/conc$i.sse" 2>/dev/null)
    fi
    if [ "$got" != "$(cat "$T/solo$i.txt")" ]; then
        LOST=$((LOST + 1))
        echo "client $i: concurrent $got != solo $(cat "$T/solo$i.txt")"
    fi
done
ok "$LOST" "32 concurrent clients each get their solo answer ($LOST differ)"

# ---- the request log ----------------------------------------------------------------------------
kill -TERM "$PID_main"
wait "$PID_main"
ok $? "SIGTERM on an idle server exits 0"
ok "$(curl -s -o /dev/null "$U/v1/models"; [ $? = 7 ]; echo $?)" "the port is released after exit"
N=$(sqlite3 "$T/requests.db" "SELECT count(*) FROM requests")
ok "$([ "$N" -ge 90 ]; echo $?)" "every request is logged ($N rows)"
ROW=$(sqlite3 "$T/requests.db" "SELECT status, outcome, prompt_tokens, seed FROM requests WHERE request LIKE '%\"seed\":5}' AND stream = 0 ORDER BY id LIMIT 1")
ok "$([ "$ROW" = "200|ok|5|5" ]; echo $?)" "the seeded chat request's log row: $ROW"
ok "$([ "$(sqlite3 "$T/requests.db" "SELECT count(*) FROM requests WHERE status = 413")" = 1 ]; echo $?)" "413 logged"
ok "$([ "$(sqlite3 "$T/requests.db" "SELECT count(*) FROM requests WHERE status = 400 AND outcome = 'rejected' AND error LIKE '%bogus%'")" = 1 ]; echo $?)" "400 logged with its message"

# ---- a server with one slot and no queue: 429, a disconnect frees the slot ---------------------
start_server small --max-batch 1 --max-queue 0 --max-model-len 30000 --shutdown-grace 0.3 --log "$T/small.db" --quiet
U="http://127.0.0.1:$PORT_small"
LONG='{"prompt":"long","max_tokens":29000,"ignore_eos":true,"stream":true,"seed":1}'
curl -sN "$U/v1/completions" -d "$LONG" >"$T/long.sse" &
LONG_PID=$!
for _ in $(seq 1 $((200 * SLOW))); do grep -q '^data: ' "$T/long.sse" && break; sleep 0.05; done
expect_error 429 - "$U/v1/completions" -d '{"prompt":"hi","max_tokens":2}'
kill "$LONG_PID"
wait "$LONG_PID" 2>/dev/null
slot_freed
ok $? "a client that disconnects frees its slot"
# The same for a non-streaming request whose client gives up.
curl -s -m 1 "$U/v1/completions" -d '{"prompt":"long","max_tokens":29000,"ignore_eos":true}' >/dev/null
slot_freed
ok $? "a non-streaming client that gives up frees its slot"
# SIGTERM with a long request running and a short grace: it is cancelled, the stream ends
# properly, the server exits 0.
curl -sN "$U/v1/completions" -d "$LONG" >"$T/long2.sse" &
LONG_PID=$!
for _ in $(seq 1 $((200 * SLOW))); do grep -q '^data: ' "$T/long2.sse" && break; sleep 0.05; done
kill -TERM "$PID_small"
wait "$PID_small"
ok $? "SIGTERM with a request running exits 0"
wait "$LONG_PID"
ok "$([ "$(grep '^data: ' "$T/long2.sse" | tail -n 1)" = "data: [DONE]" ]; echo $?)" "the cancelled stream still ends with [DONE]"
ok "$(grep -q '"error"' "$T/long2.sse"; echo $?)" "the cancelled stream says why"
ok "$([ "$(sqlite3 "$T/small.db" "SELECT count(*) FROM requests WHERE outcome = 'client_disconnected'")" = 2 ]; echo $?)" \
    "disconnects logged as such"

# ---- a short timeout: 408; SIGTERM lets a running request finish within the grace -------------
start_server timed --timeout 0.5 --max-model-len 30000 --shutdown-grace 60 --quiet
U="http://127.0.0.1:$PORT_timed"
expect_error 408 - "$U/v1/completions" -d '{"prompt":"long","max_tokens":29000,"ignore_eos":true}'
curl -sN "$U/v1/completions" -d '{"prompt":"long","max_tokens":29000,"ignore_eos":true,"stream":true}' >"$T/to.sse"
ok "$([ "$(grep '^data: ' "$T/to.sse" | tail -n 1)" = "data: [DONE]" ] && grep -q 'timed out' "$T/to.sse"; echo $?)" \
    "a stream past its deadline ends with an error event and [DONE]"
curl -sN "$U/v1/completions" -d '{"prompt":"x","max_tokens":300,"ignore_eos":true,"stream":true,"seed":4}' >"$T/fin.sse" &
FIN_PID=$!
for _ in $(seq 1 $((200 * SLOW))); do grep -q '^data: ' "$T/fin.sse" && break; sleep 0.01; done
kill -TERM "$PID_timed"
wait "$PID_timed"
ok $? "SIGTERM with a short request running exits 0"
wait "$FIN_PID"
python3 - "$T/fin.sse" <<'EOF'
import json, sys
ls = [l[6:] for l in open(sys.argv[1], encoding="utf-8").read().split("\n") if l.startswith("data: ")]
assert ls[-1] == "[DONE]", ls[-3:]
fin = [json.loads(l)["choices"][0]["finish_reason"] for l in ls[:-1]]
assert fin[-1] == "length", fin[-3:]
EOF
ok $? "a request running at SIGTERM finishes within the grace period"

# ---- --api-key: requests without the key are refused ---------------------------------------------
start_server keyed --api-key sekrit --quiet
U="http://127.0.0.1:$PORT_keyed"
expect_error 401 - "$U/v1/models"
expect_error 401 - -H 'Authorization: Bearer wrong' "$U/v1/completions" -d '{"prompt":"hi","max_tokens":2}'
ok "$([ "$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer sekrit' "$U/v1/completions" -d '{"prompt":"hi","max_tokens":2}')" = 200 ]; echo $?)" \
    "the right key is let in"
kill -TERM "$PID_keyed"
wait "$PID_keyed"
ok $? "SIGTERM exits 0 (keyed server)"

# ---- bad command lines ----------------------------------------------------------------------------
"$BIN" serve --model "$T/nope" --port 0 2>"$T/bad.err"
ok "$([ $? = 2 ] && grep -q "$T/nope" "$T/bad.err"; echo $?)" "a missing model directory: exit 2 naming it"
"$BIN" serve --model "$T/m" --port 99999 2>"$T/bad.err"
ok "$([ $? = 2 ] && grep -q -- "--port" "$T/bad.err"; echo $?)" "a bad port: exit 2"
"$BIN" serve --model "$T/m" --chat-template llama --port 0 2>"$T/bad.err"
ok "$([ $? = 2 ] && grep -q "chat-template" "$T/bad.err"; echo $?)" "an unknown chat template: exit 2"

echo "test_serve: $CHECKS checks, $FAILS failures"
[ "$FAILS" = 0 ]
