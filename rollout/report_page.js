// report_page.js: the script of the HTML run report (embedded into the page by rlpipe report).
// It reads the JSON document from the script element #report-data, draws every chart as inline SVG,
// shows values on hover and fills the sample browser. Text from the log is only ever inserted
// with textContent, never as markup. It needs no network and no library.
(function () {
  'use strict';
  var body = document.body;
  window.addEventListener('error', function (e) {
    body.setAttribute('data-report-error', String(e.message));
  });
  var D = JSON.parse(document.getElementById('report-data').textContent);
  var RUNS = D.runs || [];
  var SVGNS = 'http://www.w3.org/2000/svg';
  var COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2',
                '#17becf', '#7f7f7f', '#bcbd22'];
  var DASHES = ['', '7 4', '2 3', '10 3 2 3', '4 2'];
  var W = 480, H = 270, ML = 58, MR = 14, MT = 12, MB = 30;

  function num(v) {
    if (v === null || v === undefined) return NaN;
    return typeof v === 'string' ? Number(v) : v;
  }
  function fmt(v) {
    if (typeof v !== 'number') v = num(v);
    if (isNaN(v)) return 'n/a';
    if (!isFinite(v)) return v > 0 ? 'inf' : '-inf';
    var a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(3);
    return String(Math.round(v * 1e4) / 1e4);
  }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function sv(tag, attrs) {
    var e = document.createElementNS(SVGNS, tag);
    for (var k in attrs) if (Object.prototype.hasOwnProperty.call(attrs, k)) e.setAttribute(k, attrs[k]);
    return e;
  }

  // ---- series ------------------------------------------------------------------------------
  // A series is {run, label, x: [...], y: [...], lo, hi} with numbers (NaN where not measured).
  function stepSeries(steps, key, band) {
    if (!steps || !steps[key] || !steps.step) return null;
    var x = [], y = [], lo = band ? [] : null, hi = band ? [] : null;
    for (var i = 0; i < steps.step.length; i++) {
      x.push(num(steps.step[i]));
      var v = num(steps[key][i]);
      y.push(v);
      if (band) {
        var s = steps[band] ? num(steps[band][i]) : NaN;
        lo.push(v - s);
        hi.push(v + s);
      }
    }
    return {x: x, y: y, lo: lo, hi: hi};
  }
  function verifierSeries(run, name) {
    if (!run.verifiers || !run.verifiers[name]) return null;
    return {x: run.steps.step.map(num), y: run.verifiers[name].map(num)};
  }
  function evalSeries(run, key) {
    var x = [], y = [];
    (run.evals || []).forEach(function (e) {
      if (e.split !== 'heldout' && run.evals.some(function (f) { return f.split === 'heldout'; })) return;
      x.push(num(e.step));
      y.push(num(e[key]));
    });
    return x.length ? {x: x, y: y, markers: true} : null;
  }
  function hasData(s) {
    return s && s.y.some(function (v) { return isFinite(v); });
  }

  var verifierNames = [];
  RUNS.forEach(function (r) {
    Object.keys(r.verifiers || {}).forEach(function (v) {
      if (verifierNames.indexOf(v) < 0) verifierNames.push(v);
    });
  });

  function S(key, label, band) {
    return {label: label || '', get: function (r) { return stepSeries(r.steps, key, band); }};
  }
  var CHARTS = [
    {id: 'reward', title: 'Reward (mean \u00b1 std)', series: [S('reward_mean', 'reward', 'reward_std')]},
    {id: 'accuracy', title: 'Accuracy (training rollouts)', series: [S('accuracy', 'accuracy')]}
  ];
  // One run: every verifier in one chart. Several: one chart per verifier, a line per run.
  function V(v) { return {label: v, get: function (r) { return verifierSeries(r, v); }}; }
  if (RUNS.length === 1 && verifierNames.length)
    CHARTS.push({id: 'verifiers', title: 'Verifier means (training rollouts)', series: verifierNames.map(V)});
  else
    verifierNames.forEach(function (v) {
      CHARTS.push({id: 'verifier-' + v, title: 'Verifier mean: ' + v, series: [V(v)]});
    });
  CHARTS = CHARTS.concat([
    {id: 'pass', title: 'Held-out pass@1 and pass@k',
     series: [{label: 'pass@1', get: function (r) { return evalSeries(r, 'pass_at_1'); }},
              {label: 'pass@k', get: function (r) { return evalSeries(r, 'pass_at_k'); }}]},
    {id: 'kl', title: 'KL to the reference policy', series: [S('kl', 'KL')]},
    {id: 'entropy', title: 'Entropy (per token)', series: [S('entropy', 'entropy')]},
    {id: 'clip_frac', title: 'Clip fraction', series: [S('clip_frac', 'clipped')]},
    {id: 'grad_norm', title: 'Gradient norm (before clipping)', series: [S('grad_norm', 'grad norm')]},
    {id: 'lr', title: 'Learning rate', series: [S('lr', 'lr')]},
    {id: 'loss', title: 'Loss', series: [S('loss', 'loss')]},
    {id: 'length', title: 'Completion length (tokens)', series: [S('len_mean', 'mean'), S('len_max', 'max')]},
    {id: 'truncated', title: 'Truncation rate (stopped by the token budget)', series: [S('truncated_frac', 'truncated')]},
    {id: 'time', title: 'Time per step (s)',
     series: [S('t_rollout', 'rollout'), S('t_verify', 'verify'), S('t_update', 'update'), S('t_total', 'total')]},
    {id: 'throughput', title: 'Tokens per second',
     series: [S('tokens_per_s', 'generation'), S('train_tokens_per_s', 'update')]},
    {id: 'sft_loss', title: 'SFT loss (cold start)',
     series: [{label: 'SFT loss', get: function (r) { return r.sft ? stepSeries(r.sft.steps, 'loss') : null; }}]},
    {id: 'sft_lr', title: 'SFT learning rate',
     series: [{label: 'SFT lr', get: function (r) { return r.sft ? stepSeries(r.sft.steps, 'lr') : null; }}]}
  ]);

  // ---- drawing -------------------------------------------------------------------------------
  function niceTicks(lo, hi, n) {
    var span = hi - lo, step = Math.pow(10, Math.floor(Math.log10(span / n)));
    var err = span / n / step;
    if (err >= 7.5) step *= 10; else if (err >= 3.5) step *= 5; else if (err >= 1.5) step *= 2;
    var t = [];
    // By index, so that a step below the values' resolution cannot loop forever.
    for (var i = 0; i < 40; i++) {
      var v = (Math.ceil(lo / step) + i) * step;
      if (!(v <= hi + step * 1e-9)) break;
      t.push(Math.abs(v) < step * 1e-9 ? 0 : v);
    }
    return t;
  }
  function extent(vals) {
    var lo = Infinity, hi = -Infinity;
    vals.forEach(function (v) { if (isFinite(v)) { if (v < lo) lo = v; if (v > hi) hi = v; } });
    if (lo === Infinity) return null;
    if (lo === hi) { var d = Math.abs(lo) * 0.1 || 1; lo -= d; hi += d; }
    return [lo, hi];
  }
  function pathOf(xs, ys, X, Y) {
    var d = '', pen = false;
    for (var i = 0; i < xs.length; i++) {
      if (!isFinite(xs[i]) || !isFinite(ys[i])) { pen = false; continue; }
      d += (pen ? 'L' : 'M') + X(xs[i]).toFixed(1) + ' ' + Y(ys[i]).toFixed(1);
      pen = true;
    }
    return d;
  }
  function nearest(xs, x) {
    var best = -1, bd = Infinity;
    for (var i = 0; i < xs.length; i++) {
      var d = Math.abs(xs[i] - x);
      if (d < bd) { bd = d; best = i; }
    }
    return best;
  }

  function drawChart(chart, lines, host) {
    var box = el('div', 'chart');
    box.id = 'chart-' + chart.id;
    box.appendChild(el('h3', null, chart.title));
    var svg = sv('svg', {viewBox: '0 0 ' + W + ' ' + H, role: 'img', 'aria-label': chart.title});
    var xs = [], ys = [];
    lines.forEach(function (l) {
      xs = xs.concat(l.s.x);
      ys = ys.concat(l.s.y);
      if (l.s.lo) ys = ys.concat(l.s.lo, l.s.hi);
    });
    var xe = extent(xs), ye = extent(ys);
    if (!xe || !ye) return;
    var pad = (ye[1] - ye[0]) * 0.05;
    ye = [ye[0] - pad, ye[1] + pad];
    var X = function (v) { return ML + (v - xe[0]) / (xe[1] - xe[0]) * (W - ML - MR); };
    var Y = function (v) { return H - MB - (v - ye[0]) / (ye[1] - ye[0]) * (H - MT - MB); };
    niceTicks(ye[0], ye[1], 5).forEach(function (t) {
      svg.appendChild(sv('line', {x1: ML, x2: W - MR, y1: Y(t), y2: Y(t), class: 'grid'}));
      var lab = sv('text', {x: ML - 6, y: Y(t) + 4, 'text-anchor': 'end', class: 'tick'});
      lab.textContent = String(parseFloat(t.toPrecision(6)));
      svg.appendChild(lab);
    });
    niceTicks(xe[0], xe[1], 6).forEach(function (t) {
      if (Math.abs(t - Math.round(t)) > 1e-9) return; // steps are integers
      svg.appendChild(sv('line', {x1: X(t), x2: X(t), y1: H - MB, y2: H - MB + 4, class: 'axis'}));
      var lab = sv('text', {x: X(t), y: H - MB + 16, 'text-anchor': 'middle', class: 'tick'});
      lab.textContent = String(t);
      svg.appendChild(lab);
    });
    svg.appendChild(sv('line', {x1: ML, x2: W - MR, y1: H - MB, y2: H - MB, class: 'axis'}));
    svg.appendChild(sv('line', {x1: ML, x2: ML, y1: MT, y2: H - MB, class: 'axis'}));
    var xl = sv('text', {x: W - MR, y: H - 2, 'text-anchor': 'end', class: 'tick'});
    xl.textContent = 'step';
    svg.appendChild(xl);
    lines.forEach(function (l) {
      if (l.s.lo) {
        var up = pathOf(l.s.x, l.s.hi, X, Y), down = '';
        for (var i = l.s.x.length - 1; i >= 0; i--)
          if (isFinite(l.s.x[i]) && isFinite(l.s.lo[i]) && isFinite(l.s.hi[i]))
            down += 'L' + X(l.s.x[i]).toFixed(1) + ' ' + Y(l.s.lo[i]).toFixed(1);
        if (up && down) svg.appendChild(sv('path', {d: up + down + 'Z', fill: l.color, 'fill-opacity': 0.15, stroke: 'none'}));
      }
      var p = sv('path', {d: pathOf(l.s.x, l.s.y, X, Y), fill: 'none', stroke: l.color, 'stroke-width': 1.6});
      if (l.dash) p.setAttribute('stroke-dasharray', l.dash);
      svg.appendChild(p);
      var few = l.s.x.filter(function (v, i) { return isFinite(l.s.y[i]); }).length;
      if (l.s.markers || few <= 2)
        l.s.x.forEach(function (x, i) {
          if (isFinite(l.s.y[i])) svg.appendChild(sv('circle', {cx: X(x), cy: Y(l.s.y[i]), r: 2.8, fill: l.color}));
        });
    });
    // Hover: a vertical rule at the nearest step and every series' value there.
    var rule = sv('line', {y1: MT, y2: H - MB, class: 'rule', visibility: 'hidden'});
    svg.appendChild(rule);
    var dots = lines.map(function (l) {
      var c = sv('circle', {r: 3.6, fill: l.color, stroke: '#fff', 'stroke-width': 1, visibility: 'hidden'});
      svg.appendChild(c);
      return c;
    });
    var hit = sv('rect', {x: ML, y: MT, width: W - ML - MR, height: H - MT - MB, fill: 'transparent'});
    svg.appendChild(hit);
    var tip = el('div', 'tip');
    tip.hidden = true;
    function show(evt) {
      var r = svg.getBoundingClientRect();
      var px = (evt.clientX - r.left) / r.width * W;
      var sx = xe[0] + (px - ML) / (W - ML - MR) * (xe[1] - xe[0]);
      var all = [];
      lines.forEach(function (l) { all = all.concat(l.s.x); });
      var step = all[nearest(all, sx)];
      rule.setAttribute('x1', X(step));
      rule.setAttribute('x2', X(step));
      rule.setAttribute('visibility', 'visible');
      tip.textContent = '';
      tip.appendChild(el('b', null, 'step ' + step));
      lines.forEach(function (l, k) {
        var i = l.s.x.indexOf(step);
        var row = el('div');
        var sw = el('span', 'sw');
        sw.style.background = l.color;
        row.appendChild(sw);
        var txt = l.name + ': ' + (i < 0 ? '\u2014' : fmt(l.s.y[i]));
        if (i >= 0 && l.s.lo && isFinite(l.s.hi[i])) txt += ' \u00b1 ' + fmt((l.s.hi[i] - l.s.lo[i]) / 2);
        row.appendChild(document.createTextNode(txt));
        tip.appendChild(row);
        if (i >= 0 && isFinite(l.s.y[i])) {
          dots[k].setAttribute('cx', X(step));
          dots[k].setAttribute('cy', Y(l.s.y[i]));
          dots[k].setAttribute('visibility', 'visible');
        } else dots[k].setAttribute('visibility', 'hidden');
      });
      tip.hidden = false;
      var left = (evt.clientX - box.getBoundingClientRect().left) + 14;
      tip.style.left = Math.min(left, box.clientWidth - 200) + 'px';
    }
    function hide() {
      tip.hidden = true;
      rule.setAttribute('visibility', 'hidden');
      dots.forEach(function (d) { d.setAttribute('visibility', 'hidden'); });
    }
    hit.addEventListener('mousemove', show);
    hit.addEventListener('mouseleave', hide);
    hit.addEventListener('click', show);
    box.appendChild(svg);
    box.appendChild(tip);
    var legend = el('div', 'legend');
    lines.forEach(function (l) {
      var item = el('span', 'item');
      var sw = el('span', 'sw' + (l.dash ? ' dashed' : ''));
      sw.style.background = l.color;
      item.appendChild(sw);
      item.appendChild(document.createTextNode(l.name));
      legend.appendChild(item);
    });
    box.appendChild(legend);
    host.appendChild(box);
    return true;
  }

  function drawCharts() {
    var host = document.getElementById("charts"), absent = [];
    var many = RUNS.length > 1;
    CHARTS.forEach(function (chart) {
      var lines = [];
      RUNS.forEach(function (run, ri) {
        chart.series.forEach(function (ser, si) {
          var s = ser.get(run);
          if (!hasData(s)) return;
          var name = many ? run.label + (chart.series.length > 1 ? ' \u00b7 ' + ser.label : '') : ser.label;
          lines.push({s: s, name: name,
                      color: COLORS[(many ? ri : si) % COLORS.length],
                      dash: DASHES[(many ? si : 0) % DASHES.length]});
        });
      });
      if (!lines.length || !drawChart(chart, lines, host)) absent.push(chart.title);
    });
    var a = document.getElementById('absent');
    if (absent.length) a.textContent = 'Not in the log (no values yet, or not measured by this run): ' + absent.join('; ') + '.';
  }

  // ---- the sample browser --------------------------------------------------------------------
  function scoreTable(scores) {
    var t = el('table', 'scores');
    var h = el('tr');
    ['verifier', 'weight', 'score', 'status', 'detail'].forEach(function (c) { h.appendChild(el('th', null, c)); });
    t.appendChild(h);
    scores.forEach(function (s) {
      var tr = el('tr');
      tr.appendChild(el('td', null, s.verifier));
      tr.appendChild(el('td', 'n', fmt(s.weight)));
      tr.appendChild(el('td', 'n', fmt(s.score)));
      tr.appendChild(el('td', s.status === 'ok' ? null : 'warn', s.status));
      tr.appendChild(el('td', 'detail', s.detail || ''));
      t.appendChild(tr);
    });
    return t;
  }
  function sampleCard(r, kind) {
    var c = el('div', 'sample ' + kind);
    var head = kind + ' #' + r[kind] + ' \u00b7 reward ' + fmt(r.reward) + ' \u00b7 advantage ' + fmt(r.advantage) +
               ' \u00b7 ' + fmt(r.n_tokens) + ' tokens \u00b7 ' + (r.finish_reason || '?');
    if (r.task) head += ' \u00b7 ' + r.task;
    c.appendChild(el('div', 'head', head));
    c.appendChild(el('div', 'meta', 'rollout ' + r.id + ', group ' + fmt(r.group_id) + ', sample ' + fmt(r.sample_idx)));
    if (r.scores && r.scores.length) c.appendChild(scoreTable(r.scores));
    c.appendChild(el('div', 'lab', 'prompt'));
    c.appendChild(el('pre', 'prompt', r.prompt || ''));
    c.appendChild(el('div', 'lab', 'completion'));
    c.appendChild(el('pre', 'completion', r.completion || ''));
    if (r.answer !== null && r.answer !== undefined) {
      c.appendChild(el('div', 'lab', 'reference answer'));
      c.appendChild(el('pre', 'answer', r.answer));
    }
    return c;
  }
  function samplesBrowser() {
    var runs = RUNS.filter(function (r) { return r.samples && Object.keys(r.samples).length; });
    var host = document.getElementById('sample-browser');
    if (!runs.length) { host.appendChild(el('p', 'muted', 'No rollouts in the log.')); return; }
    var ctl = el('div', 'controls');
    var runSel = el('select'), stepSel = el('select'), out = el('div', 'samples');
    runSel.id = 'sample-run';
    stepSel.id = 'sample-step';
    runs.forEach(function (r, i) { var o = el('option', null, r.label); o.value = i; runSel.appendChild(o); });
    ctl.appendChild(el('label', null, 'run '));
    ctl.appendChild(runSel);
    ctl.appendChild(el('label', null, ' step '));
    ctl.appendChild(stepSel);
    var prev = el('button', null, '\u25c0'), next = el('button', null, '\u25b6');
    ctl.appendChild(prev);
    ctl.appendChild(next);
    host.appendChild(ctl);
    host.appendChild(out);
    function steps() {
      return Object.keys(runs[runSel.value].samples).map(Number).sort(function (a, b) { return a - b; });
    }
    function fillSteps() {
      stepSel.textContent = '';
      steps().forEach(function (s) { var o = el('option', null, String(s)); o.value = s; stepSel.appendChild(o); });
      stepSel.selectedIndex = stepSel.options.length - 1;
    }
    var summary = el('p', 'muted');
    host.insertBefore(summary, out);
    function render() {
      out.textContent = '';
      var run = runs[runSel.value], list = run.samples[stepSel.value] || [];
      var i = run.steps.step ? run.steps.step.map(num).indexOf(Number(stepSel.value)) : -1;
      var parts = ['step ' + stepSel.value];
      [['reward_mean', 'reward mean'], ['reward_std', 'std'], ['accuracy', 'accuracy'],
       ['len_mean', 'mean length'], ['n_rollouts', 'rollouts']].forEach(function (c) {
        if (i >= 0 && run.steps[c[0]]) parts.push(c[1] + ' ' + fmt(run.steps[c[0]][i]));
      });
      summary.textContent = parts.join(' \u00b7 ');
      ['best', 'worst'].forEach(function (kind) {
        var col = el('div', 'col');
        col.appendChild(el('h3', null, kind === 'best' ? 'Best (highest reward)' : 'Worst (lowest reward)'));
        list.filter(function (r) { return r[kind]; }).sort(function (a, b) { return a[kind] - b[kind]; })
            .forEach(function (r) { col.appendChild(sampleCard(r, kind)); });
        out.appendChild(col);
      });
    }
    runSel.addEventListener('change', function () { fillSteps(); render(); });
    stepSel.addEventListener('change', render);
    prev.addEventListener('click', function () { if (stepSel.selectedIndex > 0) { stepSel.selectedIndex--; render(); } });
    next.addEventListener('click', function () {
      if (stepSel.selectedIndex < stepSel.options.length - 1) { stepSel.selectedIndex++; render(); }
    });
    fillSteps();
    render();
  }

  drawCharts();
  samplesBrowser();
  // For scripts/check_report_browser.sh: how many resources the page fetched (it needs none).
  if (window.performance && performance.getEntriesByType)
    body.setAttribute('data-resources', String(performance.getEntriesByType('resource').length));
  if (!body.hasAttribute('data-report-error')) body.setAttribute('data-report', 'ok');
})();
