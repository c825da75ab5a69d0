#!/bin/sh
# check_report_browser.sh: loads an `rlpipe report` HTML file in headless Chromium and checks that
# it renders: no console message at all (the page logs nothing, so any line is an error or a
# warning), no uncaught exception, the page's script finished (it marks <body data-report="ok">),
# every chart and the sample browser are in the DOM, nothing was fetched (not even a local file),
# hovering every chart shows its values, and a screenshot is not blank. Run by hand (Chromium is
# too heavy for CI):
#
#   apt-get install chromium                      # Debian's package
#   scripts/check_report_browser.sh runs/tiny/report.html [screenshot.png] [WIDTHxHEIGHT]
#   scripts/check_report_browser.sh --self-test [screenshot.png]
#                                     # a micro training run (seconds), its report, the checks
#
# Exit status 0 when every check passes, 1 when one fails, 2 on bad usage or no Chromium.
set -eu
cd "$(dirname "$0")/.."

CHROMIUM=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}
if [ -z "$CHROMIUM" ]; then
    echo "check_report_browser: no chromium found (apt-get install chromium, or set CHROMIUM=)" >&2
    exit 2
fi

if [ "${1:-}" = "--self-test" ]; then
    bin=${RLPIPE_BIN:-build/rlpipe}
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    "$bin" train configs/tiny.yaml --set model.hidden_size=32 --set model.num_hidden_layers=2 \
        --set model.intermediate_size=48 --set sft.steps=30 --set sft.warmup_steps=5 --set algorithm.steps=6 \
        --set rollout.prompts_per_step=4 --set rollout.group_size=4 --set rollout.max_new_tokens=40 \
        --set eval.n=12 --set eval.k=2 --set eval.every=3 --set data.heldout_size=20 \
        --set checkpoint.every=0 --set logging.progress=never --set run.out_dir="$work/run" >/dev/null
    # Hostile text where the page shows it: a completion, a verifier's detail, the run names.
    # Were any of it run as markup, it would mark the body with data-pwned.
    pwn="</script><script>document.body.setAttribute('data-pwned','script')</script>"
    pwn="$pwn<img src=x onerror=\"document.body.setAttribute('data-pwned','img')\"><!--"
    sql_pwn=$(printf '%s' "$pwn" | sed "s/'/''/g")
    sqlite3 "$work/run/rollouts.db" "
      UPDATE rollouts SET completion = '$sql_pwn' WHERE id = (SELECT id FROM rollouts
        WHERE step = (SELECT MAX(step) FROM rollouts) ORDER BY reward DESC, id LIMIT 1);
      UPDATE scores SET detail = '$sql_pwn' WHERE verifier = 'format';
      UPDATE runs SET name = '<b onmouseover=x>' || name || '</b>' WHERE name = 'tiny';
      UPDATE runs SET name = '<b onmouseover=x>tiny</b>-sft' WHERE name = 'tiny-sft';"
    "$bin" report "$work/run" -o "$work/report.html" >/dev/null
    set -- "$work/report.html" "${2:-$work/screenshot.png}"
fi

if [ $# -lt 1 ] || [ $# -gt 3 ] || [ ! -f "$1" ]; then
    echo "usage: scripts/check_report_browser.sh REPORT.html [SCREENSHOT.png] [WIDTHxHEIGHT]" >&2
    exit 2
fi
html=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
shot=${2:-${1%.html}.png}
size=${3:-1400x2600}
url="file://$html"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp" ${work:+"$work"}' EXIT

# Root cannot use Chromium's sandbox; the page is our own file and the network is blocked below.
flags="--headless --disable-gpu --hide-scrollbars --no-first-run --disable-extensions
--disable-background-networking --host-resolver-rules=MAP_*_~NOTFOUND
--enable-logging=stderr --v=0"
[ "$(id -u)" = "0" ] && flags="$flags --no-sandbox"

fail=0
check() { # check CONDITION_EXIT_STATUS MESSAGE
    if [ "$1" != 0 ]; then
        echo "FAIL: $2" >&2
        fail=1
    else
        echo "ok    $2"
    fi
}

# 1. The DOM after the script ran, with the console log and a network log.
# shellcheck disable=SC2086
timeout 120 "$CHROMIUM" $flags --virtual-time-budget=5000 \
    --dump-dom "$url" >"$tmp/dom.html" 2>"$tmp/console.txt" || true
grep 'CONSOLE' "$tmp/console.txt" >"$tmp/messages.txt" || true
[ ! -s "$tmp/messages.txt" ]
check $? "no console messages$( [ -s "$tmp/messages.txt" ] && printf ':\n%s' "$(cat "$tmp/messages.txt")")"
grep -q 'data-report="ok"' "$tmp/dom.html"
check $? "the page's script ran to the end (body data-report=\"ok\")"
! grep -q '<body[^>]*data-report-error' "$tmp/dom.html"
check $? "no script error recorded by the page"
! grep -q '<body[^>]*data-pwned' "$tmp/dom.html"
check $? "no text from the log ran as markup"
! grep -q '<img\|<b onmouseover' "$tmp/dom.html"
check $? "no element made from text in the log"
charts=$(grep -o 'class="chart"' "$tmp/dom.html" | wc -l)
[ "$charts" -ge 1 ]
check $? "charts drawn: $charts"
grep -q 'id="sample-step"\|No rollouts in the log' "$tmp/dom.html"
check $? "sample browser present"
# The page counts what it fetched (Performance API); Chromium's own background traffic is not
# the page's, so the net log is not used.
grep -q '<body[^>]*data-resources="0"' "$tmp/dom.html"
check $? "the page fetched nothing (no network, no other file)"

# Hover: a copy of the page moves the mouse over every chart; each must then show its tooltip
# ("step N" and a value per line).
cat >"$tmp/hover.js" <<'EOF'
<script>
(function () {
  var boxes = document.querySelectorAll('.chart'), shown = 0;
  boxes.forEach(function (box) {
    var hit = box.querySelector('svg rect'), r = hit.getBoundingClientRect();
    hit.dispatchEvent(new MouseEvent('mousemove', {clientX: r.left + r.width / 2, clientY: r.top + 5, bubbles: true}));
    var tip = box.querySelector('.tip');
    if (tip && !tip.hidden && /^step -?\d+/.test(tip.textContent) && /\d/.test(tip.textContent.slice(5))) shown++;
  });
  document.body.setAttribute('data-hover', shown + '/' + boxes.length);
})();
</script>
EOF
# The hover script goes right before the page's last line (</html>), after its own script.
sed '$d' "$html" >"$tmp/hover.html"
cat "$tmp/hover.js" >>"$tmp/hover.html"
tail -n 1 "$html" >>"$tmp/hover.html"
# shellcheck disable=SC2086
timeout 120 "$CHROMIUM" $flags --virtual-time-budget=5000 --dump-dom "file://$tmp/hover.html" \
    >"$tmp/hover-dom.html" 2>/dev/null || true
hover=$(grep -o 'data-hover="[0-9]*/[0-9]*"' "$tmp/hover-dom.html" | head -1 | sed 's/.*="\(.*\)"/\1/')
[ -n "$hover" ] && [ "${hover%/*}" = "${hover#*/}" ] && [ "${hover%/*}" -ge 1 ]
check $? "hover shows a tooltip with values on every chart (${hover:-none})"

# 2. A screenshot, and that it is not blank: many distinct colours, many non-white pixels.
# shellcheck disable=SC2086
timeout 120 "$CHROMIUM" $flags --virtual-time-budget=5000 --window-size="$(echo "$size" | tr x ,)" \
    --screenshot="$shot" "$url" >/dev/null 2>&1 || true
python3 - "$shot" <<'EOF'
import struct, sys, zlib
path = sys.argv[1]
data = open(path, "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
pos, idat, w = 8, b"", 0
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b"IHDR":
        w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
        assert depth == 8 and ctype in (2, 6), "unexpected PNG format"
        bpp = 3 if ctype == 2 else 4
    elif kind == b"IDAT":
        idat += body
    pos += 12 + n
raw, stride = zlib.decompress(idat), w * bpp
prev, colours, inked = bytearray(stride), set(), 0
for y in range(h):
    f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):  # undo the PNG row filter
        a = line[i - bpp] if i >= bpp else 0
        b, c = prev[i], prev[i - bpp] if i >= bpp else 0
        if f == 1: line[i] = (line[i] + a) & 255
        elif f == 2: line[i] = (line[i] + b) & 255
        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    prev = line
    if y % 2 == 0:
        for x in range(0, w, 2):
            px = bytes(line[x * bpp:x * bpp + 3])
            colours.add(px)
            inked += px != b"\xff\xff\xff"
share = inked / ((h + 1) // 2 * ((w + 1) // 2))
print(f"      screenshot {path}: {w}x{h}, {len(colours)} colours, {100 * share:.1f}% non-white")
sys.exit(0 if len(colours) >= 16 and share > 0.02 else 1)
EOF
check $? "screenshot is not blank"

[ "$fail" = 0 ] && echo "check_report_browser: all checks passed ($html)"
exit "$fail"
