// livegate review console: hash routing between four pages, polling the admin API
// every 2 s (paused while a dialog is open or the tab is hidden), and the actions.
// Every piece of data enters the page as text (textContent, setAttribute, append of
// strings): app names, list labels and reasons come from publishers and list files,
// so nothing from the API is ever parsed as markup. State changes carry the session's
// CSRF token in X-CSRF-Token.
'use strict';

(() => {
  const POLL_MS = 2000;
  // The thumbnail is re-fetched at most this often (the server rate-limits captures too).
  const THUMBNAIL_MS = 5000;
  const PAGES = ['streams', 'review', 'history', 'lists'];
  const KNOWN_EVENTS = ['match', 'alert', 'shadow_cut', 'cut', 'manual_cut', 'rejected',
    'overload', 'ban_lifted', 'list_updated', 'evidence_confirmed', 'evidence_dismissed', 'allowlist_removed'];

  const csrf = document.querySelector('meta[name="csrf-token"]').getAttribute('content');
  const $ = (selector) => document.querySelector(selector);
  let page = 'streams';
  let pollTimer = null;

  // An element with text and attributes; children are nodes or strings (as text).
  function el(tag, attributes, ...children) {
    const element = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === 'text') element.textContent = String(value);
      else element.setAttribute(name, value === true ? '' : String(value));
    }
    element.append(...children.filter((child) => child !== null && child !== undefined));
    return element;
  }

  // Each cell names its column (`data-label`), which narrow screens show beside the
  // value when a table's rows become cards.
  function labelled(row, table) {
    const headers = [...table.querySelectorAll('thead th')].map((th) => th.textContent);
    [...row.children].forEach((cell, index) => cell.setAttribute('data-label', headers[index] || ''));
    return row;
  }

  function setText(element, text) {
    const value = text === undefined || text === null ? '' : String(text);
    if (element.textContent !== value) element.textContent = value;
  }

  // --- API ---------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(message, status) { super(message); this.status = status; }
  }

  async function api(method, path, body, contentType) {
    const headers = { Accept: 'application/json' };
    const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
    if (method !== 'GET') headers['X-CSRF-Token'] = csrf;
    if (typeof body === 'string') {
      headers['Content-Type'] = contentType || 'text/plain; charset=utf-8';
      init.body = body;
    } else if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    if (response.status === 401) {
      // The session ended (expiry, logout elsewhere): back to the login form.
      window.location.assign('/console');
      throw new ApiError('your session has ended', 401);
    }
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
    if (!response.ok) {
      const message = data && typeof data.error === 'string' ? data.error : `HTTP ${response.status}`;
      throw new ApiError(`${method} ${path}: ${message}`, response.status);
    }
    return data;
  }

  const enc = encodeURIComponent;

  function status(message, isError) {
    const line = $('#status');
    line.className = isError ? 'error' : 'ok';
    setText(line, message);
  }

  // --- Formatting --------------------------------------------------------------------

  function duration(ms) {
    if (!Number.isFinite(ms) || ms < 0) return '';
    const seconds = Math.floor(ms / 1000);
    const h = Math.floor(seconds / 3600);
    const m = Math.floor((seconds % 3600) / 60);
    const s = seconds % 60;
    const two = (n) => String(n).padStart(2, '0');
    return h > 0 ? `${h}:${two(m)}:${two(s)}` : `${m}:${two(s)}`;
  }

  function bitrate(bitsPerSecond) {
    if (!Number.isFinite(bitsPerSecond) || bitsPerSecond < 0) return '';
    if (bitsPerSecond >= 1e6) return `${(bitsPerSecond / 1e6).toFixed(2)} Mbit/s`;
    return `${Math.round(bitsPerSecond / 1e3)} kbit/s`;
  }

  function localTime(rfc3339) {
    const time = Date.parse(rfc3339);
    return Number.isNaN(time) ? String(rfc3339 || '') : new Date(time).toLocaleString();
  }

  // A signal record in one line: kind, list, label, distance or score, variant.
  function signalSummary(signal) {
    if (!signal) return '';
    const parts = [signal.kind];
    if (signal.list) parts.push(`list ${signal.list}`);
    if (signal.label) parts.push(`“${signal.label}”`);
    if (signal.distance !== undefined) parts.push(`distance ${signal.distance}`);
    if (signal.score !== undefined) parts.push(`score ${Number(signal.score).toFixed(3)}`);
    if (signal.variant) parts.push(`view ${signal.variant}`);
    return parts.join(' · ');
  }

  // --- Dialogs -----------------------------------------------------------------------

  // Opens `dialog`; `submit` runs on its form's submission and closes it when it resolves;
  // an error stays in the dialog (and in #status).
  function openDialog(dialog, target, submit) {
    const form = dialog.querySelector('form');
    const error = dialog.querySelector('.dialog-error');
    const button = form.querySelector('button[type="submit"]');
    setText(dialog.querySelector('.target'), target);
    setText(error, '');
    form.onsubmit = async (event) => {
      event.preventDefault();
      if (!form.reportValidity()) return;
      button.disabled = true;
      try {
        const message = await submit();
        dialog.close();
        status(message, false);
        refresh();
      } catch (failure) {
        setText(error, failure.message);
        status(failure.message, true);
      } finally {
        button.disabled = false;
      }
    };
    dialog.showModal();
  }

  for (const dialog of document.querySelectorAll('dialog')) {
    dialog.querySelector('button.cancel').addEventListener('click', () => dialog.close());
    // Polling resumes once the dialog is gone.
    dialog.addEventListener('close', () => schedule(0));
  }

  const anyDialogOpen = () => document.querySelector('dialog[open]') !== null;

  function reasonOf(selector) {
    return $(selector).value.trim();
  }

  function cutStream(streamId, what) {
    $('#cut-reason').value = '';
    openDialog($('#cut-dialog'), what, async () => {
      await api('POST', `/v1/streams/${enc(streamId)}/cut`, { reason: reasonOf('#cut-reason') });
      return `Cut requested for stream ${streamId}.`;
    });
  }

  function banKey(fingerprint, what) {
    $('#ban-reason').value = '';
    openDialog($('#ban-dialog'), what, async () => {
      const answer = await api('POST', `/v1/keys/${enc(fingerprint)}/cut`, { reason: reasonOf('#ban-reason') });
      const cut = answer && Array.isArray(answer.cut) ? answer.cut.length : 0;
      return `Key ${fingerprint} banned; ${cut} stream(s) cut.`;
    });
  }

  // --- Live streams ------------------------------------------------------------------

  const streamRows = new Map(); // id -> {row, cells, previous: {bytes, time}, thumbnailAt}

  function streamRow(stream) {
    const cells = {};
    const cell = (name, className) => { cells[name] = el('td', { class: className }); return cells[name]; };
    const cut = el('button', { type: 'button', class: 'cut', text: 'Cut' });
    const ban = el('button', { type: 'button', class: 'ban', text: 'Ban key' });
    const row = el('tr', { 'data-stream-id': stream.id },
      cell('thumbnail'), cell('app'), cell('key', 'mono'), cell('client', 'mono'), cell('codec'),
      cell('resolution'), cell('bitrate', 'num'), cell('duration', 'num'), cell('keyframes', 'num'),
      cell('signal'), el('td', { class: 'actions' }, cut, ban));
    labelled(row, $('#streams-table'));
    const entry = { row, cells, ban, stream, previous: null, thumbnailAt: 0 };
    cut.addEventListener('click', () => cutStream(entry.stream.id,
      `Stream ${entry.stream.id} (${entry.stream.app || 'no app'}, ${entry.stream.key || 'no key'})`));
    ban.addEventListener('click', () => {
      if (entry.stream.key_fingerprint) banKey(entry.stream.key_fingerprint, `Key ${entry.stream.key}`);
    });
    return entry;
  }

  function updateStream(entry, stream, now) {
    entry.stream = stream;
    const { cells } = entry;
    setText(cells.app, stream.app);
    setText(cells.key, stream.key);
    setText(cells.client, stream.client);
    setText(cells.codec, stream.codec);
    const resolution = stream.resolution
      || (stream.width && stream.height ? `${stream.width}x${stream.height}` : '');
    setText(cells.resolution, resolution);
    const started = Date.parse(stream.started_at);
    const bytes = Number(stream.bytes_from_publisher) || 0;
    const rate = entry.previous && now > entry.previous.time
      ? ((bytes - entry.previous.bytes) * 8 * 1000) / (now - entry.previous.time)
      : (bytes * 8 * 1000) / Math.max(1, now - started);
    entry.previous = { bytes, time: now };
    setText(cells.bitrate, bitrate(rate));
    setText(cells.duration, duration(now - started));
    setText(cells.keyframes, stream.keyframes_analysed);
    const signal = stream.last_signal ? signalSummary(stream.last_signal)
      : stream.last_match_distance !== null && stream.last_match_distance !== undefined
        ? `PDQ distance ${stream.last_match_distance}` : '';
    setText(cells.signal, signal);
    entry.ban.disabled = !stream.key_fingerprint;
    if (stream.thumbnail && now - entry.thumbnailAt >= THUMBNAIL_MS) {
      entry.thumbnailAt = now;
      let image = cells.thumbnail.querySelector('img.thumbnail');
      if (!image) {
        image = el('img', { class: 'thumbnail', alt: `Latest analysed keyframe of stream ${stream.id}` });
        cells.thumbnail.append(image);
      }
      image.setAttribute('src', `/v1/streams/${enc(stream.id)}/thumbnail?at=${now}`);
    } else if (!stream.thumbnail) {
      cells.thumbnail.replaceChildren();
    }
  }

  async function refreshStreams() {
    const answer = await api('GET', '/v1/streams');
    const streams = answer && Array.isArray(answer.streams) ? answer.streams : [];
    const now = Date.now();
    const tbody = $('#streams-table tbody');
    const seen = new Set();
    for (const stream of streams) {
      seen.add(stream.id);
      let entry = streamRows.get(stream.id);
      if (!entry) {
        entry = streamRow(stream);
        streamRows.set(stream.id, entry);
        tbody.append(entry.row);
      }
      updateStream(entry, stream, now);
    }
    for (const [id, entry] of streamRows) {
      if (!seen.has(id)) { entry.row.remove(); streamRows.delete(id); }
    }
    $('#streams-empty').hidden = streams.length > 0;
  }

  // --- Review queue ------------------------------------------------------------------

  const reviewItems = new Map(); // evidence id -> {item, parts}

  function reviewEntry(info) {
    const image = el('img', { class: 'evidence', src: `/v1/evidence/${enc(info.id)}`,
      alt: `Evidence frame ${info.id}`, loading: 'lazy' });
    const state = el('span', { class: 'review-state' });
    const details = el('dl');
    const reviewed = el('p', { class: 'reviewed' });
    const cutNow = el('button', { type: 'button', class: 'cut-now', text: 'Cut now' });
    const ban = el('button', { type: 'button', class: 'ban', text: 'Ban key' });
    const confirm = el('button', { type: 'button', class: 'confirm', text: 'Confirm → add to list' });
    const dismiss = el('button', { type: 'button', class: 'dismiss', text: 'Dismiss' });
    const headline = el('div', { class: 'headline' },
      el('span', { class: 'event', text: info.event }), state,
      el('time', { datetime: info.time, text: localTime(info.time) }));
    const item = el('li', { 'data-evidence-id': info.id },
      el('a', { href: `/v1/evidence/${enc(info.id)}`, target: '_blank', rel: 'noopener' }, image),
      el('div', { class: 'entry' }, headline, details, reviewed,
        el('div', { class: 'actions' }, cutNow, ban, confirm, dismiss)));
    const entry = { item, state, details, reviewed, cutNow, ban, confirm, dismiss, info };
    const label = () => `${entry.info.event} on ${entry.info.app || 'no app'} at ${localTime(entry.info.time)} (evidence ${entry.info.id})`;
    cutNow.addEventListener('click', () => {
      if (entry.info.stream_id) cutStream(entry.info.stream_id, label());
    });
    ban.addEventListener('click', () => {
      if (entry.info.key_fingerprint) banKey(entry.info.key_fingerprint, label());
    });
    confirm.addEventListener('click', () => confirmEvidence(entry.info, label()));
    dismiss.addEventListener('click', () => dismissEvidence(entry.info, label()));
    return entry;
  }

  function updateReview(entry, info) {
    entry.info = info;
    const review = info.review || { state: 'open' };
    setText(entry.state, review.state);
    entry.state.className = `review-state ${review.state}`;
    const signal = info.signal || {};
    const rows = [
      ['Matched entry', signal.label || signal.source || ''],
      ['List', signal.list || ''],
      ['Signal', signalSummary(info.signal)],
      ['App', info.app || ''],
      ['Stream', info.stream_id ? `${info.stream_id}${info.live ? ' (live)' : ' (ended)'}` : ''],
      ['Key fingerprint', info.key_fingerprint || ''],
      ['Client', info.client || ''],
      ['Frame', info.pts_seconds !== undefined && info.pts_seconds !== null ? `pts ${Number(info.pts_seconds).toFixed(2)} s, ${info.width}x${info.height}` : ''],
      ['Reason', info.reason || ''],
    ].filter(([, value]) => value !== '');
    const fingerprint = JSON.stringify(rows);
    if (entry.detailsShown !== fingerprint) {
      entry.detailsShown = fingerprint;
      entry.details.replaceChildren(...rows.flatMap(([name, value]) =>
        [el('dt', { text: name }), el('dd', { text: value })]));
    }
    const done = review.state !== 'open';
    setText(entry.reviewed, done
      ? `${review.state} by ${review.actor || 'unknown'} at ${localTime(review.time)}${review.list ? ` into ${review.list}` : ''}${review.reason ? `: ${review.reason}` : ''}`
      : '');
    entry.reviewed.hidden = !done;
    entry.cutNow.hidden = !(info.live && info.stream_id);
    entry.ban.hidden = !info.key_fingerprint;
    entry.confirm.hidden = done;
    entry.dismiss.hidden = done;
  }

  async function refreshReview() {
    const all = $('#review-all').checked;
    const answer = await api('GET', `/v1/review?state=${all ? 'all' : 'open'}&limit=200`);
    const items = answer && Array.isArray(answer.items) ? answer.items : [];
    const queue = $('#review-queue');
    const seen = new Set();
    items.forEach((info, index) => {
      seen.add(info.id);
      let entry = reviewItems.get(info.id);
      if (!entry) {
        entry = reviewEntry(info);
        reviewItems.set(info.id, entry);
      }
      updateReview(entry, info);
      // Newest first; a node is moved only when out of place (keeps keyboard focus).
      if (queue.children[index] !== entry.item) queue.insertBefore(entry.item, queue.children[index] || null);
    });
    for (const [id, entry] of reviewItems) {
      if (!seen.has(id)) { entry.item.remove(); reviewItems.delete(id); }
    }
    $('#review-empty').hidden = items.length > 0;
    if (!all) setText($('#review-count'), items.length ? items.length : '');
  }

  // The open items' count in the navigation, whatever page is shown.
  async function refreshReviewCount() {
    try {
      const answer = await api('GET', '/v1/review?state=open&limit=1000');
      const count = answer && Array.isArray(answer.items) ? answer.items.length : 0;
      setText($('#review-count'), count ? count : '');
    } catch (_) {
      // Without the review API (older server), no badge.
    }
  }

  function fillSelect(select, names, keepFirst) {
    const current = select.value;
    const fixed = keepFirst ? [select.options[0]] : [];
    select.replaceChildren(...fixed, ...names.map((name) => el('option', { value: name, text: name })));
    if ([...select.options].some((option) => option.value === current)) select.value = current;
  }

  async function confirmEvidence(info, what) {
    try {
      const [hashlists, descriptorlists] = await Promise.all([
        api('GET', '/v1/hashlists'), api('GET', '/v1/descriptorlists')]);
      fillSelect($('#confirm-list'), (hashlists.hashlists || []).map((list) => list.name), false);
      fillSelect($('#confirm-descriptor-list'),
        (descriptorlists.descriptorlists || []).map((list) => list.name), true);
    } catch (failure) {
      status(failure.message, true);
      return;
    }
    $('#confirm-descriptor-list').disabled = !info.has_descriptor;
    $('#confirm-reason').value = '';
    openDialog($('#confirm-dialog'), what, async () => {
      const body = { list: $('#confirm-list').value, reason: reasonOf('#confirm-reason') };
      const descriptorList = $('#confirm-descriptor-list').value;
      if (descriptorList && info.has_descriptor) body.descriptor_list = descriptorList;
      const answer = await api('POST', `/v1/evidence/${enc(info.id)}/confirm`, body);
      return `Confirmed: ${answer.added_hashes || 0} hash(es) and ${answer.added_descriptors || 0} descriptor(s) added.`;
    });
  }

  function dismissEvidence(info, what) {
    $('#dismiss-reason').value = '';
    $('#dismiss-allowlist').checked = false;
    $('#dismiss-allowlist').disabled = !info.key_fingerprint;
    openDialog($('#dismiss-dialog'), what, async () => {
      await api('POST', `/v1/evidence/${enc(info.id)}/dismiss`, {
        reason: reasonOf('#dismiss-reason'),
        allowlist_key: $('#dismiss-allowlist').checked && Boolean(info.key_fingerprint),
      });
      return `Dismissed evidence ${info.id}.`;
    });
  }

  // --- History -----------------------------------------------------------------------

  let historyShown = '';

  async function refreshHistory() {
    const answer = await api('GET', '/v1/events?limit=1000');
    const events = (answer && Array.isArray(answer.events) ? answer.events : []).slice().reverse();
    const eventFilter = $('#history-event').value;
    const appFilter = $('#history-app').value.trim().toLowerCase();
    const names = new Set(KNOWN_EVENTS);
    events.forEach((record) => names.add(record.event));
    const select = $('#history-event');
    if (select.options.length - 1 !== names.size) fillSelect(select, [...names].sort(), true);
    const shown = events.filter((record) => (!eventFilter || record.event === eventFilter)
      && (!appFilter || String(record.app || '').toLowerCase().includes(appFilter)));
    const fingerprint = JSON.stringify(shown);
    if (fingerprint === historyShown) return;
    historyShown = fingerprint;
    const table = $('#history-table');
    const rows = shown.map((record) => labelled(el('tr', { 'data-event': record.event },
      el('td', { text: localTime(record.time) }),
      el('td', { text: record.event }),
      el('td', { text: record.actor || '' }),
      el('td', { text: record.app || '' }),
      el('td', { class: 'mono', text: record.stream_id || '' }),
      el('td', { class: 'mono', text: record.key_fingerprint || '' }),
      el('td', { class: 'mono', text: record.client || '' }),
      el('td', { text: signalSummary(record.signal) }),
      el('td', { text: record.reason || '' }),
      el('td', {}, record.evidence
        ? el('a', { href: `/v1/evidence/${enc(record.evidence)}`, target: '_blank', rel: 'noopener', text: 'frame' })
        : null)), table));
    $('#history-table tbody').replaceChildren(...rows);
    $('#history-empty').hidden = rows.length > 0;
  }

  // --- Lists -------------------------------------------------------------------------

  let listsShown = '';

  async function refreshLists() {
    const [hashlists, descriptorlists] = await Promise.all([
      api('GET', '/v1/hashlists'), api('GET', '/v1/descriptorlists')]);
    const hashes = hashlists && Array.isArray(hashlists.hashlists) ? hashlists.hashlists : [];
    const descriptors = descriptorlists && Array.isArray(descriptorlists.descriptorlists)
      ? descriptorlists.descriptorlists : [];
    const fingerprint = JSON.stringify([hashes, descriptors]);
    if (fingerprint === listsShown) return;
    listsShown = fingerprint;
    $('#hashlists-table tbody').replaceChildren(...hashes.map((list) => {
      const reload = el('button', { type: 'button', class: 'reload', text: 'Reload file' });
      reload.addEventListener('click', () => reloadList(list.name, reload));
      return labelled(el('tr', { 'data-list': list.name },
        el('td', { text: list.name }),
        el('td', { text: list.action }),
        el('td', { class: 'num version', text: list.version }),
        el('td', { class: 'num count', text: list.hashes }),
        el('td', { class: 'num', text: list.added_at_runtime }),
        el('td', { text: localTime(list.loaded_at) }),
        el('td', { class: 'mono', text: list.path }),
        el('td', { class: 'actions' }, reload)), $('#hashlists-table'));
    }));
    fillSelect($('#upload-list'), hashes.map((list) => list.name), false);
    $('#descriptorlists-table tbody').replaceChildren(...descriptors.map((list) => labelled(
      el('tr', { 'data-list': list.name },
        el('td', { text: list.name }),
        el('td', { text: list.action }),
        el('td', { class: 'num version', text: list.version }),
        el('td', { class: 'num count', text: list.descriptors }),
        el('td', { class: 'num', text: list.added_at_runtime }),
        el('td', { class: 'num', text: list.min_cosine }),
        el('td', { text: localTime(list.loaded_at) })), $('#descriptorlists-table'))));
    $('#descriptorlists-empty').hidden = descriptors.length > 0;
  }

  async function reloadList(name, button) {
    button.disabled = true;
    try {
      const answer = await api('POST', `/v1/hashlists/${enc(name)}/reload`);
      status(`List ${name} reloaded: version ${answer.version}, ${answer.hashes} hashes.`, false);
      refresh();
    } catch (failure) {
      status(failure.message, true);
    } finally {
      button.disabled = false;
    }
  }

  $('#upload-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const name = $('#upload-list').value;
    const file = $('#upload-file').files[0];
    const result = $('#upload-result');
    if (!name || !file) {
      setText(result, 'Choose a list and a hash file.');
      return;
    }
    const button = $('#upload-submit');
    button.disabled = true;
    try {
      const text = await file.text();
      const answer = await api('POST', `/v1/hashlists/${enc(name)}/hashes`, text, 'text/plain; charset=utf-8');
      const message = `${file.name}: ${answer.added} hash(es) added to ${name} (${answer.already_present} already present); version ${answer.version}, ${answer.hashes} hashes.`;
      setText(result, message);
      status(message, false);
      $('#upload-file').value = '';
      refresh();
    } catch (failure) {
      setText(result, failure.message);
      status(failure.message, true);
    } finally {
      button.disabled = false;
    }
  });

  // --- Routing and polling -----------------------------------------------------------

  const refreshers = { streams: refreshStreams, review: refreshReview, history: refreshHistory, lists: refreshLists };

  async function refresh() {
    try {
      await refreshers[page]();
      // The review page counts the open queue itself, unless it shows everything.
      if (page !== 'review' || $('#review-all').checked) await refreshReviewCount();
      setText($('#poll-error'), '');
    } catch (failure) {
      setText($('#poll-error'), `Not updated: ${failure.message}`);
    }
  }

  function schedule(delay) {
    clearTimeout(pollTimer);
    pollTimer = setTimeout(async () => {
      if (!anyDialogOpen() && !document.hidden) await refresh();
      if (!anyDialogOpen()) schedule(POLL_MS);
    }, delay);
  }

  function route() {
    const wanted = window.location.hash.replace(/^#/, '');
    page = PAGES.includes(wanted) ? wanted : 'streams';
    for (const name of PAGES) {
      $(`#${name}`).hidden = name !== page;
      const link = $(`#nav-${name}`);
      if (name === page) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
    schedule(0);
  }

  $('#review-all').addEventListener('change', () => schedule(0));
  $('#history-event').addEventListener('change', () => { historyShown = ''; schedule(0); });
  $('#history-app').addEventListener('input', () => { historyShown = ''; schedule(0); });
  document.addEventListener('visibilitychange', () => { if (!document.hidden) schedule(0); });
  window.addEventListener('hashchange', route);
  route();
})();
