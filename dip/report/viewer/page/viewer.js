/* dip-bench results viewer (MIT licence, part of dip-bench).
 * A plain script (no modules, no fetch, nothing remote), so that the page works from file:// and offline. Its data is
 * window.DIP_VIEWER_DATA, set by viewer-data.js (written by `dip viewer`). */
(function () {
  'use strict';

  var DATA = window.DIP_VIEWER_DATA;
  var DISPLAY = 448; // the stage's longer side in CSS pixels (small images are enlarged by a whole factor)
  var KEYS = ['1', '2', '3', '4', '5', '6', '7', '8', '9', '0'];
  var FIELDS = ['dataset', 'task', 'level', 'image'];
  var SVG = 'http://www.w3.org/2000/svg';
  var SERIES = [
    {key: 'psnr_gt', label: 'output to the ground truth', color: '#1565c0', dash: ''},
    {key: 'psnr_gt_avg', label: 'averaged output to the ground truth', color: '#2e7d32', dash: ''},
    {key: 'psnr_obs', label: 'to the observation (data term)', color: '#8d6e63', dash: '6 4'}
  ];
  var PLOT = {width: 560, height: 340, left: 54, right: 16, top: 16, bottom: 42};
  var WATCH_COLORS = ['#6a1b9a', '#00838f', '#ad1457', '#5d4037'];
  /* one colour per rule that watched a fit (its pick: solid, its stop: dotted) */

  var state = {
    tab: 'compare', obs: 0, seed: null, aKey: null, bKey: null, wipe: 50, point: null, dragging: false,
    run: null, frame: 0, logX: true, tilesFor: null, swipe: null, scales: null
  };
  var loaded = {}; // image src -> HTMLImageElement, once it has loaded

  function $(id) { return document.getElementById(id); }

  function make(tag, attributes, text) {
    var node = document.createElement(tag);
    Object.keys(attributes || {}).forEach(function (name) { node.setAttribute(name, attributes[name]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function makeSvg(tag, attributes, text) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attributes || {}).forEach(function (name) { node.setAttribute(name, attributes[name]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function clamp(value, low, high) { return Math.min(high, Math.max(low, value)); }

  function unique(values) {
    return values.filter(function (value, index) { return values.indexOf(value) === index; });
  }

  function shorten(text, most) { return text.length > most ? text.slice(0, most - 1) + '…' : text; }

  /* ---- data ---------------------------------------------------------------------------------------------------- */

  function observation() { return DATA.observations[state.obs]; }

  function entryLabel(entry) {
    return entry.kind === 'dip' && observation().seeds.length > 1 ? entry.label + ' seed ' + entry.seed : entry.label;
  }

  function visibleEntries() {
    return observation().entries.filter(function (entry) {
      return entry.kind !== 'dip' || entry.seed === state.seed;
    });
  }

  function entryByKey(key) {
    var found = visibleEntries().filter(function (entry) { return entry.key === key; });
    return found.length ? found[0] : null;
  }

  function shown() { return visibleEntries().filter(function (entry) { return entry.src; }); }

  function metricText(entry) {
    var obs = observation();
    if (entry.missing) {
      var stage = entry.missing.stage ? entry.missing.stage + ' failed: ' : '';
      return 'missing: ' + stage + entry.missing.error;
    }
    if (entry.kind === 'truth') return 'reference';
    if (entry.kind === 'guide') return "the net's input z: no score";
    if (!entry.metrics) {
      if (!obs.has_truth) return 'no ground truth: no score';
      return entry.kind === 'observation' ? 'not the size of the ground truth: no score' : 'no score';
    }
    var text = 'PSNR ' + entry.metrics.psnr.toFixed(2) + ' dB';
    if (entry.metrics.ssim !== null) text += ' · SSIM ' + entry.metrics.ssim.toFixed(3);
    if (entry.metrics.protocol) text += ' (' + entry.metrics.protocol + ')';
    return text;
  }

  function withImage(src, draw) {
    if (loaded[src]) { draw(loaded[src]); return; }
    var image = new Image();
    image.onload = function () { loaded[src] = image; render(); };
    image.src = src;
  }

  function displaySize(obs) {
    if (!obs.width || !obs.height) return {width: 256, height: 256, factor: 1}; // nothing to show but what failed
    var side = Math.max(obs.width, obs.height);
    var factor = side >= DISPLAY ? DISPLAY / side : Math.max(1, Math.floor(DISPLAY / side));
    return {width: Math.round(obs.width * factor), height: Math.round(obs.height * factor), factor: factor};
  }

  /* ---- selection ------------------------------------------------------------------------------------------------ */

  function fillSelect(select, options, current) {
    select.textContent = '';
    options.forEach(function (option) {
      var node = make('option', {value: String(option.value)}, option.label);
      if (String(option.value) === String(current)) node.selected = true;
      select.appendChild(node);
    });
  }

  function renderToolbar() {
    var obs = observation();
    FIELDS.forEach(function (field, depth) {
      var pool = DATA.observations.filter(function (other) {
        return FIELDS.slice(0, depth).every(function (upper) { return other[upper] === obs[upper]; });
      });
      var values = unique(pool.map(function (other) { return other[field]; }));
      fillSelect($('sel-' + field), values.map(function (value) {
        var label = value;
        if (field === 'level') label = pool.filter(function (o) { return o.level === value; })[0].level_label;
        return {value: value, label: label};
      }), obs[field]);
    });
    $('seed-label').hidden = obs.seeds.length < 2;
    fillSelect($('sel-seed'), obs.seeds.map(function (seed) { return {value: seed, label: String(seed)}; }), state.seed);
  }

  function chooseObservation(field, value) {
    var current = observation();
    var best = -1;
    var bestScore = -1;
    DATA.observations.forEach(function (other, index) {
      if (other[field] !== value) return;
      var score = 0;
      FIELDS.forEach(function (name, depth) {
        if (name !== field && other[name] === current[name]) score += 1 << (FIELDS.length - depth);
      });
      if (score > bestScore) { bestScore = score; best = index; }
    });
    if (best >= 0) setObservation(best);
  }

  function setObservation(index) {
    state.obs = index;
    var obs = observation();
    if (obs.seeds.indexOf(state.seed) < 0) state.seed = obs.seeds.length ? obs.seeds[0] : null;
    var a = entryByKey(state.aKey);
    if (!a || !a.src) {
      var dip = shown().filter(function (entry) { return entry.kind === 'dip'; });
      state.aKey = dip.length ? dip[0].key : (shown().length ? shown()[0].key : null);
    }
    var b = entryByKey(state.bKey);
    if (!b || !b.src) state.bKey = null;
    state.point = null;
    render();
  }

  function selectA(key) { state.aKey = key; render(); }

  function selectB(key) { state.bKey = key === state.aKey ? null : key; render(); }

  function stepMethod(delta) {
    var keys = shown().map(function (entry) { return entry.key; });
    if (!keys.length) return;
    var at = keys.indexOf(state.aKey);
    selectA(keys[(at + delta + keys.length) % keys.length]);
  }

  /* ---- comparison ----------------------------------------------------------------------------------------------- */

  function buildTiles() {
    var container = $('tiles');
    container.textContent = '';
    visibleEntries().forEach(function (entry, index) {
      var tile = make('div', {'class': 'tile' + (entry.src ? '' : ' failed'), 'data-key': entry.key});
      var name = make('div', {'class': 'name'});
      name.appendChild(make('span', {'class': 'key'}, KEYS[index] || ''));
      name.appendChild(make('span', {title: entryLabel(entry)}, entryLabel(entry)));
      tile.appendChild(name);
      tile.appendChild(entry.src ? make('canvas', {width: 148, height: 148}) : make('div', {'class': 'gap'}, 'missing'));
      var metric = metricText(entry);
      tile.appendChild(make('div', {'class': 'metric', title: metric}, shorten(metric, 90)));
      if (entry.kind === 'dip' && entry.run !== undefined) {
        var link = make('a', {href: '#process', 'class': 'process-link'}, 'restoration process ▸');
        link.addEventListener('click', function (event) {
          event.preventDefault();
          event.stopPropagation();
          state.run = entry.run;
          setTab('process');
        });
        tile.appendChild(link);
      }
      if (entry.src) {
        tile.addEventListener('mouseenter', function () { selectA(entry.key); });
        tile.addEventListener('click', function () { selectA(entry.key); });
      }
      container.appendChild(tile);
    });
  }

  function cropBox(obs) {
    var size = displaySize(obs);
    var magnification = Math.max(4, Math.round(2 * size.factor));
    var side = Math.max(2, Math.min(obs.width, obs.height, Math.round(256 / magnification)));
    var point = state.point || {x: obs.width / 2, y: obs.height / 2};
    return {
      x: clamp(Math.round(point.x - side / 2), 0, obs.width - side),
      y: clamp(Math.round(point.y - side / 2), 0, obs.height - side),
      side: side
    };
  }

  function drawCrop(canvas, entry, box) {
    var obs = observation();
    var context = canvas.getContext('2d');
    context.clearRect(0, 0, canvas.width, canvas.height);
    if (!entry || !entry.src) return;
    withImage(entry.src, function (image) {
      var sx = image.naturalWidth / obs.width;
      var sy = image.naturalHeight / obs.height;
      context.imageSmoothingEnabled = false;
      context.drawImage(image, box.x * sx, box.y * sy, box.side * sx, box.side * sy, 0, 0, canvas.width, canvas.height);
    });
  }

  function renderZoom() {
    var obs = observation();
    var box = cropBox(obs);
    var lens = $('lens');
    lens.hidden = !shown().length;
    lens.style.left = (100 * box.x / obs.width) + '%';
    lens.style.top = (100 * box.y / obs.height) + '%';
    lens.style.width = (100 * box.side / obs.width) + '%';
    lens.style.height = (100 * box.side / obs.height) + '%';
    var onRight = state.bKey && state.point && 100 * state.point.x / obs.width > state.wipe;
    drawCrop($('zoom-main'), entryByKey(onRight ? state.bKey : state.aKey), box);
    Array.prototype.forEach.call($('tiles').querySelectorAll('.tile'), function (tile) {
      var canvas = tile.querySelector('canvas');
      if (canvas) drawCrop(canvas, entryByKey(tile.getAttribute('data-key')), box);
    });
  }

  function renderCompare() {
    var obs = observation();
    var size = displaySize(obs);
    var stage = $('stage');
    stage.style.width = size.width + 'px';
    stage.style.height = size.height + 'px';
    $('compare-column').style.width = Math.max(size.width, 360) + 'px';
    stage.classList.toggle('pixelated', size.factor >= 1);
    var tilesFor = state.obs + '/' + state.seed;
    if (state.tilesFor !== tilesFor) { buildTiles(); state.tilesFor = tilesFor; }

    var a = entryByKey(state.aKey);
    var b = entryByKey(state.bKey);
    var imageA = $('img-a');
    imageA.hidden = !(a && a.src);
    if (a && a.src && imageA.getAttribute('src') !== a.src) imageA.setAttribute('src', a.src);
    $('missing-a').hidden = !!(a && a.src);
    $('missing-a').textContent = a ? metricText(a) : 'no image of this observation';
    $('tag-a').textContent = a ? entryLabel(a) : '';

    var wiping = !!(b && b.src);
    $('wipe-layer').hidden = !wiping;
    $('wipe-line').hidden = !wiping;
    $('tag-b').hidden = !wiping;
    $('wipe').disabled = !wiping;
    $('wipe').value = String(state.wipe);
    if (wiping) {
      if ($('img-b').getAttribute('src') !== b.src) $('img-b').setAttribute('src', b.src);
      $('wipe-layer').style.clipPath = 'inset(0 0 0 ' + state.wipe + '%)';
      $('wipe-line').style.left = state.wipe + '%';
      $('tag-b').textContent = entryLabel(b);
    }
    var caption = a ? entryLabel(a) + ': ' + metricText(a) : '';
    if (wiping) caption += '  |  right of the wipe: ' + entryLabel(b) + ': ' + metricText(b);
    $('caption-a').textContent = caption;

    fillSelect($('wipe-with'), [{value: '', label: 'none'}].concat(shown().map(function (entry) {
      return {value: entry.key, label: entryLabel(entry)};
    })), wiping ? b.key : '');

    Array.prototype.forEach.call($('tiles').querySelectorAll('.tile'), function (tile) {
      var key = tile.getAttribute('data-key');
      tile.classList.toggle('active', key === state.aKey);
      tile.classList.toggle('partner', wiping && key === state.bKey);
    });
    renderZoom();
  }

  function onStagePointer(event) {
    var obs = observation();
    var box = $('stage').getBoundingClientRect();
    var fx = clamp((event.clientX - box.left) / box.width, 0, 1);
    var fy = clamp((event.clientY - box.top) / box.height, 0, 1);
    state.point = {x: fx * obs.width, y: fy * obs.height};
    if (state.dragging && state.bKey) {
      state.wipe = Math.round(fx * 1000) / 10;
      renderCompare();
    } else {
      renderZoom();
    }
  }

  /* ---- restoration process -------------------------------------------------------------------------------------- */

  function observationRuns() {
    return observation().entries.filter(function (entry) {
      return entry.kind === 'dip' && entry.run !== undefined;
    });
  }

  function currentRun() { return state.run === null ? null : DATA.runs[state.run]; }

  function renderProcess() {
    var entries = observationRuns();
    $('no-run').hidden = entries.length > 0;
    $('process-body').hidden = entries.length === 0;
    $('sel-run').disabled = entries.length === 0;
    var runs = entries.map(function (entry) { return entry.run; });
    if (!entries.length) { fillSelect($('sel-run'), [], ''); return; }
    if (runs.indexOf(state.run) < 0) {
      var preferred = entries.filter(function (entry) { return entry.key === state.aKey; });
      state.run = (preferred.length ? preferred[0] : entries[0]).run;
      state.frame = Infinity;
    }
    fillSelect($('sel-run'), entries.map(function (entry) {
      return {value: entry.run, label: entry.label + ' seed ' + entry.seed};
    }), state.run);
    var run = currentRun();
    var obs = observation();
    var size = displaySize(obs);
    var stage = $('frame-stage');
    stage.style.width = size.width + 'px';
    stage.style.height = size.height + 'px';
    $('frame-column').style.width = Math.max(size.width, 360) + 'px';
    stage.classList.add('pixelated');
    var frames = run.frames;
    $('frame').hidden = !frames;
    $('frame-still').hidden = !!frames;
    $('frame-slider').disabled = !frames;
    $('prev-frame').disabled = !frames;
    $('next-frame').disabled = !frames;
    if (frames) {
      state.frame = clamp(state.frame, 0, frames.iterations.length - 1);
      $('frame-slider').max = String(frames.iterations.length - 1);
    } else {
      var entry = entries.filter(function (item) { return item.run === state.run; })[0];
      if ($('frame-still').getAttribute('src') !== entry.src) $('frame-still').setAttribute('src', entry.src);
    }
    drawCurve(run);
    renderFacts(run);
    renderFrame();
  }

  function renderFrame() {
    var run = currentRun();
    if (!run) return;
    var frames = run.frames;
    if (!frames) {
      $('frame-caption').textContent = 'This run saved no frames (set fit.' + observation().task +
        '.frames, or `dip restore --frames N`): its restored image is shown.';
      updateMarker(null);
      return;
    }
    var index = state.frame;
    var canvas = $('frame');
    if (canvas.width !== frames.width || canvas.height !== frames.height) {
      canvas.width = frames.width;
      canvas.height = frames.height;
    }
    withImage(frames.src, function (image) {
      var context = canvas.getContext('2d');
      context.imageSmoothingEnabled = false;
      context.clearRect(0, 0, frames.width, frames.height);
      var sx = (index % frames.columns) * frames.width;
      var sy = Math.floor(index / frames.columns) * frames.height;
      context.drawImage(image, sx, sy, frames.width, frames.height, 0, 0, frames.width, frames.height);
    });
    $('frame-slider').value = String(index);
    var text = 'frame ' + (index + 1) + ' of ' + frames.iterations.length + ' · iteration ' +
      frames.iterations[index] + ' of ' + run.iterations;
    if (frames.psnr_obs[index] !== null) text += ' · PSNR to the observation ' + frames.psnr_obs[index].toFixed(2) + ' dB';
    if (frames.psnr_gt[index] !== null) text += ' · to the ground truth ' + frames.psnr_gt[index].toFixed(2) + ' dB';
    $('frame-caption').textContent = text;
    updateMarker(index);
  }

  function stepFrame(delta) {
    var run = currentRun();
    if (!run || !run.frames) return;
    state.frame = clamp(state.frame + delta, 0, run.frames.iterations.length - 1);
    renderFrame();
  }

  function niceTicks(low, high, count) {
    var span = high - low;
    if (!(span > 0)) return [low];
    var step = Math.pow(10, Math.floor(Math.log(span / count) / Math.LN10));
    var ratio = span / count / step;
    if (ratio >= 7.5) step *= 10; else if (ratio >= 3.5) step *= 5; else if (ratio >= 1.5) step *= 2;
    var ticks = [];
    for (var value = Math.ceil(low / step) * step; value <= high + step * 1e-9; value += step) {
      ticks.push(Math.round(value * 1e6) / 1e6);
    }
    return ticks;
  }

  function drawCurve(run) {
    var plot = $('curve');
    plot.textContent = '';
    var legend = $('legend');
    legend.textContent = '';
    var trace = run.trace || {};
    var series = SERIES.filter(function (item) { return trace[item.key]; });
    var values = [];
    series.forEach(function (item) {
      trace[item.key].forEach(function (value) { if (value !== null) values.push(value); });
    });
    if (run.frames) {
      run.frames.psnr_gt.concat(run.frames.psnr_obs).forEach(function (value) { if (value !== null) values.push(value); });
    }
    if (!values.length) {
      plot.appendChild(makeSvg('text', {x: PLOT.width / 2, y: PLOT.height / 2, 'text-anchor': 'middle'},
        'no PSNR trace for this run'));
      state.scales = null;
      return;
    }
    var last = Math.max(1, run.iterations - 1);
    var low = Math.floor(Math.min.apply(null, values) - 0.5);
    var high = Math.ceil(Math.max.apply(null, values) + 0.5);
    var inner = {width: PLOT.width - PLOT.left - PLOT.right, height: PLOT.height - PLOT.top - PLOT.bottom};
    var logX = state.logX;
    var x = function (iteration) {
      var share = logX ? Math.log(1 + iteration) / Math.log(1 + last) : iteration / last;
      return PLOT.left + inner.width * clamp(share, 0, 1);
    };
    var y = function (psnr) { return PLOT.top + inner.height * (1 - (psnr - low) / (high - low)); };
    state.scales = {x: x, y: y};

    var xTicks = logX ? [0, 1, 10, 100, 1000, 10000, 100000].filter(function (tick) { return tick <= last; })
      : niceTicks(0, last, 6);
    if (x(last) - x(xTicks[xTicks.length - 1]) > 36) xTicks.push(last); // the last iteration, where there is room
    xTicks.forEach(function (tick) {
      plot.appendChild(makeSvg('line', {x1: x(tick), x2: x(tick), y1: PLOT.top, y2: PLOT.top + inner.height,
        stroke: '#eceff1'}));
      plot.appendChild(makeSvg('text', {x: x(tick), y: PLOT.top + inner.height + 16, 'text-anchor': 'middle'},
        String(tick)));
    });
    niceTicks(low, high, 6).forEach(function (tick) {
      plot.appendChild(makeSvg('line', {x1: PLOT.left, x2: PLOT.left + inner.width, y1: y(tick), y2: y(tick),
        stroke: '#eceff1'}));
      plot.appendChild(makeSvg('text', {x: PLOT.left - 6, y: y(tick) + 4, 'text-anchor': 'end'}, String(tick)));
    });
    plot.appendChild(makeSvg('rect', {x: PLOT.left, y: PLOT.top, width: inner.width, height: inner.height,
      fill: 'none', stroke: '#b0bec5'}));
    plot.appendChild(makeSvg('text', {x: PLOT.left + inner.width / 2, y: PLOT.height - 6, 'text-anchor': 'middle'},
      logX ? 'iteration (logarithmic)' : 'iteration'));
    plot.appendChild(makeSvg('text', {x: 14, y: PLOT.top + inner.height / 2, 'text-anchor': 'middle',
      transform: 'rotate(-90 14 ' + (PLOT.top + inner.height / 2) + ')'}, 'PSNR (dB)'));

    series.forEach(function (item) {
      var path = '';
      var pen = 'M';
      trace[item.key].forEach(function (value, index) {
        if (value === null) { pen = 'M'; return; }
        path += pen + x(trace.iteration[index]).toFixed(1) + ' ' + y(value).toFixed(1) + ' ';
        pen = 'L';
      });
      plot.appendChild(makeSvg('path', {d: path, fill: 'none', stroke: item.color, 'stroke-width': 1.6,
        'stroke-dasharray': item.dash, 'class': 'series', 'data-series': item.key}));
      addLegend(item.color, item.dash, item.label);
    });

    var marks = [];
    var stopping = run.stopping;
    if (stopping && stopping.stop_iteration !== null) {
      marks.push({at: stopping.stop_iteration - 1, color: '#c62828', dash: '4 3', id: 'es-fired',
        label: stopping.rule + (stopping.continued ? ' would have stopped' : ' stopped') + ' here'});
    }
    if (stopping && stopping.selected_iteration !== null && stopping.selected_iteration !== undefined) {
      marks.push({at: stopping.selected_iteration, color: '#ef6c00', dash: '', id: 'es-pick',
        label: stopping.rule + ' picked this iteration'});
    }
    (run.watched || []).forEach(function (rule, index) {
      var color = WATCH_COLORS[index % WATCH_COLORS.length];
      if (rule.selected_iteration !== null) {
        marks.push({at: rule.selected_iteration, color: color, dash: '', id: 'watch-' + rule.rule + '-pick',
          label: rule.rule + ' (watching) would pick this iteration'});
      }
      if (rule.stop_iteration !== null) {
        marks.push({at: rule.stop_iteration - 1, color: color, dash: '1 3', id: 'watch-' + rule.rule + '-stop',
          label: rule.rule + ' (watching) would stop here'});
      }
    });
    if (run.best) {
      marks.push({at: run.best.iteration, color: '#2e7d32', dash: '2 3', id: 'best',
        label: 'best traced PSNR to the ground truth'});
    }
    marks.forEach(function (mark) {
      plot.appendChild(makeSvg('line', {x1: x(mark.at), x2: x(mark.at), y1: PLOT.top, y2: PLOT.top + inner.height,
        stroke: mark.color, 'stroke-width': 1.4, 'stroke-dasharray': mark.dash, id: mark.id}));
      addLegend(mark.color, mark.dash, mark.label);
    });

    if (run.frames) {
      plot.appendChild(makeSvg('line', {id: 'frame-marker', y1: PLOT.top, y2: PLOT.top + inner.height,
        stroke: '#212121', 'stroke-width': 1.2}));
      plot.appendChild(makeSvg('circle', {id: 'frame-dot', r: 4.5, fill: '#212121', stroke: '#fff',
        'stroke-width': 1.5}));
      addLegend('#212121', '', 'current frame');
    }
  }

  function addLegend(color, dash, label) {
    var item = make('li');
    var swatch = make('span', {'class': 'swatch'});
    swatch.style.borderTopColor = color;
    swatch.style.borderTopStyle = dash ? 'dashed' : 'solid';
    item.appendChild(swatch);
    item.appendChild(document.createTextNode(label));
    $('legend').appendChild(item);
  }

  function updateMarker(index) {
    var marker = $('frame-marker');
    var dot = $('frame-dot');
    var run = currentRun();
    if (!marker || !dot || !state.scales || index === null || !run.frames) return;
    var iteration = run.frames.iterations[index];
    var psnr = run.frames.psnr_gt[index] !== null ? run.frames.psnr_gt[index] : run.frames.psnr_obs[index];
    var at = state.scales.x(iteration).toFixed(1);
    marker.setAttribute('x1', at);
    marker.setAttribute('x2', at);
    dot.setAttribute('cx', at);
    dot.setAttribute('cy', psnr === null ? -10 : state.scales.y(psnr).toFixed(1));
  }

  function renderFacts(run) {
    var facts = $('facts');
    facts.textContent = '';
    var add = function (term, value) {
      facts.appendChild(make('dt', {}, term));
      facts.appendChild(make('dd', {}, value));
    };
    add('iterations', run.iterations + (run.smoke ? ' (a smoke run: not a result)' : ''));
    if (run.output) add('output', run.output + (run.selected_iteration !== null ? ', iteration ' + run.selected_iteration : ''));
    if (run.stop_reason) {
      add('stopped', run.stop_reason === 'iterations' ? 'after all its iterations' : 'by ' + run.stop_reason);
    }
    var stopping = run.stopping;
    if (stopping) {
      var text = stopping.stop_iteration === null ? 'did not fire' :
        (stopping.continued ? 'would have stopped after ' : 'stopped the fit after ') + stopping.stop_iteration +
        ' iterations';
      if (stopping.selected_iteration !== null && stopping.selected_iteration !== undefined) {
        text += '; picked iteration ' + stopping.selected_iteration;
      }
      if (stopping.psnr_gt !== null) text += ' (' + stopping.psnr_gt.toFixed(2) + ' dB to the ground truth)';
      add(stopping.rule, text);
    }
    (run.watched || []).forEach(function (rule) {
      var text = (rule.stop_iteration === null ? 'would not have fired' :
        'would have stopped after ' + rule.stop_iteration + ' iterations');
      if (rule.selected_iteration !== null) text += '; picks iteration ' + rule.selected_iteration;
      if (rule.psnr_gt !== null) text += ' (' + rule.psnr_gt.toFixed(2) + ' dB to the ground truth)';
      add(rule.rule + ' (watching)', text);
    });
    if (run.best) {
      add('best iteration', run.best.iteration + ': ' + run.best.psnr_gt.toFixed(2) +
        ' dB to the ground truth (from the trace; an oracle, for comparison only)');
    } else if (!observation().has_truth) {
      add('ground truth', 'none: only the PSNR to the observation is known');
    }
    add('frames', run.frames ? run.frames.iterations.length + ' of ' + run.frames.width + ' × ' + run.frames.height +
      ' px: ' + run.frames.output : 'none saved');
  }

  /* ---- page ----------------------------------------------------------------------------------------------------- */

  function setTab(tab) {
    state.tab = tab;
    ['compare', 'process'].forEach(function (name) {
      $(name).hidden = name !== tab;
      $('tab-' + name).setAttribute('aria-selected', String(name === tab));
    });
    render();
  }

  function render() {
    if (!DATA.observations.length) return;
    renderToolbar();
    if (state.tab === 'compare') renderCompare(); else renderProcess();
  }

  function onKey(event) {
    var target = event.target || {};
    var tag = target.tagName;
    var slider = tag === 'INPUT' && target.type === 'range';
    if (tag === 'SELECT' || tag === 'TEXTAREA' || (tag === 'INPUT' && target.type !== 'checkbox' && !slider)) return;
    if (slider && /^(Arrow|Home|End|Page)/.test(event.key)) return; // the focused slider moves itself
    if (event.altKey || event.ctrlKey || event.metaKey || !DATA.observations.length) return;
    var handled = true;
    var digit = /^(?:Digit|Numpad)(\d)$/.exec(event.code || '');
    if (state.tab === 'compare' && digit) {
      var entry = visibleEntries()[digit[1] === '0' ? 9 : Number(digit[1]) - 1];
      if (entry && entry.src) { if (event.shiftKey) selectB(entry.key); else selectA(entry.key); }
    } else if (event.key === 'ArrowRight' || event.key === 'ArrowLeft') {
      var delta = event.key === 'ArrowRight' ? 1 : -1;
      if (state.tab === 'compare') stepMethod(delta); else stepFrame(delta);
    } else if (state.tab === 'process' && (event.key === 'Home' || event.key === 'End')) {
      stepFrame(event.key === 'Home' ? -Infinity : Infinity);
    } else {
      handled = false;
    }
    if (handled) event.preventDefault();
  }

  function bind() {
    FIELDS.forEach(function (field) {
      $('sel-' + field).addEventListener('change', function (event) { chooseObservation(field, event.target.value); });
    });
    $('sel-seed').addEventListener('change', function (event) {
      state.seed = Number(event.target.value);
      setObservation(state.obs);
    });
    $('tab-compare').addEventListener('click', function () { setTab('compare'); });
    $('tab-process').addEventListener('click', function () { setTab('process'); });
    $('wipe-with').addEventListener('change', function (event) { selectB(event.target.value || null); });
    $('wipe').addEventListener('input', function (event) {
      state.wipe = Number(event.target.value);
      renderCompare();
    });
    var stage = $('stage');
    stage.addEventListener('pointermove', onStagePointer);
    stage.addEventListener('pointerdown', function (event) {
      state.dragging = true;
      if (stage.setPointerCapture) stage.setPointerCapture(event.pointerId);
      onStagePointer(event);
    });
    ['pointerup', 'pointercancel'].forEach(function (name) {
      stage.addEventListener(name, function () { state.dragging = false; });
    });
    $('sel-run').addEventListener('change', function (event) {
      state.run = Number(event.target.value);
      state.frame = Infinity;
      renderProcess();
    });
    $('log-x').addEventListener('change', function (event) {
      state.logX = event.target.checked;
      renderProcess();
    });
    $('frame-slider').addEventListener('input', function (event) {
      state.frame = Number(event.target.value);
      renderFrame();
    });
    $('prev-frame').addEventListener('click', function () { stepFrame(-1); });
    $('next-frame').addEventListener('click', function () { stepFrame(1); });
    var frameStage = $('frame-stage');
    frameStage.addEventListener('pointerdown', function (event) {
      state.swipe = {x: event.clientX, y: event.clientY};
    });
    frameStage.addEventListener('pointerup', function (event) {
      if (!state.swipe) return;
      var dx = event.clientX - state.swipe.x;
      var dy = event.clientY - state.swipe.y;
      state.swipe = null;
      if (Math.abs(dx) > 30 && Math.abs(dx) > Math.abs(dy)) stepFrame(dx < 0 ? 1 : -1);
    });
    document.addEventListener('keydown', onKey);
    // once a choice is made, the keys step methods and frames again (a focused <select> would take them)
    Array.prototype.forEach.call(document.querySelectorAll('select'), function (select) {
      select.addEventListener('change', function () { select.blur(); });
    });
  }

  function start() {
    if (DATA.title) { document.title = DATA.title; $('title').textContent = DATA.title; }
    if (DATA.smoke_iterations) {
      $('smoke').hidden = false;
      $('smoke').textContent = 'SMOKE RUN: every DIP fit stopped after ' + DATA.smoke_iterations +
        ' iterations; these are not results.';
    }
    if (DATA.notes.length) {
      $('notes').hidden = false;
      $('notes').querySelector('summary').textContent = DATA.notes.length +
        (DATA.notes.length === 1 ? ' run' : ' runs') + ' missing (shown as missing below)';
      DATA.notes.forEach(function (note) { $('notes').querySelector('ul').appendChild(make('li', {}, note)); });
    }
    $('footer').textContent = DATA.generator + ' · ' + DATA.observations.length + ' observations, ' +
      DATA.runs.length + ' DIP runs · a static page: it works offline and loads nothing from the network.';
    bind();
    if (!DATA.observations.length) {
      $('toolbar').hidden = true;
      $('compare').textContent = 'No observation in this summary.';
      return;
    }
    setObservation(0);
  }

  start();
})();
