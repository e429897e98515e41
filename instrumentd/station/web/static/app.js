// The station's web page: reads the HTTP API like any client (see
// doc/api.md) and follows each instrument's event stream; nothing is
// polled.  No build step: this file is served as it is.
"use strict";

(() => {
  const TOKEN_KEY = "instrumentd.token";
  const MUTATING = new Set(["POST", "PATCH", "PUT", "DELETE"]);
  // Plots show this many seconds back; points older than the longest
  // window are dropped.
  const WINDOWS = { "5 min": 300, "15 min": 900, "1 hour": 3600 };
  const KEEP = 3600;
  // The port agent's counters are fetched when an event says something
  // happened, at most this often (ms).
  const COUNTERS_EVERY = 5000;

  const instruments = new Map();
  let selected = null;
  let windowSeconds = 3600;
  let pendingToken = null;
  let terminal = null;
  let terminalLoading = null;
  let inputChain = Promise.resolve();

  const $ = (id) => document.getElementById(id);

  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (name === "text") node.textContent = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value);
    }
    for (const child of children) node.append(child);
    return node;
  }

  function show(id, text) {
    const node = $(id);
    node.textContent = text || "";
    node.hidden = !text;
  }

  function timeText(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    return new Date(seconds * 1000).toISOString().replace(".000", "").replace("T", " ");
  }

  function valueText(value) {
    return typeof value === "string" ? value : JSON.stringify(value);
  }

  // --- The API, with the token asked for once -------------------------

  function tokenStatus() {
    const given = sessionStorage.getItem(TOKEN_KEY) !== null;
    $("token-status").textContent = given ? "token given for this session" : "no token given";
  }

  function askToken(reason) {
    if (pendingToken) return pendingToken;
    const dialog = $("token-dialog");
    $("token-reason").textContent = reason;
    $("token-input").value = "";
    pendingToken = new Promise((resolve) => {
      dialog.addEventListener(
        "close",
        () => {
          pendingToken = null;
          const value = $("token-input").value.trim();
          if (dialog.returnValue === "ok" && value) {
            sessionStorage.setItem(TOKEN_KEY, value);
            tokenStatus();
            resolve(true);
          } else {
            resolve(false);
          }
        },
        { once: true },
      );
    });
    dialog.returnValue = "";
    dialog.showModal();
    return pendingToken;
  }

  // One request; a change refused for want of the token asks for it once
  // and is sent again.  Answers {ok, status, data}; an error's words are
  // the API's own (data.error.message).
  async function api(method, path, body) {
    for (let attempt = 0; ; attempt += 1) {
      const headers = {};
      const token = sessionStorage.getItem(TOKEN_KEY);
      if (token !== null && MUTATING.has(method)) headers.Authorization = `Bearer ${token}`;
      if (body !== undefined) headers["Content-Type"] = "application/json";
      let response;
      try {
        response = await fetch(path, {
          method,
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
        });
      } catch (error) {
        return { ok: false, status: 0, data: { error: { message: `the station did not answer (${error.message})` } } };
      }
      let data = null;
      try {
        data = await response.json();
      } catch (_) {
        data = null;
      }
      if (response.status === 401 && MUTATING.has(method) && attempt === 0) {
        if (token !== null) {
          sessionStorage.removeItem(TOKEN_KEY);
          tokenStatus();
        }
        const message = data && data.error ? data.error.message : "this station needs a token";
        if (await askToken(message)) continue;
      }
      return { ok: response.ok, status: response.status, data };
    }
  }

  function errorText(answer) {
    if (answer.data && answer.data.error) return answer.data.error.message;
    return `the station answered ${answer.status}`;
  }

  // --- The instruments table ------------------------------------------

  function addRow(model) {
    const cells = {};
    const row = el("tr", { "data-instrument": model.name, onclick: () => select(model.name) });
    for (const key of ["name", "state", "link", "error", "sample", "rate", "bytes", "clients", "drops"]) {
      cells[key] = el("td", { class: `col-${key}` });
      row.append(cells[key]);
    }
    cells.name.textContent = model.name;
    $("instruments").tBodies[0].append(row);
    model.row = row;
    model.cells = cells;
  }

  function samplesPerMinute(model) {
    const since = Date.now() / 1000 - 60;
    while (model.recent.length && model.recent[0] < since) model.recent.shift();
    return model.recent.length;
  }

  function render(model) {
    const cells = model.cells;
    cells.state.textContent = model.state || "—";
    cells.link.textContent = model.linkUp ? "up" : `down${model.problem ? `: ${model.problem}` : ""}`;
    cells.link.className = `col-link ${model.linkUp ? "up" : "down"}`;
    cells.error.textContent = model.lastError ? `${timeText(model.lastError.time)} ${model.lastError.message}` : "—";
    cells.sample.textContent = timeText(model.lastSample);
    cells.rate.textContent = String(samplesPerMinute(model));
    const stats = model.stats;
    if (stats) {
      const link = stats.instrument || {};
      cells.bytes.textContent = `${link.bytes_in ?? "—"} / ${link.bytes_out ?? "—"}`;
      const clients = Object.values(stats.clients || {}).reduce((a, b) => a + b, 0);
      cells.clients.textContent = String(clients);
      cells.drops.textContent = String((stats.bytes_dropped || 0) + (stats.slow_clients_cut_off || 0));
    } else {
      for (const key of ["bytes", "clients", "drops"]) cells[key].textContent = "—";
    }
    model.row.classList.toggle("selected", model.name === selected);
  }

  async function refreshCounters(model, now) {
    if (!now && Date.now() - model.countersAt < COUNTERS_EVERY) return;
    model.countersAt = Date.now();
    const answer = await api("GET", `/api/instruments/${encodeURIComponent(model.name)}/port-agent`);
    model.stats = answer.ok ? answer.data.stats : null;
    render(model);
  }

  // --- Everything about one instrument -------------------------------

  async function refreshInstrument(model) {
    const answer = await api("GET", `/api/instruments/${encodeURIComponent(model.name)}`);
    if (!answer.ok) {
      show("station-error", errorText(answer));
      return;
    }
    const info = answer.data;
    model.info = info;
    model.state = info.state;
    model.linkUp = info.connected;
    if (info.problem !== undefined) model.problem = info.problem;
    model.parameters = Object.assign({}, info.parameters);
    model.available = (info.capabilities && info.capabilities.commands) || [];
    if (info.latest_error && !model.lastError) model.lastError = info.latest_error;
    if (info.latest_sample && model.lastSample === null) addSample(model, info.latest_sample);
    render(model);
    if (model.name === selected) renderDetail();
  }

  // The station's own words for why an instrument is not working (its
  // "problem"): events say that the link changed, the list says why.
  async function refreshProblem(model) {
    const answer = await api("GET", "/api/instruments");
    if (!answer.ok) return;
    for (const each of answer.data.instruments) {
      if (each.name !== model.name) continue;
      model.state = each.state;
      model.linkUp = each.connected;
      model.problem = each.problem;
      render(model);
    }
  }

  async function refreshCommands(model) {
    const answer = await api("GET", `/api/instruments/${encodeURIComponent(model.name)}/commands`);
    if (answer.ok) {
      model.available = answer.data.available;
      if (model.name === selected) renderCommands(model);
    }
  }

  // A SAMPLE event's record (doc/data.md, version 2). A station of an
  // older version sends "particle" in the old layout: read it the same way.
  function recordOf(event) {
    if (event.record) return event.record;
    const particle = event.particle || {};
    const values = {};
    const units = {};
    for (const { value_id: id, value, units: unit } of particle.values || []) {
      values[id] = value;
      if (unit) units[id] = unit;
    }
    return { stream: particle.stream_name, values, units };
  }

  // A value's units: the driver's stream metadata, else what the sample
  // itself said.
  function units(model, stream, field) {
    const streams = (model.info && model.info.metadata && model.info.metadata.streams) || {};
    const meta = (streams[stream] || {})[field];
    if (meta && meta.units) return meta.units;
    const given = model.latest ? recordOf(model.latest).units || {} : {};
    return given[field] || "";
  }

  function addSample(model, event) {
    const record = recordOf(event);
    const stream = record.stream || "?";
    model.lastSample = event.time;
    model.latest = event;
    let series = model.series.get(stream);
    if (!series) {
      series = { times: [], fields: new Map() };
      model.series.set(stream, series);
    }
    series.times.push(event.time);
    const seen = new Set();
    for (const [id, value] of Object.entries(record.values || {})) {
      // Plot numeric scalars only: strings, flags and per-cell arrays
      // are shown in the latest record instead.
      if (typeof value !== "number" || !Number.isFinite(value)) continue;
      seen.add(id);
      if (!series.fields.has(id)) series.fields.set(id, new Array(series.times.length - 1).fill(null));
      series.fields.get(id).push(value);
    }
    for (const [id, points] of series.fields) if (!seen.has(id)) points.push(null);
    const oldest = event.time - KEEP;
    while (series.times.length && series.times[0] < oldest) {
      series.times.shift();
      for (const points of series.fields.values()) points.shift();
    }
  }

  // --- Event streams ---------------------------------------------------

  // One stream for every instrument (GET /api/events): a browser allows
  // only a few connections to one station, so not one per instrument.
  function follow() {
    const source = new EventSource("/api/events");
    source.onopen = () => {
      show("station-error", "");
      // Whatever changed while the stream was away.
      for (const model of instruments.values()) {
        refreshInstrument(model);
        refreshCounters(model, true);
      }
    };
    source.onerror = () => {
      if (source.readyState !== EventSource.OPEN) show("station-error", "the station's event stream was interrupted; reconnecting");
    };
    // The page holds no stream open once it is left (or put in the
    // back-forward cache).
    addEventListener("pagehide", () => source.close());
    addEventListener("pageshow", (shown) => {
      if (shown.persisted) location.reload();
    });
    const on = (type, handle) =>
      source.addEventListener(type, (message) => {
        const event = JSON.parse(message.data);
        const model = instruments.get(event.instrument);
        if (!model) return;
        handle(model, event);
        render(model);
        if (type !== "DIRECT_ACCESS") refreshCounters(model, false);
      });
    on("SAMPLE", (model, event) => {
      model.recent.push(event.time);
      addSample(model, event);
      if (model.name === selected) {
        updatePlots(model);
        renderLatest(model);
      }
    });
    on("STATE_CHANGE", (model, event) => {
      model.state = event.state;
      refreshCommands(model);
    });
    on("CONNECTION", (model, event) => {
      model.linkUp = event.state === "CONNECTED";
      model.problem = model.linkUp ? null : event.reason || null;
      refreshProblem(model);
    });
    on("ERROR", (model, event) => {
      model.lastError = event;
      if (!model.linkUp) refreshProblem(model);
    });
    on("CONFIG_CHANGE", (model, event) => {
      Object.assign(model.parameters, event.changes || {});
      if (model.name === selected) renderParameters(model);
    });
    on("DIRECT_ACCESS", (model, event) => {
      if (model.name === selected && terminal) terminal.write(Uint8Array.from(atob(event.data), (c) => c.charCodeAt(0)));
    });
  }

  // --- The detail view --------------------------------------------------

  function select(name) {
    if (selected === name) return;
    selected = name;
    if (location.hash !== `#${encodeURIComponent(name)}`) history.replaceState(null, "", `#${encodeURIComponent(name)}`);
    for (const model of instruments.values()) render(model);
    if (terminal) terminal.reset();
    renderDetail();
  }

  function renderDetail() {
    const model = instruments.get(selected);
    if (!model) return;
    $("detail").hidden = false;
    $("detail-name").textContent = model.name;
    renderCommands(model);
    renderLatest(model);
    renderParameters(model);
    buildPlots(model);
  }

  function renderCommands(model) {
    const box = $("commands");
    box.replaceChildren();
    const described = (model.info && model.info.metadata && model.info.metadata.commands) || {};
    for (const name of model.available) {
      const meta = described[name] || {};
      // Commands that need arguments have their own controls (the
      // parameter form, direct access).
      if (Object.keys(meta.arguments || {}).length) continue;
      if (name === "start_direct" || name === "stop_direct") continue;
      box.append(
        el("button", {
          type: "button",
          "data-command": name,
          title: meta.description || "",
          text: meta.display_name || name,
          onclick: () => runCommand(model, name),
        }),
      );
    }
  }

  async function runCommand(model, name) {
    show("command-result", `${name}: running…`);
    const answer = await api("POST", `/api/instruments/${encodeURIComponent(model.name)}/commands/${encodeURIComponent(name)}`);
    const node = $("command-result");
    node.classList.toggle("error", !answer.ok);
    if (answer.ok) show("command-result", `${name}: ${JSON.stringify(answer.data.result)} (state ${answer.data.state})`);
    else show("command-result", `${name}: ${errorText(answer)}`);
  }

  function renderLatest(model) {
    const body = $("latest").tBodies[0];
    body.replaceChildren();
    const event = model.latest;
    if (!event) return;
    const record = recordOf(event);
    const stream = record.stream;
    // The time the sample was taken (ISO 8601 UTC in the record).
    const taken = timeText(record.time ? Date.parse(record.time) / 1000 : event.time);
    body.append(el("tr", {}, el("th", { text: "stream" }), el("td", { text: stream }), el("td")));
    body.append(el("tr", {}, el("th", { text: "time" }), el("td", { text: taken }), el("td")));
    for (const [id, value] of Object.entries(record.values || {})) {
      body.append(el("tr", {}, el("th", { text: id }), el("td", { text: valueText(value) }), el("td", { text: units(model, stream, id) })));
    }
  }

  function renderParameters(model) {
    const meta = (model.info && model.info.metadata && model.info.metadata.parameters) || {};
    const body = $("parameters").tBodies[0];
    body.replaceChildren();
    const choice = $("parameter-name");
    const chosen = choice.value;
    choice.replaceChildren();
    for (const [name, value] of Object.entries(model.parameters || {})) {
      const about = meta[name] || {};
      const kind = about.value || {};
      const range = rangeText(about);
      body.append(
        el(
          "tr",
          { "data-parameter": name },
          el("th", { text: name, title: about.display_name || "" }),
          el("td", { text: valueText(value) }),
          el("td", { text: kind.units || "" }),
          el("td", { text: range }),
          el("td", { text: (about.visibility || "").toLowerCase().replace("_", " ") }),
          el("td", { text: about.description || about.display_name || "" }),
        ),
      );
      if (!about.visibility || about.visibility === "READ_WRITE") choice.append(el("option", { value: name, text: name }));
    }
    if (chosen) choice.value = chosen;
  }

  function rangeText(about) {
    if (about.range) {
      const [low, high] = about.range;
      if (low !== null && high !== null) return `${low} – ${high}`;
      if (low !== null) return `≥ ${low}`;
      if (high !== null) return `≤ ${high}`;
    }
    return about.allowed_values ? about.allowed_values.map(valueText).join(", ") : "";
  }

  async function setParameter(submitted) {
    submitted.preventDefault();
    const model = instruments.get(selected);
    const name = $("parameter-name").value;
    const text = $("parameter-value").value.trim();
    let value;
    try {
      value = JSON.parse(text);
    } catch (_) {
      value = text; // not JSON: the text itself
    }
    show("parameter-error", "");
    show("parameter-result", `setting ${name}…`);
    const answer = await api("PATCH", `/api/instruments/${encodeURIComponent(model.name)}/parameters`, { [name]: value });
    if (answer.ok) {
      Object.assign(model.parameters, answer.data.parameters);
      renderParameters(model);
      show("parameter-result", `changed: ${JSON.stringify(answer.data.changed)}`);
    } else {
      show("parameter-result", "");
      show("parameter-error", errorText(answer));
    }
  }

  // --- Plots -----------------------------------------------------------

  function buildPlots(model) {
    const box = $("plots");
    for (const plot of model.plots || []) plot.chart.destroy();
    model.plots = [];
    box.replaceChildren();
    const picker = el("select", { id: "plot-window", "aria-label": "plot window" });
    for (const [label, seconds] of Object.entries(WINDOWS)) {
      const option = el("option", { value: String(seconds), text: `last ${label}` });
      if (seconds === windowSeconds) option.selected = true;
      picker.append(option);
    }
    picker.addEventListener("change", () => {
      windowSeconds = Number(picker.value);
      updatePlots(model);
    });
    box.append(el("div", { class: "plot-controls" }, picker));
    addMissingPlots(model);
  }

  function addMissingPlots(model) {
    if (typeof uPlot === "undefined") return;
    const box = $("plots");
    const width = Math.max(260, Math.min(420, box.clientWidth / 2 - 16));
    for (const [stream, series] of model.series) {
      // A record sent once (a configuration, a status dump at start-up)
      // is no time series: it is in the latest record until it repeats.
      if (series.times.length < 2) continue;
      for (const field of series.fields.keys()) {
        if (model.plots.some((plot) => plot.stream === stream && plot.field === field)) continue;
        const unit = units(model, stream, field);
        const holder = el("div", { class: "plot", "data-stream": stream, "data-field": field, "data-points": "0" });
        box.append(holder);
        const chart = new uPlot(
          {
            title: unit ? `${field} (${stream}), ${unit}` : `${field} (${stream})`,
            width,
            height: 180,
            legend: { show: false },
            scales: { x: { time: true } },
            axes: [{}, { label: unit, size: 60 }],
            series: [{}, { label: field, stroke: "#1f6fb2", width: 1.5, points: { size: 4 }, spanGaps: true }],
          },
          [[], []],
          holder,
        );
        model.plots.push({ stream, field, chart, holder });
      }
    }
  }

  function updatePlots(model) {
    addMissingPlots(model);
    const now = Date.now() / 1000;
    for (const plot of model.plots) {
      const series = model.series.get(plot.stream);
      const points = series.fields.get(plot.field);
      plot.chart.batch(() => {
        plot.chart.setData([series.times.slice(), points.slice()], false);
        plot.chart.setScale("x", { min: now - windowSeconds, max: now });
      });
      plot.holder.dataset.points = String(points.filter((value) => value !== null).length);
    }
  }

  // --- Direct access ---------------------------------------------------

  function loadTerminal() {
    if (terminalLoading) return terminalLoading;
    terminalLoading = new Promise((resolve, reject) => {
      document.head.append(el("link", { rel: "stylesheet", href: "/static/vendor/@xterm/xterm/xterm.css" }));
      const script = el("script", { src: "/static/vendor/@xterm/xterm/xterm.js" });
      script.addEventListener("load", () => {
        terminal = new Terminal({ convertEol: true, rows: 24, cols: 80, fontSize: 13 });
        terminal.open($("terminal"));
        terminal.onData((text) => sendInput(text));
        resolve(terminal);
      });
      script.addEventListener("error", () => reject(new Error("xterm.js did not load")));
      document.head.append(script);
    });
    return terminalLoading;
  }

  function sendInput(text) {
    const model = instruments.get(selected);
    // Enter sends the line end instruments expect.
    const bytes = text.replace(/\r/g, "\r\n");
    // One request after another, so keystrokes arrive in order.
    inputChain = inputChain.then(async () => {
      const answer = await api("POST", `/api/instruments/${encodeURIComponent(model.name)}/direct-access/input`, { text: bytes });
      show("da-error", answer.ok ? "" : errorText(answer));
    });
  }

  async function enterDirect() {
    const model = instruments.get(selected);
    show("da-error", "");
    const answer = await api("POST", `/api/instruments/${encodeURIComponent(model.name)}/direct-access`);
    if (!answer.ok) {
      show("da-error", errorText(answer));
      return;
    }
    await loadTerminal();
    terminal.reset();
    terminal.focus();
  }

  async function leaveDirect() {
    const model = instruments.get(selected);
    const answer = await api("DELETE", `/api/instruments/${encodeURIComponent(model.name)}/direct-access`);
    show("da-error", answer.ok ? "" : errorText(answer));
  }

  // --- Start -----------------------------------------------------------

  async function start() {
    tokenStatus();
    $("parameter-form").addEventListener("submit", setParameter);
    $("da-enter").addEventListener("click", enterDirect);
    $("da-leave").addEventListener("click", leaveDirect);
    const index = await api("GET", "/api");
    if (!index.ok) {
      show("station-error", errorText(index));
      return;
    }
    $("station-version").textContent = index.data.version;
    const listed = await api("GET", "/api/instruments");
    const problems = {};
    for (const each of listed.ok ? listed.data.instruments : []) problems[each.name] = each.problem;
    for (const name of index.data.instruments) {
      const model = {
        name,
        state: null,
        linkUp: true,
        problem: problems[name] || null,
        lastError: null,
        lastSample: null,
        latest: null,
        recent: [],
        series: new Map(),
        plots: [],
        parameters: {},
        available: [],
        stats: null,
        countersAt: 0,
      };
      instruments.set(name, model);
      addRow(model);
      render(model);
    }
    follow();
    const wanted = decodeURIComponent(location.hash.slice(1));
    select(instruments.has(wanted) ? wanted : index.data.instruments[0]);
    // The samples-per-minute figures age even when nothing arrives.
    setInterval(() => {
      for (const model of instruments.values()) render(model);
    }, 10000);
    document.body.dataset.ready = "true";
  }

  start();
})();
