// dnslab web view: everything live comes from the lab over one event stream (/api/events);
// every action is a control command (/api/command), the same handlers `dnslab` uses.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const MAX_ROWS = 250;          // client queries kept on the page (the lab keeps its own ring)
  const PLAY_MS = 700;

  // --- small helpers --------------------------------------------------------------------
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "text") el.textContent = value;
      else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }
  const bare = (name) => (name && name.length > 1 && name.endsWith(".") ? name.slice(0, -1) : name || "");
  const num = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));
  // Milliseconds as dnslab.events.ms_text writes them: below 1 ms two significant digits ("0.42"), never "0.0".
  const ms = (n) => (n === null || n === undefined ? "–" : n > 0 && n < 1 ? String(Number(n.toPrecision(2)))
    : n < 10 ? n.toFixed(1) : String(Math.round(n)));
  function clockText(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    const hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60), ss = s % 60;
    return `+${hh}:${String(mm).padStart(2, "0")}:${String(ss).padStart(2, "0")}`;
  }
  function timeOfDay(epoch) {
    const d = new Date(epoch * 1000);
    return d.toTimeString().slice(0, 8);
  }
  let toastTimer = null;
  function toast(text, error) {
    const el = $("toast");
    el.textContent = text;
    el.className = "toast show" + (error ? " error" : "");
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { el.className = "toast"; }, error ? 6000 : 3000);
  }
  function banner(text) {
    const el = $("banner");
    el.hidden = !text;
    el.textContent = text || "";
  }

  // --- the token: from the printed link's fragment, kept for this tab only ---------------
  let token = "";
  const fromHash = location.hash.match(/token=([0-9A-Za-z_-]+)/);
  if (fromHash) {
    token = fromHash[1];
    sessionStorage.setItem("dnslab-token", token);
    history.replaceState(null, "", location.pathname);   // out of the address bar and of screenshots
  } else {
    token = sessionStorage.getItem("dnslab-token") || "";
  }

  async function command(name, args) {
    let response;
    try {
      response = await fetch("/api/command", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Dnslab-Token": token },
        body: JSON.stringify({ command: name, args: args || {} }),
      });
    } catch (err) {
      return { ok: false, error: "the lab does not answer (is it still running?)" };
    }
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      return { ok: false, error: body.error || `HTTP ${response.status}` };
    }
    return response.json();
  }
  async function act(name, args, said) {
    const reply = await command(name, args);
    if (!reply.ok) toast(reply.error, true);
    else if (said) toast(typeof said === "function" ? said(reply.result) : said);
    return reply;
  }
  async function getJson(path) {
    const response = await fetch(path, { headers: { "X-Dnslab-Token": token } });
    return response.ok ? response.json() : null;
  }

  // --- state kept by the page ------------------------------------------------------------
  let lab = null;
  let viewer = null;
  let latest = null;             // the last "state" event
  const chips = new Map();       // address -> [chip buttons]
  let selectedServer = null;
  const serverFields = {};
  let lastStats = null;
  let lastTap = null;

  // --- the event stream ------------------------------------------------------------------
  let source = null;
  function setLive(on, text) {
    const el = $("live");
    el.textContent = text || (on ? "live" : "reconnecting…");
    el.className = "live " + (on ? "on" : "off");
  }
  function connect() {
    if (!token) {
      setLive(false, "no token");
      banner("This page needs the lab's token: open the address that `dnslab up` printed " +
             "(http://127.0.0.1:PORT/#token=…), or run `dnslab web` to print it again.");
      return;
    }
    source = new EventSource("/api/events?token=" + encodeURIComponent(token));
    source.addEventListener("open", () => setLive(true));
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) {
        setLive(false, "disconnected");
        banner("The lab refused this page's token, or stopped. Open the address that `dnslab up` printed.");
      } else {
        setLive(false);
      }
    });
    source.addEventListener("hello", (e) => onHello(JSON.parse(e.data)));
    source.addEventListener("queries", (e) => onQueries(JSON.parse(e.data)));
    source.addEventListener("state", (e) => onState(JSON.parse(e.data)));
    // Servers started or stopped by a record change or a reload: the hierarchy is drawn again.
    source.addEventListener("lab", (e) => { lab = JSON.parse(e.data); buildTree(); if (latest) onState(latest); });
  }

  function onHello(data) {
    setLive(true);
    banner("");
    viewer = data.viewer;
    const first = lab === null;
    lab = data.lab;
    if (first) buildTree();
    if (faultKinds === null) loadFaultKinds();
    $("resolver").textContent = lab.resolver
      ? `resolver ${lab.resolver}:${lab.port}` + (lab.workers > 1 ? ` · ${lab.workers} workers (this view: the first)` : "")
      : "no resolver (dnslab up --no-resolver)";
    $("clock-kind").textContent = lab.fake_clock ? "fake clock" : "real clock";
    for (const el of document.querySelectorAll("#clock-form button, #clock-form input")) el.disabled = !lab.fake_clock;
    $("clock-form").title = lab.fake_clock ? "" : "The lab runs on real time; start it with dnslab up --fake-clock to move its clock.";
    addQueries(data.queries, false);
    if (cacheFilter) postView();
  }

  // --- hierarchy --------------------------------------------------------------------------
  function roleOf(origin) {
    const labels = origin.split(".").filter(Boolean).length;
    return labels === 0 ? "root" : labels === 1 ? "TLD" : "authoritative";
  }
  function buildTree() {
    const tree = $("tree");
    tree.replaceChildren();
    chips.clear();
    const byAddress = new Map(lab.servers.map((s) => [s.address, s]));
    const lists = new Map();
    for (const zone of lab.zones) {
      const row = h("div", { class: "chips" });
      for (const address of zone.servers) {
        const server = byAddress.get(address);
        const chip = h("button", {
          type: "button", class: "chip", "data-address": address, "data-zone": zone.origin, "aria-pressed": "false",
          title: `${server.names.map(bare).join(", ")} (${address})`,
          onclick: () => selectServer(address),
        }, h("span", { class: "dot s-up" }), h("span", { class: "name", text: bare(server.names[0]) }),
           h("span", { class: "rtt" }), h("span", { class: "badges" }));
        row.append(chip);
        if (!chips.has(address)) chips.set(address, []);
        chips.get(address).push(chip);
      }
      const dnssecBadge = h("span", { class: "zone-dnssec", "data-zone": zone.origin });
      const item = h("li", { class: "zone" },
        h("span", { class: "zone-name", text: zone.origin }), h("span", { class: "zone-role", text: roleOf(zone.origin) }),
        dnssecBadge, row);
      const parentList = zone.parent ? childList(lists, zone.parent) : tree;
      parentList.append(item);
      lists.set(zone.origin, { item, list: null });
    }
  }
  function childList(lists, origin) {
    const entry = lists.get(origin);
    if (!entry) return $("tree");
    if (!entry.list) {
      entry.list = h("ul", { "aria-label": `zones below ${origin}` });
      entry.item.append(entry.list);
    }
    return entry.list;
  }

  // What a server's faults and the resolver's view of it come to: a colour and some words.
  function statusOf(server) {
    const f = server.fault;
    const badges = [];
    let dot = "up";
    if (f.unreachable) { dot = "down"; badges.push(["down", "unreachable"]); }
    else if (f.down || !server.up) { dot = "down"; badges.push(["down", "down"]); }
    if (f.answer === "servfail" || f.answer === "refused") { badges.push(["error", f.answer.toUpperCase()]); if (dot === "up") dot = "error"; }
    if (f.answer === "lame") { badges.push(["lame", "lame"]); if (dot === "up") dot = "lame"; }
    if (f.answer === "truncate") { badges.push(["trunc", "TC"]); if (dot === "up") dot = "trunc"; }
    if (f.answer && !["servfail", "refused", "lame", "truncate"].includes(f.answer)) {
      badges.push(["error", f.answer]); if (dot === "up") dot = "error";  // a kind this page has no colour for
    }
    if (f.loss_pct) { badges.push(["lossy", `loss ${f.loss_pct}%`]); if (dot === "up") dot = "lossy"; }
    if (f.delay_ms || f.jitter_ms) { badges.push(["slow", `+${f.delay_ms} ms`]); if (dot === "up") dot = "slow"; }
    const withdrawn = server.sites ? server.sites.sites.filter((s) => s.withdrawn).map((s) => s.name) : [];
    if (withdrawn.length) badges.push(["held", `withdrawn ${withdrawn.join(" ")}`]);  // anycast sites taken down
    const view = server.resolver;
    if (view && view.held_for_s !== null && view.held_for_s !== undefined) badges.push(["held", `held ${view.held_for_s} s`]);
    else if (view && view.state === "half-open") badges.push(["probe", "probing"]);
    return { dot, badges };
  }
  function describeState(server) {
    const f = server.faults.length ? server.faults.join(", ") : "no faults";
    return (server.up ? "up" : "down") + (server.faults.length && !(server.faults.length === 1 && server.faults[0] === "down") ? ` (${f})` : server.faults.length ? "" : ", no faults");
  }
  function resolverView(view) {
    if (!view) return "not asked yet";
    const srtt = view.srtt_ms !== null ? `SRTT ${ms(view.srtt_ms)} ms`
      : view.timeouts || view.last_failure ? "no reply yet" : "untried";
    let state = { closed: "ok", open: "held down", "half-open": "probing" }[view.state] || view.state;
    if (view.held_for_s !== null && view.held_for_s !== undefined) state = `held down ${view.held_for_s} s more`;
    return `${srtt} · timeout ${view.timeout_ms} ms · ${view.timeouts} timeouts · ${state}`;
  }
  function updateServers(servers) {
    for (const server of servers) {
      const { dot, badges } = statusOf(server);
      const view = server.resolver;
      for (const chip of chips.get(server.address) || []) {
        chip.querySelector(".dot").className = `dot s-${dot}`;
        chip.classList.toggle("is-down", dot === "down");
        const site = view && view.site ? ` @${view.site}` : "";  // the anycast site the resolver reaches
        chip.querySelector(".rtt").textContent = (view && view.srtt_ms !== null ? `${ms(view.srtt_ms)} ms` : "") + site;
        const holder = chip.querySelector(".badges");
        const words = badges.map(([, text]) => text).join(" ");
        if (holder.dataset.words !== words) {
          holder.dataset.words = words;
          holder.replaceChildren(...badges.map(([cls, text]) => h("span", { class: `badge ${cls}`, text })));
        }
        const sites = server.sites ? `; sites ${server.sites.sites.map((s) =>
          s.withdrawn ? `${s.name} (withdrawn)` : s.name).join(", ")}` : "";
        chip.setAttribute("aria-label", `${chip.querySelector(".name").textContent} ${server.address}: ` +
          `${describeState(server)}; resolver: ${resolverView(view)}${sites}`);
      }
      if (server.address === selectedServer) updateServerDetail(server);
    }
  }
  // Per zone, the server the resolver prefers now: the one to take down to see a failover.
  function updateInUse(inUse) {
    for (const list of chips.values()) {
      for (const chip of list) {
        const on = inUse[chip.dataset.zone] === chip.dataset.address;
        if (chip.classList.contains("in-use") === on) continue;
        chip.classList.toggle("in-use", on);
        const old = chip.querySelector(".badge.use");
        if (old) old.remove();
        if (on) {
          chip.append(h("span", { class: "badge use", text: "in use",
            title: "The resolver's choice for this zone now: the lowest smoothed RTT (one time in ten it " +
              "tries another server of similar speed, as Unbound does). Take this one down to see a failover." }));
        }
      }
    }
  }
  function selectServer(address) {
    selectedServer = address;
    for (const [addr, list] of chips) for (const chip of list) chip.setAttribute("aria-pressed", String(addr === address));
    const plan = lab.servers.find((s) => s.address === address);
    $("server-title").textContent = `${bare(plan.names[0])} · ${address} · ${plan.role}`;
    const dl = h("dl");
    const fields = [["zones", "zones"], ["state", "state"], ["resolver", "resolver's view"]];
    if (plan.names.length > 1) fields.unshift(["names", "names"]);
    const now = latest && latest.servers.find((s) => s.address === address);
    for (const key of ["sites", "steered"]) delete serverFields[key];
    if (now && now.sites) fields.push(["sites", "anycast sites"]);  // docs/ANYCAST.md
    if (now && now.steered && now.steered.length) fields.push(["steered", "steered names"]);  // docs/STEERING.md
    for (const [key, label] of fields) {
      serverFields[key] = h("dd");
      // <div> groups inside <dl> keep each dt/dd pair together for screen readers.
      dl.append(h("div", {}, h("dt", { text: label }), serverFields[key]));
    }
    $("server-detail").replaceChildren(dl);
    if (serverFields.names) serverFields.names.textContent = plan.names.join(", ");
    serverFields.zones.textContent = plan.zones.join(" ");
    $("fault-controls").hidden = false;
    if (latest) {
      const server = latest.servers.find((s) => s.address === address);
      if (server) updateServerDetail(server);
    }
  }
  function updateServerDetail(server) {
    // A secondary's copies (lab.toml [primaries]): "secondary of example.com.: serial N, current".
    const copies = (server.secondary || []).map((c) => ` · secondary of ${c.zone}: serial ${c.serial ?? "none"}, ${c.state}`);
    serverFields.state.textContent = `${describeState(server)} · ${num(server.received)} queries received${copies.join("")}`;
    const view = server.resolver;
    serverFields.resolver.textContent = resolverView(view) +
      (view && view.lame_zones.length ? ` · lame for ${view.lame_zones.join(" ")}` : "");
    if (serverFields.sites && server.sites) {
      const serving = server.sites.serving[lab.location] || null;
      serverFields.sites.textContent = server.sites.sites.map((s) => `${s.name}${s.name === serving ? " (answers the resolver)" : ""}` +
        `${s.withdrawn ? " (withdrawn)" : ""}: ${num(s.queries)} queries`).join(" · ");
    }
    if (serverFields.steered && server.steered) {
      serverFields.steered.textContent = server.steered.map((r) => `${bare(r.name)} ${r.policy}: ` +
        r.endpoints.map((e) => `${e.address} ${e.healthy ? "healthy" : "unhealthy"}`).join(", ") +
        (r.last ? ` → ${r.last.answer.join(" ")}` : "")).join(" · ");
    }
  }
  // The fault buttons and forms, built from the lab's fault registry (dnslab/lab/fault_kinds.py, sent
  // by the faults.kinds command): a kind added there shows here with no change to this page.
  const faultSaid = (r) => `${r.server}: ${r.faults.join(", ") || "no faults"}`;
  let faultKinds = null;
  async function loadFaultKinds() {
    const reply = await command("faults.kinds");
    if (!reply.ok) { toast(reply.error, true); return; }
    faultKinds = reply.result;
    buildFaultControls(faultKinds);
  }
  // "Only for": a selector narrowing the next fault to some queries (dnslab fault --name --type --every --pct).
  const selectInputs = {
    names: h("input", { id: "fault-select-name", type: "text", placeholder: "*.example.com", size: 14,
      title: "Only queries for this name and below, or a glob; several separated by spaces" }),
    types: h("input", { id: "fault-select-type", type: "text", placeholder: "AAAA", size: 6,
      title: "Only queries of this type; several separated by spaces" }),
    every: h("input", { id: "fault-select-every", type: "number", min: 1, step: 1, placeholder: "N",
      title: "One in N of the matching queries: the first, then every Nth (CoreDNS erratic)" }),
    pct: h("input", { id: "fault-select-pct", type: "number", min: 0.001, max: 100, placeholder: "%",
      title: "Each matching query with this probability (seeded)" }),
  };
  function selection() {
    const words = (input) => input.value.trim().split(/\s+/).filter(Boolean);
    const select = { names: words(selectInputs.names), types: words(selectInputs.types),
      every: selectInputs.every.value ? Number(selectInputs.every.value) : null,
      pct: selectInputs.pct.value ? Number(selectInputs.pct.value) : null };
    return select.names.length || select.types.length || select.every || select.pct ? select : null;
  }
  function faultArgs(entry, args) {
    const select = entry.selectable ? selection() : null;
    return select ? { ...args, select } : args;
  }
  function buildFaultControls(listing) {
    const forServer = (entry) => entry.targets.includes("server");
    const capital = (text) => text.charAt(0).toUpperCase() + text.slice(1);
    const plain = [...listing.kinds.filter((k) => forServer(k) && !k.args.length), ...listing.verbs.filter(forServer)];
    if (!$("fault-select")) {
      $("fault-buttons").before(h("div", { id: "fault-select", class: "inline-form", role: "group",
        "aria-label": "Only for some queries" },
        h("label", { for: "fault-select-name", text: "Only for name" }), selectInputs.names,
        h("label", { for: "fault-select-type", text: "type" }), selectInputs.types,
        h("label", { for: "fault-select-every", text: "1 in" }), selectInputs.every,
        h("label", { for: "fault-select-pct", text: "chance" }), selectInputs.pct, h("span", { class: "unit", text: "%" })));
    }
    $("fault-buttons").replaceChildren(...plain.map((entry) => h("button", {
      type: "button", "data-fault": entry.name, title: capital(entry.help), text: entry.label,
      onclick: () => { if (selectedServer) act("fault", faultArgs(entry, { server: selectedServer, kind: entry.name }), faultSaid); },
    })));
    const forms = listing.kinds.filter((k) => forServer(k) && k.args.length).map((kind) => {
      const inputs = kind.args.map((arg) => h("input", {
        id: `fault-${kind.name}-${arg.name.toLowerCase()}`, type: "number", min: arg.low, max: arg.high, step: 1,
        value: arg.example, title: capital(arg.help),
      }));
      const parts = [];
      kind.args.forEach((arg, i) => {
        parts.push(h("label", { for: inputs[i].id, text: i === 0 ? capital(kind.name) : arg.name.toLowerCase(),
          title: capital(kind.help) }), inputs[i]);
        if (arg.unit) parts.push(h("span", { class: "unit", text: arg.unit }));
      });
      return h("form", {
        class: "inline-form", "data-fault-form": kind.name, title: capital(kind.help),
        onsubmit: (e) => {
          e.preventDefault();
          if (!selectedServer) return;
          const args = { server: selectedServer, kind: kind.name };
          kind.args.forEach((arg, i) => { args[arg.field] = Number(inputs[i].value); });
          act("fault", faultArgs(kind, args), faultSaid);
        },
      }, parts, h("button", { type: "submit", text: kind.label }));
    });
    $("fault-forms").replaceChildren(...forms);
  }

  // --- counters and clock -------------------------------------------------------------------
  const COUNTERS = [
    ["queries", "queries"], ["qps", "per s"], ["cache_hits", "cache hits"], ["cache_misses", "misses"],
    ["cache_expired", "expired"], ["upstream_queries", "upstream queries"], ["timeouts", "timeouts"],
    ["failovers", "failovers"], ["servfails", "SERVFAIL"], ["secure", "DNSSEC secure"], ["bogus", "bogus"], ["cache_entries", "cache entries"], ["uptime_s", "uptime"],
  ];
  const counterFields = {};
  for (const [key, label] of COUNTERS) {
    counterFields[key] = h("dd", { text: "–" });
    $("counters").append(h("div", {}, h("dt", { text: label }), counterFields[key]));
  }
  function updateCounters(stats, at) {
    if (!stats) return;
    for (const [key] of COUNTERS) {
      if (key in stats) counterFields[key].textContent = key === "uptime_s" ? clockText(stats[key]).slice(1) : num(stats[key]);
    }
    if (lastStats && at > lastStats.at) {
      const rate = (stats.queries - lastStats.queries) / ((at - lastStats.at) / 1000);
      counterFields.qps.textContent = num(Math.max(0, Math.round(rate)));
    }
    lastStats = { queries: stats.queries, at };
    const parts = (obj) => Object.entries(obj || {}).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(", ");
    counterFields.queries.parentElement.title = `by type: ${parts(stats.by_type) || "–"}\nby rcode: ${parts(stats.by_rcode) || "–"}`;
  }
  function updateClock(clock) {
    $("clock-now").textContent = `t ${clockText(clock.since_start)}`;
    $("clock-now").title = `lab clock reading ${clock.now.toFixed(1)} s (${clock.fake ? "fake: it moves only when you advance it" : "real, monotonic"})`;
  }
  for (const button of $("clock-quick").querySelectorAll("button")) {
    button.addEventListener("click", () => advance(Number(button.dataset.seconds)));
  }
  $("clock-form").addEventListener("submit", (e) => { e.preventDefault(); advance(Number($("clock-seconds").value)); });
  function advance(seconds) {
    act("clock.advance", { seconds }, () => `clock moved ${seconds} s forward: TTLs and hold-downs follow`);
  }

  // --- client queries -------------------------------------------------------------------------
  const rows = new Map();        // id -> { q, tr }
  let paused = false;
  const pending = [];
  let selectedQuery = null;
  const HOW = {
    fast: ["cache", "fast path: a ready reply replayed from the cache"],
    cache: ["cache", "answered from the cache"],
    merged: ["joined", "joined an identical lookup already in flight"],
    stale: ["stale", "stale data served (RFC 8767)"],
    trace: ["trace", "a trace run from this page (dnslab trace), not a client's query"],
    cold: ["from the root", "a walk from the root (dnslab trace --cold): an empty private cache, the shared one untouched"],
  };
  function sourceCell(q) {
    const cell = h("td");
    if (q.how === "upstream") {
      cell.append(h("span", { class: "src src-upstream", text: `${q.upstream_queries} upstream` }));
    } else {
      const [word, tip] = HOW[q.how] || [q.how, q.how];
      cell.append(h("span", { class: `src src-${q.how}`, text: q.how === "fast" ? "cache · fast" : word, title: tip }));
    }
    if (q.failed) cell.append(h("span", { class: "src src-failed", text: `${q.failed} failed`, title: "tries that failed: failover" }));
    return cell;
  }
  function queryRow(q) {
    const label = `${bare(q.name)} ${q.type}, ${q.rcode}, at ${timeOfDay(q.when)}: show its trace`;
    const button = h("button", { type: "button", class: "qbutton", text: bare(q.name), "aria-label": label,
      onclick: () => selectQuery(q.id), onkeydown: rowKeys });
    const tr = h("tr", { "data-id": q.id, class: q.watched ? "watched" : "" },
      h("td", { text: timeOfDay(q.when) }), h("td", {}, button), h("td", { text: q.type }),
      h("td", { class: `rc-${q.rcode}`, text: q.rcode }), sourceCell(q),
      h("td", { class: "num", text: q.ms === null ? "<0.1" : ms(q.ms) }), h("td", { text: q.client + (q.tcp ? " tcp" : "") }));
    return tr;
  }
  function rowKeys(e) {
    if (e.key !== "ArrowDown" && e.key !== "ArrowUp") return;
    const tr = e.target.closest("tr");
    const next = e.key === "ArrowDown" ? tr.nextElementSibling : tr.previousElementSibling;
    if (next) { e.preventDefault(); next.querySelector("button").focus(); }
  }
  function addQueries(list, fresh) {
    const body = $("stream").tBodies[0];
    const wrap = $("stream-wrap");
    const following = wrap.scrollTop < 4;   // at the top: follow the newest; scrolled down: hold still
    let added = false;
    for (const q of list) {
      if (rows.has(q.id)) continue;
      const tr = queryRow(q);
      if (fresh) tr.classList.add("fresh");
      rows.set(q.id, { q, tr });
      body.prepend(tr);
      added = true;
    }
    while (rows.size > MAX_ROWS) {
      const oldest = body.lastElementChild;
      rows.delete(Number(oldest.dataset.id));
      oldest.remove();
    }
    if (added) $("stream-empty").hidden = true;
    if (added && following) wrap.scrollTop = 0;
    if (selectedQuery !== null && rows.has(selectedQuery)) rows.get(selectedQuery).tr.classList.add("selected");
  }
  function onQueries(data) {
    setLive(true);
    if (paused) {
      // The page's own queries go in at once; the rest wait for Resume.
      pending.push(...data.queries.filter((q) => !q.watched));
      addQueries(data.queries.filter((q) => q.watched), true);
      $("pause").textContent = `Resume (${pending.length} new)`;
    } else {
      addQueries(data.queries, true);
    }
    const now = performance.now();
    if (lastTap && now > lastTap.at + 900) {
      const secs = (now - lastTap.at) / 1000;
      const kept = Math.round((data.recorded - lastTap.recorded) / secs);
      const skipped = Math.round((data.skipped - lastTap.skipped) / secs);
      $("sampling").textContent = skipped > 0
        ? `a sample: ${num(kept)} of ${num(kept + skipped)} queries/s recorded, ${num(skipped)}/s skipped`
        : `every query recorded (at most ${lab ? lab.tap_rate : 20}/s are)`;
      lastTap = { at: now, recorded: data.recorded, skipped: data.skipped };
    } else if (!lastTap) {
      lastTap = { at: now, recorded: data.recorded, skipped: data.skipped };
    }
  }
  $("pause").addEventListener("click", () => {
    paused = !paused;
    $("pause").setAttribute("aria-pressed", String(paused));
    if (!paused) {
      addQueries(pending.splice(0), false);
      $("pause").textContent = "Pause";
    } else {
      $("pause").textContent = "Resume";
    }
  });

  $("ask-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const name = $("ask-name").value.trim();
    const type = $("ask-type").value;
    const out = $("ask-result");
    if (!name) return;
    $("ask-send").disabled = true;
    out.className = "ask-result";
    out.textContent = `asking ${name} ${type}…`;
    try {
      if ($("ask-cold").checked) {
        // dnslab trace --cold: not a client's query; the lab keeps it with the page's queries to draw.
        const traced = await command("trace", { name, type, cold: true });
        if (!traced.ok) { out.className = "ask-result error"; out.textContent = traced.error; return; }
        const t = traced.result;
        out.textContent = `${t.rcode} · walked from the root: ${t.upstream_queries} upstream quer` +
          `${t.upstream_queries === 1 ? "y" : "ies"} · ${ms(t.total_ms)} ms (a private empty cache; the shared cache is untouched)`;
        out.title = "";
        if (t.packets) {
          // The packets of this walk, as `dnslab capture all` writes them: a pcap for tshark or Wireshark
          // (early in the line, which the page cuts short when it is long).
          const rest = out.textContent.slice(t.rcode.length);
          out.replaceChildren(`${t.rcode} · `, h("a", {
            href: `/api/capture/${t.query_id}?token=${encodeURIComponent(token)}`, id: "ask-pcap",
            download: `dnslab-trace-${t.query_id}.pcap`, text: `${t.packets} packets (pcap)` }), rest);
        }
        if (!rows.has(t.query_id)) {
          const found = await getJson(`/api/trace/${t.query_id}`);
          if (found) addQueries([found.query], true);
        }
        selectQuery(t.query_id);
        return;
      }
      if ($("ask-flush").checked) {
        const flushed = await command("cache.flush", { name });
        if (!flushed.ok) { out.className = "ask-result error"; out.textContent = flushed.error; return; }
      }
      const reply = await command("query", { name, type });
      if (!reply.ok) { out.className = "ask-result error"; out.textContent = reply.error; return; }
      const r = reply.result.reply;
      const records = r.answer.map((a) => `${a.name} ${a.ttl} ${a.type} ${a.data}`);
      out.textContent = `${r.rcode} · ${records.length} record${records.length === 1 ? "" : "s"} · ${ms(r.elapsed_ms)} ms` +
        (records.length ? ` — ${records.slice(0, 2).join("; ")}${records.length > 2 ? " …" : ""}` : "");
      out.title = reply.result.dig;
      const id = reply.result.query_id;
      if ((id === null || id === undefined) && lab && lab.workers > 1) {
        out.textContent += " (another worker process answered: its trace is not in this view)";
      }
      if (id !== null && id !== undefined) {
        if (!rows.has(id)) {
          const found = await getJson(`/api/trace/${id}`);
          if (found) addQueries([found.query], true);
        }
        selectQuery(id);
      }
    } finally {
      $("ask-send").disabled = false;
    }
  });

  // --- the trace, step by step -----------------------------------------------------------------
  const frame = $("trace-frame");
  let groups = [];
  let steps = [];
  let step = 0;
  let playing = null;
  function selectQuery(id) {
    const entry = rows.get(id);
    if (!entry) return;
    if (selectedQuery !== null && rows.has(selectedQuery)) rows.get(selectedQuery).tr.classList.remove("selected");
    selectedQuery = id;
    entry.tr.classList.add("selected");
    showTab("trace");
    const q = entry.q;
    const title = $("trace-title");
    title.replaceChildren(h("span", { class: "mono", text: `${bare(q.name)} ${q.type}` }),
      ` → ${q.rcode}, ` + (q.how === "upstream" ? `${q.upstream_queries} upstream quer${q.upstream_queries === 1 ? "y" : "ies"}` : HOW[q.how][1]) +
      (q.ms === null ? "" : `, ${ms(q.ms)} ms`) + ` · from ${q.client || "?"} at ${timeOfDay(q.when)}`);
    const note = $("trace-note");
    note.className = "note";
    note.hidden = false;
    if (q.how === "fast") {
      note.textContent = "Answered by the fast path: the resolver replayed a reply it had ready (TTLs counted down), " +
        "without running a lookup. So the trace is the cache hit alone.";
    } else if (q.how === "cache") {
      note.textContent = "Answered from the resolver's cache: no server was asked.";
    } else if (q.how === "merged") {
      note.textContent = "This query arrived while the same question was already being resolved and waited for " +
        "that lookup's answer, so it has no steps of its own: choose the earlier query for the same name.";
    } else if (q.how === "cold" && !q.failed) {
      note.textContent = "A walk from the root (dnslab trace --cold): the resolver used an empty private cache, " +
        "so every step from the root down shows; its shared cache was left alone.";
    } else if (q.how === "trace" && !q.failed) {
      note.textContent = "A trace run from this page (dnslab trace): the resolver's own lookup with its shared cache.";
    } else if (q.how === "stale") {
      note.textContent = "Stale data served (RFC 8767): fresh data did not come in time; the lookup went on in the background.";
    } else if (q.failed) {
      note.className = "note warn";
      note.textContent = `${q.failed} failed tr${q.failed === 1 ? "y" : "ies"} (red crosses): a server gave nothing usable ` +
        (q.rcode === "SERVFAIL" ? "and no server of the zone was left to ask: SERVFAIL."
          : "and the resolver moved on to the next one — a failover.");
    } else {
      note.hidden = true;
    }
    stopPlaying();
    setStepButtons(false);
    $("step-count").textContent = "";
    $("step-text").textContent = "";
    frame.hidden = false;
    frame.src = `/trace/${id}?token=${encodeURIComponent(token)}`;
  }
  frame.addEventListener("load", () => {
    let doc = null;
    try { doc = frame.contentDocument; } catch (err) { doc = null; }
    if (!doc || !doc.head) return;
    const style = doc.createElement("style");
    style.textContent = ".ev.future, g.summary.future { visibility: hidden; }" +
      " .ev.current { filter: drop-shadow(0 0 3px #f59e0b) drop-shadow(0 0 1px #f59e0b); }" +
      " .ev.current .line, .ev.current .cross { stroke-width: 3.6; }" +
      " ul.legend { font-size: 12px !important; gap: 1px 14px !important; margin-bottom: 2px !important; }" +
      " .ev.current .badge { stroke-width: 3; } .ev.current text.label, .ev.current .badge-head { text-decoration: underline; }" +
      // The page above already says what the picture's heading and summary say.
      " main { padding: 6px 10px 16px !important; } main > h1, main > p.summary { display: none; }" +
      " html.actual-size figure svg { max-width: none !important; }";
    doc.head.append(style);
    doc.documentElement.classList.toggle("actual-size", $("trace-zoom").getAttribute("aria-pressed") === "true");
    fitFrame();
    groups = Array.from(doc.querySelectorAll("g.ev[data-step]"));
    steps = Array.from(new Set(groups.map((g) => Number(g.getAttribute("data-step"))))).sort((a, b) => a - b);
    setStepButtons(steps.length > 0);
    showStep(steps.length);
  });
  // The frame takes the picture's whole height, so the page scrolls through it (no second scroll bar).
  function fitFrame() {
    let doc = null;
    try { doc = frame.contentDocument; } catch (err) { doc = null; }
    if (frame.hidden || !doc || !doc.documentElement) return;
    frame.style.height = "0px";            // measured at no height: the content's own, not the frame's
    const sideways = doc.documentElement.scrollWidth > doc.documentElement.clientWidth ? 18 : 0;
    frame.style.height = `${doc.documentElement.scrollHeight + sideways + 2}px`;
  }
  let fitting = null;
  window.addEventListener("resize", () => {   // fit to width: a narrower window draws a shorter picture
    if (fitting !== null) clearTimeout(fitting);
    fitting = setTimeout(() => { fitting = null; fitFrame(); }, 100);
  });
  function setStepButtons(on) {
    for (const id of ["step-first", "step-prev", "step-next", "step-play", "step-all"]) $(id).disabled = !on;
  }
  function showStep(k) {
    const doc = frame.contentDocument;
    if (!doc || !steps.length) return;
    step = Math.max(1, Math.min(k, steps.length));
    const all = step >= steps.length;
    const limit = steps[step - 1];
    let current = null;
    for (const g of groups) {
      const s = Number(g.getAttribute("data-step"));
      g.classList.toggle("future", s > limit);
      const isCurrent = !all && s === limit;
      g.classList.toggle("current", isCurrent);
      if (s === limit && !current) current = g;
    }
    const summary = doc.querySelector("g.summary");
    if (summary) summary.classList.toggle("future", !all);
    $("step-count").textContent = all ? `all ${steps.length} steps` : `step ${step} of ${steps.length}`;
    const tip = current && current.querySelector(":scope > title");
    const intro = doc.querySelector("p.summary");
    $("step-text").textContent = all ? (intro ? intro.textContent : "") : (tip ? tip.textContent.split("\n").pop() : "");
    $("step-prev").disabled = step <= 1;
    $("step-first").disabled = step <= 1;
    $("step-next").disabled = all;
    if (current && !all) current.scrollIntoView({ block: "center" });
  }
  function stopPlaying() {
    if (playing !== null) clearInterval(playing);
    playing = null;
    $("step-play").textContent = "Play";
    $("step-play").setAttribute("aria-pressed", "false");
  }
  $("step-first").addEventListener("click", () => { stopPlaying(); showStep(1); });
  $("step-prev").addEventListener("click", () => { stopPlaying(); showStep(step - 1); });
  $("step-next").addEventListener("click", () => { stopPlaying(); showStep(step + 1); });
  $("step-all").addEventListener("click", () => { stopPlaying(); showStep(steps.length); });
  $("step-play").addEventListener("click", () => {
    if (playing !== null) { stopPlaying(); return; }
    if (step >= steps.length) showStep(1);
    $("step-play").textContent = "Stop";
    $("step-play").setAttribute("aria-pressed", "true");
    playing = setInterval(() => {
      if (step >= steps.length) { stopPlaying(); return; }
      showStep(step + 1);
    }, PLAY_MS);
  });

  $("trace-zoom").addEventListener("click", () => {
    const on = $("trace-zoom").getAttribute("aria-pressed") !== "true";
    $("trace-zoom").setAttribute("aria-pressed", String(on));
    const doc = frame.contentDocument;
    if (doc && doc.documentElement) doc.documentElement.classList.toggle("actual-size", on);
    fitFrame();
  });

  // --- tabs ------------------------------------------------------------------------------------
  const TABS = ["trace", "cache", "records", "scenario"];
  function showTab(name) {
    for (const tab of TABS) {
      const on = tab === name;
      $(`tab-${tab}`).setAttribute("aria-selected", String(on));
      $(`tab-${tab}`).tabIndex = on ? 0 : -1;
      $(`pane-${tab}`).hidden = !on;
    }
  }
  for (const tab of TABS) {
    $(`tab-${tab}`).addEventListener("click", () => showTab(tab));
    $(`tab-${tab}`).addEventListener("keydown", (e) => {
      const at = TABS.indexOf(tab);
      const to = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: TABS.length - 1 }[e.key];
      if (to === undefined) return;
      e.preventDefault();
      const next = TABS[(to + TABS.length) % TABS.length];
      showTab(next);
      $(`tab-${next}`).focus();
    });
  }

  // --- the cache -------------------------------------------------------------------------------
  let cacheFilter = "";
  const cacheRows = new Map();   // key -> tr
  async function postView() {
    if (!viewer) return;
    const response = await fetch("/api/view", {
      method: "POST", headers: { "Content-Type": "application/json", "X-Dnslab-Token": token },
      body: JSON.stringify({ viewer, cache: cacheFilter }),
    });
    const reply = response.ok ? await response.json() : { ok: false, error: `HTTP ${response.status}` };
    if (!reply.ok) toast(reply.error, true);
  }
  $("cache-form").addEventListener("submit", (e) => {
    e.preventDefault();
    cacheFilter = $("cache-filter").value.trim();
    postView();
  });
  $("cache-filter").addEventListener("search", () => {
    if (!$("cache-filter").value.trim() && cacheFilter) { cacheFilter = ""; postView(); }
  });
  $("flush-name").addEventListener("click", () => {
    const name = $("cache-filter").value.trim();
    if (!name) { toast("Type a name in the filter box first.", true); $("cache-filter").focus(); return; }
    const tree = $("flush-tree").checked;
    act("cache.flush", { name, tree }, (r) => `forgot ${r.flushed} entr${r.flushed === 1 ? "y" : "ies"} (${name}${tree ? " and below" : ""})`);
  });
  $("flush-all").addEventListener("click", () => {
    act("cache.flush", {}, (r) => `flushed the whole cache (${r.flushed} entries)`);
  });
  function recordData(entry) {
    const data = entry.records.map((line) => line.split(/\s+/).slice(4).join(" "));
    if (!data.length) return entry.kind === "servfail" ? "(a SERVFAIL, remembered briefly)" : "";
    const shown = data.slice(0, 3).join(" · ");
    return (entry.kind === "nxdomain" || entry.kind === "nodata" ? "SOA " : "") + shown + (data.length > 3 ? ` (+${data.length - 3} more)` : "");
  }
  function cacheRow(entry) {
    const forget = h("button", { type: "button", class: "forget", text: "forget",
      "aria-label": `forget ${entry.name} in the cache`,
      onclick: () => act("cache.flush", { name: entry.name }, (r) => `forgot ${entry.name} (${r.flushed} entr${r.flushed === 1 ? "y" : "ies"})`) });
    const bar = h("span", { class: "ttl-bar" }, h("span"));
    return h("tr", {},
      h("td", { class: "mono", text: entry.name }), h("td", { text: entry.type }), h("td", { class: "kind" }),
      h("td", {}, h("span", { class: "ttl" }, bar, h("span", { class: "ttl-text" }))),
      h("td", { class: "rank" }), h("td", { class: "mono source" }), h("td", { class: "mono data" }), h("td", {}, forget));
  }
  function updateCache(cache) {
    if (!cache) return;
    $("cache-count").textContent = `(${num(cache.size)})`;
    const body = $("cache").tBodies[0];
    const wanted = [];
    for (const entry of cache.entries) {
      const key = `${entry.name}|${entry.type}|${entry.kind}`;
      let tr = cacheRows.get(key);
      if (!tr) { tr = cacheRow(entry); cacheRows.set(key, tr); }
      const cells = tr.cells;
      cells[2].textContent = entry.kind + (entry.stale ? " · stale" : "");
      cells[2].className = `kind kind-${entry.kind}`;
      tr.classList.toggle("stale-row", entry.stale);
      const fraction = entry.original_ttl ? entry.remaining / entry.original_ttl : 0;
      const bar = cells[3].querySelector(".ttl-bar");
      bar.firstChild.style.width = `${Math.round(Math.max(0, Math.min(1, fraction)) * 100)}%`;
      bar.classList.toggle("low", fraction < 0.2);
      cells[3].querySelector(".ttl-text").textContent = `${entry.remaining} / ${entry.original_ttl} s`;
      cells[4].textContent = entry.rank || "–";
      cells[5].textContent = entry.source || "–";
      cells[6].textContent = recordData(entry);
      const differs = entry.zone_now !== undefined;
      tr.classList.toggle("differs-row", differs);
      if (differs) {
        const now = entry.zone_now.map((line) => line.split(/\s+/).slice(4).join(" ")).join(" · ") || "no such record";
        cells[6].append(h("span", { class: "badge differs", text: "zone now differs",
          title: `The zone now has: ${now}. The resolver keeps its cached copy until the TTL runs out (forget it to ask again).` }));
      }
      wanted.push([key, tr]);
    }
    const keys = new Set(wanted.map(([key]) => key));
    for (const [key, tr] of cacheRows) if (!keys.has(key)) { tr.remove(); cacheRows.delete(key); }
    const current = Array.from(body.rows);
    const same = current.length === wanted.length && current.every((tr, i) => tr === wanted[i][1]);
    if (!same) body.append(...wanted.map(([, tr]) => tr));
    const filter = cache.filter ? ` at or below ${cache.filter}` : "";
    $("cache-info").textContent = cache.error ? cache.error :
      `${num(cache.entries.length)} entr${cache.entries.length === 1 ? "y" : "ies"} shown${filter}, ` +
      `${num(cache.size)} held` + (cache.truncated ? " (only the first ones: filter by name to see others)" : "") +
      ". TTLs count down on the lab clock.";
  }

  // --- records ---------------------------------------------------------------------------------
  // What a change did beyond the data: servers started or stopped, warnings, record changes a reload dropped.
  function changeText(result) {
    const server = (s) => `${s.address} (${s.names.join(", ")})`;
    const parts = [];
    if (result.dropped) parts.push(`dropped ${result.dropped} record change(s) the zone files do not have`);
    if (result.started && result.started.length) parts.push(`started ${result.started.map(server).join(", ")}`);
    if (result.stopped && result.stopped.length) parts.push(`stopped ${result.stopped.map(server).join(", ")}`);
    for (const warning of result.warnings || []) parts.push(`warning: ${warning}`);
    return parts.length ? `; ${parts.join("; ")}` : "";
  }
  $("record-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const values = $("rec-values").value.split("\n").map((v) => v.trim()).filter(Boolean);
    const reply = await act("record.set", { name: $("rec-name").value.trim(), type: $("rec-type").value.trim(),
      values, ttl: Number($("rec-ttl").value || 300), zone: $("rec-zone").value.trim() });
    $("record-result").textContent = reply.ok
      ? `zone ${reply.result.zone} now at serial ${reply.result.serial}${changeText(reply.result)}` : reply.error;
    $("record-result").className = reply.ok ? "" : "error";
    if (reply.ok) sayIfCached($("rec-name").value.trim(), $("rec-type").value.trim());
  });
  $("rec-delete").addEventListener("click", async () => {
    const reply = await act("record.delete", { name: $("rec-name").value.trim(), type: $("rec-type").value.trim(),
      zone: $("rec-zone").value.trim() });
    $("record-result").textContent = reply.ok
      ? `deleted; zone ${reply.result.zone} now at serial ${reply.result.serial}${changeText(reply.result)}` : reply.error;
    $("record-result").className = reply.ok ? "" : "error";
    if (reply.ok) sayIfCached($("rec-name").value.trim(), $("rec-type").value.trim());
  });
  // The servers answer the change at once; the resolver does not until its copy expires. Say so.
  async function sayIfCached(name, type) {
    const shown = await command("cache.show", { name });
    if (!shown.ok) return;
    const wanted = name.toLowerCase().replace(/\.?$/, ".");
    const entry = shown.result.entries.find((e) => e.name.toLowerCase() === wanted && e.type === type.toUpperCase());
    if (!entry || entry.kind === "servfail") return;
    $("record-result").textContent += ` · the resolver's cache still holds the old ${entry.name} ${entry.type} ` +
      `(${entry.kind}, ${entry.remaining} s left): the cached answer now differs from the zone, and clients get ` +
      "the old one until it expires (forget it in the Cache tab to see the new one at once)";
  }
  $("rec-reload").addEventListener("click", async () => {
    const reply = await act("reload", {});
    $("record-result").textContent = reply.ok
      ? `re-read ${reply.result.reloaded.length} zone(s)${changeText(reply.result)}` : reply.error;
    $("record-result").className = reply.ok ? "" : "error";
  });

  // --- state -----------------------------------------------------------------------------------
  // A signed lab's DNSSEC faults (dnslab fault ZONE dnssec-...) as a red badge on the zone.
  function updateZoneFaults(dnssec) {
    const faults = (dnssec && dnssec.zone_faults) || {};
    for (const badge of document.querySelectorAll(".zone-dnssec")) {
      const kinds = faults[badge.dataset.zone] || [];
      const words = kinds.join(", ");
      if (badge.textContent !== words) {
        badge.textContent = words;
        badge.className = kinds.length ? "zone-dnssec badge error" : "zone-dnssec";
        badge.title = kinds.length ? "a DNSSEC fault: a validating resolver answers SERVFAIL below this zone" : "";
      }
    }
  }

  // --- caching levels (docs/LEVELS.md) ----------------------------------------------------------
  // Each level with its counters and its kept answers, the time left as a bar: it counts down on the lab clock.
  function levelEntry(entry) {
    const kept = entry.kept_for || entry.original_ttl || 0;
    const fraction = kept ? entry.remaining / kept : 0;
    const bar = h("span", { class: "ttl-bar" + (fraction < 0.2 ? " low" : "") }, h("span"));
    bar.firstChild.style.width = `${Math.round(Math.max(0, Math.min(1, fraction)) * 100)}%`;  // CSSOM: the CSP allows it
    const state = entry.stale ? " · grace" : "";
    return h("li", { class: "level-entry" + (entry.stale ? " stale-row" : "") },
      h("span", { class: "mono", text: `${entry.name} ${entry.type}` }),
      h("span", { class: "ttl" }, bar, h("span", { class: "ttl-text", text: `${entry.remaining} / ${Math.round(kept)} s${state}` })),
      h("span", { class: "mono data", text: recordData(entry), title: entry.records.join("\n") }));
  }
  function updateLevels(levels) {
    const list = $("levels");
    $("levels-panel").hidden = !levels || !levels.length;
    if (!levels) return;
    list.replaceChildren(...levels.map((level) => {
      const st = level.stats || {};
      const counts = level.kind === "resolver"
        ? `${num(st.queries || 0)} queries, ${num(st.cache_hits || 0)} from its cache`
        : `${num(st.queries || 0)} queries, ${num(st.hits || 0)} hits, ${num(st.misses || 0)} misses, ${num(st.forwards || 0)} sent on`;
      const down = level.up ? "" : ` · ${level.faults.join(", ") || "down"}`;
      return h("li", { class: "level" + (level.up ? "" : " level-down"), title: level.policy },
        h("div", { class: "level-head" },
          h("strong", { text: level.level }), h("span", { class: "muted small", text: ` ${level.kind} · ${level.address}:${level.port} → ${level.upstream.join(", ") || "the hierarchy"}${down}` })),
        h("div", { class: "muted small", text: counts }),
        h("ul", { class: "level-entries" }, ...level.entries.map(levelEntry)));
    }));
  }

  function onState(state) {
    setLive(true);
    latest = state;
    if (lab) updateServers(state.servers);
    if (lab) updateZoneFaults(state.dnssec);
    if (lab) updateInUse(state.in_use || {});
    updateCounters(state.stats, performance.now());
    updateClock(state.clock);
    updateCache(state.cache);
    updateLevels(state.levels);
  }

  // --- scenarios (dnslab scenario run, from the page) -------------------------------------------
  let scenarioTimer = null;
  async function loadScenarios() {
    const reply = await getJson("/api/scenarios");
    if (!reply || !reply.ok) return;
    $("scenario-name").replaceChildren(...reply.result.map((item) =>
      h("option", { value: item.name, text: `${item.name}: ${item.title} (${item.clients} clients)` })));
  }
  function drawScenario(status) {
    if (!status) return;
    const percent = Math.round(status.progress * 100);
    $("scenario-status").textContent = status.error ? `${status.name}: ${status.error}`
      : status.running ? `${status.title}: ${percent} % of the lab time played` : `${status.title}: done`;
    $("scenario-status").classList.toggle("error", Boolean(status.error));
    const parser = new DOMParser();
    $("scenario-charts").replaceChildren(...status.charts.map((chart) => {
      const svg = parser.parseFromString(chart.svg, "image/svg+xml").documentElement;
      return h("figure", { "aria-label": chart.title }, document.importNode(svg, true));
    }));
    $("scenario-report").hidden = !status.report;
    $("scenario-report").textContent = status.report || "";
  }
  async function pollScenario() {
    const reply = await getJson("/api/scenario");
    const status = reply && reply.ok ? reply.result : null;
    drawScenario(status);
    clearTimeout(scenarioTimer);
    if (status && status.running) scenarioTimer = setTimeout(pollScenario, 1000);
    $("scenario-run").disabled = Boolean(status && status.running);
  }
  $("tab-scenario").addEventListener("click", () => { loadScenarios(); pollScenario(); });
  $("scenario-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const clients = $("scenario-clients").value.trim();
    const response = await fetch("/api/scenario", {
      method: "POST", headers: { "Content-Type": "application/json", "X-Dnslab-Token": token },
      body: JSON.stringify({ name: $("scenario-name").value, ...(clients ? { clients: Number(clients) } : {}) }),
    });
    const reply = response.ok ? await response.json() : { ok: false, error: `HTTP ${response.status}` };
    if (!reply.ok) { toast(reply.error, true); return; }
    toast(`started ${reply.result.name} with ${reply.result.clients} clients`);
    pollScenario();
  });

  connect();
})();
