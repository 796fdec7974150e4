// hr-dashboard page. Every value from the stream goes into the DOM through textContent or a
// numeric SVG attribute and is never parsed as HTML: a patient id is data, not markup.
//
// Updates arrive over Server-Sent Events (`snapshot`, then `delta` with only the changed tiles,
// and `status` once a second). They are queued and applied once per animation frame, and only
// the changed tiles are touched: a tile's element is updated in place and moved only when its
// sort position (abnormal first, then by id) changes.
'use strict';

(() => {
  const FEED_MAX = 100;
  const STALE_MS = 5000;

  const $ = (id) => document.getElementById(id);
  const grid = $('tiles');
  const feedList = $('feed');
  const template = $('tile-template');
  const filterInput = $('filter');
  const stateSelect = $('state');

  /** id -> { el, parts, rank, state } */
  const tiles = new Map();
  /** ids in display order */
  let order = [];
  const counts = new Map();
  let lastFeedSeq = 0;
  let pending = new Map();
  let pendingRemoved = [];
  let pendingFeed = [];
  let pendingSnapshot = null;
  let frameQueued = false;
  let lastStatusAt = 0;
  let streamOpen = false;

  const cmp = (ar, aid, br, bid) => (ar - br) || (aid < bid ? -1 : aid > bid ? 1 : 0);

  function position(rank, id) {
    let lo = 0;
    let hi = order.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const o = tiles.get(order[mid]);
      if (cmp(o.rank, order[mid], rank, id) < 0) lo = mid + 1; else hi = mid;
    }
    return lo;
  }

  function fmtNum(v, digits) {
    return (typeof v === 'number' && Number.isFinite(v)) ? v.toFixed(digits) : '–';
  }

  // One formatter for all: toLocaleTimeString builds a new one per call, which costs about a
  // second across 1,000 tiles. Times are UTC and say so, like every other hr-stream output.
  const timeFormat = new Intl.DateTimeFormat([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false, timeZone: 'UTC' });

  function fmtTime(ms) {
    if (typeof ms !== 'number' || !Number.isFinite(ms)) return '';
    const d = new Date(ms);
    return Number.isNaN(d.getTime()) ? '' : `${timeFormat.format(d)}Z`;
  }

  function matches(id, state, rank) {
    const f = filterInput.value.trim().toLowerCase();
    if (f && !id.toLowerCase().includes(f)) return false;
    const s = stateSelect.value;
    if (!s) return true;
    if (s === 'abnormal') return rank < 4; // everything but normal and no data
    return s === state;
  }

  function newTile() {
    const el = template.content.firstElementChild.cloneNode(true);
    const q = (sel) => el.querySelector(sel);
    return {
      el,
      parts: {
        pid: q('.pid'), word: q('.word'), num: q('.num'), min: q('.min'), max: q('.max'),
        count: q('.count'), line: q('.line'), dot: q('.dot'), hi: q('.th-hi'), lo: q('.th-lo'),
        when: q('.when'), ep: q('.ep'),
      },
      rank: 99,
      state: null,
    };
  }

  function drawSpark(p, spark, thresholds) {
    const hiT = (thresholds && Number.isFinite(thresholds.tachycardia_above)) ? thresholds.tachycardia_above : 100;
    const loT = (thresholds && Number.isFinite(thresholds.bradycardia_below)) ? thresholds.bradycardia_below : 50;
    const vals = (Array.isArray(spark) ? spark : []).filter((v) => typeof v === 'number' && Number.isFinite(v));
    // A fixed range around the thresholds keeps tiles comparable; extremes widen it.
    const top = Math.max(hiT + 30, ...vals);
    const bottom = Math.min(loT - 20, ...vals);
    const y = (v) => 34 - ((v - bottom) / (top - bottom || 1)) * 32;
    p.hi.setAttribute('y1', y(hiT).toFixed(1));
    p.hi.setAttribute('y2', y(hiT).toFixed(1));
    p.lo.setAttribute('y1', y(loT).toFixed(1));
    p.lo.setAttribute('y2', y(loT).toFixed(1));
    const step = vals.length > 1 ? 120 / (vals.length - 1) : 0;
    const pts = vals.map((v, i) => `${(i * step).toFixed(1)},${y(v).toFixed(1)}`);
    p.line.setAttribute('points', pts.join(' '));
    if (vals.length) {
      p.dot.setAttribute('cx', ((vals.length - 1) * step || 60).toFixed(1));
      p.dot.setAttribute('cy', y(vals[vals.length - 1]).toFixed(1));
    } else {
      p.dot.setAttribute('cx', '-10');
    }
  }

  function bump(state, by) {
    if (state === null) return;
    counts.set(state, (counts.get(state) || 0) + by);
  }

  function placeTile(t, id, rank) {
    if (t.rank === rank && t.el.isConnected) return;
    if (t.el.isConnected) {
      const at = position(t.rank, id);
      if (order[at] === id) order.splice(at, 1);
    }
    t.rank = rank;
    const at = position(rank, id);
    order.splice(at, 0, id);
    const next = at + 1 < order.length ? tiles.get(order[at + 1]).el : null;
    grid.insertBefore(t.el, next);
  }

  function applyTile(d) {
    const id = String(d.id);
    let t = tiles.get(id);
    if (!t) {
      t = newTile();
      t.parts.pid.textContent = id;
      t.parts.pid.title = id;
      tiles.set(id, t);
    }
    const state = String(d.state || 'no_data');
    const rank = Number.isFinite(d.rank) ? d.rank : 5;
    if (t.state !== state) {
      bump(t.state, -1);
      bump(state, 1);
      if (t.state) t.el.classList.remove(`st-${t.state}`);
      t.el.classList.add(`st-${state}`);
      t.el.dataset.state = state;
      t.state = state;
    }
    const p = t.parts;
    p.word.textContent = String(d.word || state);
    const w = d.latest;
    p.num.textContent = w ? fmtNum(w.avg, 1) : '–';
    p.min.textContent = w ? fmtNum(w.min, 0) : '–';
    p.max.textContent = w ? fmtNum(w.max, 0) : '–';
    p.count.textContent = (w && Number.isFinite(w.count)) ? String(w.count) : '–';
    p.when.textContent = w ? `window ${fmtTime(w.start)}–${fmtTime(w.end)}${w.revision > 0 ? ` (rev ${w.revision})` : ''}` : '';
    const eps = Array.isArray(d.episodes) ? d.episodes : [];
    p.ep.textContent = eps.length ? `episode: ${eps.map((e) => String(e.kind).replace(/_/g, ' ')).join(', ')}` : '';
    drawSpark(p, d.spark, d.thresholds);
    placeTile(t, id, rank);
    t.el.hidden = !matches(id, state, rank);
  }

  function removeTile(id) {
    const t = tiles.get(id);
    if (!t) return;
    const at = position(t.rank, id);
    if (order[at] === id) order.splice(at, 1);
    bump(t.state, -1);
    t.el.remove();
    tiles.delete(id);
  }

  function feedWord(f) {
    const kind = String(f.kind || '').replace(/_/g, ' ');
    if (f.what === 'episode') {
      const k = f.kind === 'signal_loss' ? 'signal loss' : kind;
      return `${k} episode ${f.state === 'cleared' ? 'cleared' : 'raised'}`;
    }
    return kind;
  }

  function addFeed(f) {
    if (!(f.seq > lastFeedSeq)) return;
    lastFeedSeq = f.seq;
    const li = document.createElement('li');
    const state = f.what === 'episode' && f.kind === 'signal_loss' ? 'signal_lost' : String(f.kind);
    li.className = `st-${/^[a-z_]+$/.test(state) ? state : 'other'}`;
    const t = document.createElement('span');
    t.className = 't';
    t.textContent = fmtTime(f.window_end ?? f.window_start);
    const p = document.createElement('span');
    p.className = 'p';
    p.textContent = String(f.patient_id);
    const w = document.createElement('span');
    w.textContent = feedWord(f) + (Number.isFinite(f.avg) ? ` · ${fmtNum(f.avg, 1)} bpm` : '');
    li.append(t, p, w);
    feedList.prepend(li);
    while (feedList.childElementCount > FEED_MAX) feedList.lastElementChild.remove();
  }

  const STATE_WORDS = [
    ['signal_lost', 'signal lost'], ['tachycardia', 'tachycardia'], ['bradycardia', 'bradycardia'],
    ['other', 'other'], ['insufficient_data', 'insufficient data'], ['normal', 'normal'], ['no_data', 'no data'],
  ];

  function refreshCounts() {
    let shown = 0;
    for (const t of tiles.values()) if (!t.el.hidden) shown += 1;
    $('shown').textContent = tiles.size ? `Showing ${shown} of ${tiles.size} patients` : 'No patients yet';
    $('counts').textContent = STATE_WORDS
      .filter(([s]) => counts.get(s) > 0)
      .map(([s, word]) => `${counts.get(s)} ${word}`)
      .join(' · ');
  }

  function flush() {
    frameQueued = false;
    if (pendingSnapshot) {
      const s = pendingSnapshot;
      pendingSnapshot = null;
      const keep = new Set(s.tiles.map((d) => String(d.id)));
      for (const id of [...tiles.keys()]) if (!keep.has(id)) removeTile(id);
      for (const d of s.tiles) applyTile(d);
      // The snapshot holds the whole feed; a restarted server also numbers it afresh.
      feedList.replaceChildren();
      lastFeedSeq = 0;
      for (const f of s.feed) addFeed(f);
    }
    for (const id of pendingRemoved) removeTile(id);
    pendingRemoved = [];
    for (const d of pending.values()) applyTile(d);
    pending = new Map();
    for (const f of pendingFeed) addFeed(f);
    pendingFeed = [];
    refreshCounts();
  }

  function schedule() {
    if (!frameQueued) {
      frameQueued = true;
      requestAnimationFrame(flush);
    }
  }

  function applyFilter() {
    for (const [id, t] of tiles) t.el.hidden = !matches(id, t.state, t.rank);
    refreshCounts();
  }

  let filterTimer = 0;
  filterInput.addEventListener('input', () => {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(applyFilter, 80);
  });
  stateSelect.addEventListener('change', applyFilter);

  function setConn(level, message) {
    const c = $('conn');
    c.className = `conn level-${level}`;
    c.textContent = message;
  }

  function showJob(job, url) {
    const el = $('job');
    el.classList.toggle('unavailable', job.status === 'unavailable');
    if (job.status === 'off') {
      el.textContent = 'Job: metrics not configured';
    } else if (job.status === 'waiting') {
      el.textContent = 'Job: waiting for the first scrape';
    } else if (job.status === 'unavailable') {
      el.textContent = 'Job: metrics unavailable';
      el.title = `${url || ''}: ${job.error || 'no answer'}`;
    } else {
      const s = job.scrape || {};
      const rate = Number.isFinite(job.rate_per_s) ? `${Math.round(job.rate_per_s).toLocaleString()} records/s` : 'rate –';
      const lag = Number.isFinite(s.lag_records)
        ? `lag ${Math.round(s.lag_records).toLocaleString()} records (${s.partitions} partitions)` : 'lag –';
      const total = Number.isFinite(s.records_total) ? ` · ${Math.round(s.records_total).toLocaleString()} read` : '';
      el.textContent = `Job: ${rate} · ${lag}${total}`;
      el.title = url || '';
    }
  }

  function readerText(r) {
    switch (r.phase) {
      case 'waiting_for_topic': return `${r.topic}: waiting for the topic`;
      case 'joining': return `${r.topic}: joining`;
      case 'failed': return `${r.topic}: failed`;
      default: {
        const bad = r.rejected > 0 ? `, ${r.rejected.toLocaleString()} unreadable` : '';
        return `${r.topic}: ${r.records.toLocaleString()} records${bad}`;
      }
    }
  }

  function onStatus(s) {
    lastStatusAt = Date.now();
    setConn(s.connection.level, s.connection.message);
    showJob(s.job, s.metrics_url);
    $('topics').textContent = (Array.isArray(s.readers) ? s.readers : []).map(readerText).join(' · ');
  }

  function parse(e) {
    try {
      return JSON.parse(e.data);
    } catch (err) {
      console.warn('hr-dashboard: unreadable event', err);
      return null;
    }
  }

  const es = new EventSource('events');
  es.addEventListener('open', () => { streamOpen = true; });
  es.addEventListener('snapshot', (e) => {
    const s = parse(e);
    if (!s) return;
    pendingSnapshot = s;
    pending = new Map();
    pendingRemoved = [];
    pendingFeed = [];
    schedule();
  });
  es.addEventListener('delta', (e) => {
    const d = parse(e);
    if (!d) return;
    for (const id of d.removed) {
      pending.delete(String(id));
      pendingRemoved.push(String(id));
    }
    for (const t of d.tiles) pending.set(String(t.id), t);
    for (const f of d.feed) pendingFeed.push(f);
    schedule();
  });
  es.addEventListener('status', (e) => {
    const s = parse(e);
    if (s) onStatus(s);
  });
  es.addEventListener('error', () => {
    // EventSource reconnects by itself; say so meanwhile.
    streamOpen = false;
    setConn('down', 'Dashboard server unreachable; reconnecting (showing the last data received)');
  });

  setInterval(() => {
    if (streamOpen && lastStatusAt && Date.now() - lastStatusAt > STALE_MS) {
      setConn('down', `No word from the dashboard server for ${Math.round((Date.now() - lastStatusAt) / 1000)} s`);
    }
  }, 1000);

})();
