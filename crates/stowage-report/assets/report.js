// stowage report: renders the JSON embedded in #stowage-data (schema stowage.report/v1).
// Written for this page, no dependencies, no network access except, in the dashboard
// (data.live), its own read-only API on the same origin.
"use strict";
(function () {
  const D = JSON.parse(document.getElementById("stowage-data").textContent);
  const $ = (sel, el) => (el || document).querySelector(sel);
  const el = (tag, attrs, ...kids) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") e.className = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const k of kids.flat()) if (k !== null && k !== undefined) e.append(k.nodeType ? k : String(k));
    return e;
  };

  // Same units as the CLI (binary, one decimal below 100).
  function bytes(n) {
    const u = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if (n < 1024) return n + " B";
    let v = n, i = 0;
    while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
    return (v >= 100 ? v.toFixed(0) : v.toFixed(1)) + " " + u[i];
  }
  const num = (n) => Number(n).toLocaleString("en-US");
  const date = (t) => (t ? t.slice(0, 10) + " " + t.slice(11, 16) : "");
  const short = (d) => (d && d.length > 19 ? d.slice(0, 19) + "\u2026" : d || "");
  // Days from `t` to the report's moment; an age in words ("12 d", "5 mo", "2.3 y").
  const daysSince = (t) => (t ? (Date.parse(D.generated_at) - Date.parse(t)) / 86400000 : null);
  const ageText = (t) => {
    const d = daysSince(t);
    if (d === null) return "";
    return d < 60 ? Math.max(0, Math.floor(d)) + " d" : d < 730 ? Math.floor(d / 30.44) + " mo" : (d / 365.25).toFixed(1) + " y";
  };

  // ---- header, headline -------------------------------------------------------------
  const S = D.summary;
  $("#generated").textContent = "generated " + date(D.generated_at) + " UTC";
  const cards = [
    ["On disk", bytes(S.storage_bytes), "blobs, uploads, other files", "storage"],
    ["Blobs", num(S.blobs), bytes(S.blob_bytes), "blobs"],
    ["Repositories", num(S.repositories), S.incomplete_repositories ? S.incomplete_repositories + " incomplete" : "", "repositories"],
    ["Tags", num(S.tags), "", "tags"],
    ["Manifests", num(S.manifests), num(S.untagged_manifests) + " untagged", "manifests"],
    ["Unreferenced", bytes(S.unreferenced_bytes), num(S.unreferenced_blobs) + " blobs", "unreferenced"],
    ["Findings", num(S.findings_error + S.findings_warning + S.findings_info),
      S.findings_error + " errors, " + S.findings_warning + " warnings, " + S.findings_info + " info", "findings"],
  ];
  // The filesystem, and "days until full" from the history's growth (last 30 days).
  if (D.capacity) {
    const C = D.capacity;
    cards.push(["Filesystem free", bytes(C.free_bytes), "of " + bytes(C.size_bytes) + "; " +
      (C.days_until_full !== null && C.days_until_full !== undefined ? "full in " + num(Math.round(C.days_until_full)) + " days at the growth of the last 30 days"
        : C.growth_bytes_per_day !== null && C.growth_bytes_per_day !== undefined ? "the blob store is not growing" : "days until full: needs history (--history)"), "capacity"]);
  }
  // A pull-through cache (issue 20): "expired but still stored" is a headline figure (the
  // registry's expiry removes links, not data; `stowage gc` reclaims these bytes).
  const CA = D.cache;
  if (CA) cards.push(["Expired, still stored", bytes(CA.expired_stored_bytes),
    num(CA.expired_stored_blobs) + " blobs of the pull-through cache; stowage gc reclaims them", "cache-expired"]);
  // GitLab's metadata database: every figure is from the filesystem's links, which that
  // registry no longer writes; say so above the figures, not in a footnote.
  if (D.metadata_database) $("#headline").before(el("div", { class: "banner", id: "metadata-database" },
    el("b", {}, "Filesystem metadata only. "), D.metadata_database.replace(/^figures are from filesystem metadata only: /, ""),
    ". stowage plans no deletion on this registry."));
  // The answer first: one sentence and the commands that act on it (issue 19).
  const Hd = D.headline;
  if (Hd && Hd.sentence) $("#headline").before(el("div", { class: "answer", id: "answer" },
    el("p", { class: "sentence" }, Hd.sentence),
    Hd.steps.length ? el("ol", {}, Hd.steps.map((st) => el("li", {}, st.what + ": ",
      el("div", { class: "cmd" }, el("code", {}, st.command), copyButton(st.command))))) : null));
  $("#headline").append(...cards.map(([l, v, s, id]) =>
    el("div", { class: "card", "data-figure": id }, el("div", { class: "label" }, l),
      el("div", { class: "value" }, v), el("div", { class: "sub" }, s))));

  function copyButton(text) {
    return el("button", { type: "button", title: "copy", onclick: (e) => {
      const b = e.currentTarget;
      const done = () => { b.textContent = "copied"; setTimeout(() => (b.textContent = "copy"), 1200); };
      if (navigator.clipboard) navigator.clipboard.writeText(text).then(done, () => {});
    } }, "copy");
  }
  $("#reclaim").append(...D.reclaimable.map((r) =>
    el("div", { class: "card", "data-reason": r.reason, "data-bytes": r.bytes },
      el("div", { class: "label" }, r.title),
      el("div", { class: "value" }, bytes(r.bytes)),
      el("div", { class: "sub" }, num(r.count) + (r.reason === "untagged" ? " untagged manifests. " : r.reason === "unreferenced" ? " blobs. " : " uploads. ") + r.note),
      el("div", { class: "cmd" }, el("code", {}, r.command), copyButton(r.command)),
      el("div", { class: "cmd" }, el("code", {}, r.apply), copyButton(r.apply)))));

  // ---- generic sortable, searchable table -----------------------------------------------
  // cols: {key, label, num, fmt(row) -> node|string, value(row) -> sortable, search, nosort}
  function table(host, cols, rows, opts) {
    opts = opts || {};
    const pageSize = opts.pageSize || 0;
    let sortKey = opts.sort || null, desc = opts.desc !== false, query = "", page = 0, view = rows;
    const tbody = el("tbody");
    // A column the data source cannot sort by has no click (it used to sort by size silently).
    const ths = cols.map((c) => el("th", { class: (c.num ? "num" : "") + (c.nosort ? " nosort" : ""), "data-key": c.key, scope: "col",
      onclick: c.nosort ? null : () => { if (sortKey === c.key) desc = !desc; else { sortKey = c.key; desc = !!c.num; } page = 0; update(); } }, c.label));
    const t = el("table", { id: opts.id }, el("thead", {}, el("tr", {}, ths)), tbody);
    const count = el("span", { class: "count" });
    const prev = el("button", { type: "button", onclick: () => { page--; update(); } }, "\u2190 prev");
    const next = el("button", { type: "button", onclick: () => { page++; update(); } }, "next \u2192");
    const tools = el("div", { class: "tools" });
    if (opts.search) {
      const input = el("input", { type: "search", placeholder: opts.search, "aria-label": opts.search });
      input.addEventListener("input", () => { query = input.value.trim().toLowerCase(); page = 0; update(); });
      tools.append(input);
    }
    if (opts.extra) tools.append(opts.extra);
    tools.append(count);
    if (pageSize) tools.append(prev, next);
    host.append(tools, t);
    const val = (c, r) => (c.value ? c.value(r) : r[c.key]);
    function update() {
      if (opts.remote) return opts.remote({ query, sortKey, desc, page, pageSize }, draw);
      // A column with `exact` matches whole words only ("referenced" is not "unreferenced").
      view = query ? rows.filter((r) => cols.some((c) => {
        if (c.search === false) return false;
        const text = String(c.searchText ? c.searchText(r) : val(c, r) ?? "").toLowerCase();
        return c.exact ? text === query : text.includes(query);
      })) : rows.slice();
      if (sortKey) {
        const c = cols.find((x) => x.key === sortKey);
        view.sort((a, b) => {
          const x = val(c, a), y = val(c, b);
          const o = x === y ? 0 : x === null || x === undefined ? 1 : y === null || y === undefined ? -1 : x < y ? -1 : 1;
          return desc ? -o : o;
        });
      }
      const start = page * pageSize;
      draw(pageSize ? view.slice(start, start + pageSize) : view, view.length);
    }
    function draw(shown, total) {
      // A counter tests can wait on (a remote page arrives later than the click).
      t.dataset.draws = String(Number(t.dataset.draws || 0) + 1);
      tbody.replaceChildren(...shown.map((r) => el("tr", {}, cols.map((c) =>
        el("td", { class: (c.num ? "num " : "") + (c.mono ? "mono " : "") + (c.cls || ""), "data-key": c.key,
          "data-value": val(c, r) }, c.fmt ? c.fmt(r) : val(c, r) ?? "")))));
      for (const th of ths) th.setAttribute("aria-sort", th.dataset.key === sortKey ? (desc ? "descending" : "ascending") : "none");
      const pages = pageSize ? Math.max(1, Math.ceil(total / pageSize)) : 1;
      count.textContent = num(total) + " rows" + (pageSize ? ", page " + (page + 1) + " of " + num(pages) : "");
      prev.disabled = page <= 0; next.disabled = page + 1 >= pages;
      if (!shown.length) tbody.append(el("tr", {}, el("td", { colspan: cols.length, class: "muted" }, "nothing matches")));
    }
    update();
    return { update };
  }

  // ---- pull-through cache ----------------------------------------------------------------
  if (CA) {
    const when = (t) => (t ? date(t) : "\u2013");
    const sec = el("section", { id: "cache-section" }, el("h2", {}, "Pull-through cache ",
      el("small", {}, "from the registry's scheduler state: cache time = expiry minus the 168 h TTL; expiry removes links, not data")));
    sec.append(el("p", { class: "sentence", id: "cache-headline" },
      "A pull-through cache" + (CA.remote_url ? " of " + CA.remote_url : "") + " (detected by " + CA.detected_by.join(", ") + "); scheduler state " + CA.state +
      (CA.state === "read" ? ": " + num(CA.entries) + " entries, " + num(CA.expired_entries) + " expired; " + bytes(CA.expired_stored_bytes) +
        " expired but still stored (" + num(CA.expired_stored_blobs) + " blobs, reclaimed by stowage gc)" + (CA.next_expiry ? "; next expiry " + date(CA.next_expiry) + " UTC" : "") : "") + "."));
    const host = el("div", { id: "cache" });
    sec.append(host);
    $("#reclaim").closest("section").after(sec);
    table(host, [{ key: "repository", label: "cached repository" }, { key: "manifests", label: "manifests", num: true },
      { key: "blobs", label: "blobs", num: true }, { key: "expired", label: "expired entries", num: true },
      { key: "first_cached", label: "first cached", cls: "date", search: false, fmt: (r) => when(r.first_cached) },
      { key: "last_cached", label: "last cached", cls: "date", search: false, fmt: (r) => when(r.last_cached) },
      { key: "next_expiry", label: "next expiry", cls: "date", search: false, fmt: (r) => (r.next_expiry ? date(r.next_expiry) : "all expired") }],
      CA.repositories, { sort: "expired", id: "cache-table", search: "search cached repository\u2026", pageSize: 50 });
  }

  // ---- treemap ----------------------------------------------------------------------
  const T = D.tree;
  const kids = T.map(() => []);
  T.forEach((n, i) => { if (n.parent !== null) kids[n.parent].push(i); });
  const tagsOf = {};
  for (const t of D.tags) (tagsOf[t.repository] = tagsOf[t.repository] || []).push(t);
  let metric = "exclusive", zoom = 0, zoomTags = false, colour = "repository";
  // Tag tiles by image age (build date) or by last pull: green recent, red old; grey unknown.
  const AGE_STOPS = [[30, "under 1 month"], [182, "1-6 months"], [365, "6-12 months"], [730, "1-2 years"], [Infinity, "over 2 years"]];
  const stopColour = (k) => `hsl(${Math.round(120 - (120 * k) / (AGE_STOPS.length - 1))},55%,42%)`;
  function tagColour(t) {
    const when = colour === "age" ? t.built : t.last_pulled;
    const d = daysSince(when);
    if (d === null) return "hsl(0,0%,55%)";
    return stopColour(AGE_STOPS.findIndex(([max]) => d < max));
  }
  function drawLegend() {
    const host = $("#tm-legend");
    host.replaceChildren();
    if (colour === "repository") return;
    host.append(el("span", {}, colour === "age" ? "Tag tiles by image age (config created):" : "Tag tiles by last pull:"),
      ...AGE_STOPS.map(([, l], k) => el("span", {}, el("i", { style: "background:" + stopColour(k) }), l)),
      el("span", {}, el("i", { style: "background:hsl(0,0%,55%)" }), colour === "age" ? "build date unknown" : (D.pulls ? "not pulled since the data began" : "no pull data")));
  }

  function squarify(items, x, y, w, h) {
    const out = [];
    const total = items.reduce((s, i) => s + i.v, 0);
    if (!total || w <= 0 || h <= 0) return out;
    let rest = items.map((i) => Object.assign({}, i, { a: (i.v * w * h) / total }));
    const worst = (row, s) => {
      let sum = 0, max = 0, min = Infinity;
      for (const r of row) { sum += r.a; max = Math.max(max, r.a); min = Math.min(min, r.a); }
      return Math.max((s * s * max) / (sum * sum), (sum * sum) / (s * s * min));
    };
    while (rest.length) {
      const s = Math.min(w, h);
      let n = 1, best = worst(rest.slice(0, 1), s);
      while (n < rest.length) { const c = worst(rest.slice(0, n + 1), s); if (c > best) break; best = c; n++; }
      const row = rest.slice(0, n); rest = rest.slice(n);
      const sum = row.reduce((a, r) => a + r.a, 0);
      if (w >= h) { const cw = sum / h; let cy = y; for (const r of row) { const rh = r.a / cw; out.push(Object.assign(r, { x, y: cy, w: cw, h: rh })); cy += rh; } x += cw; w -= cw; }
      else { const rh = sum / w; let cx = x; for (const r of row) { const rw = r.a / rh; out.push(Object.assign(r, { x: cx, y, w: rw, h: rh })); cx += rw; } y += rh; h -= rh; }
    }
    return out;
  }
  function hue(name) {
    const top = name.split("/")[0];
    let h = 0; for (const c of top) h = (h * 31 + c.charCodeAt(0)) >>> 0;
    return h % 360;
  }
  function tilesFor() {
    const n = T[zoom];
    if (zoomTags) {
      return (tagsOf[n.name] || []).map((t) => ({ v: t[metric], label: t.tag, name: n.name + ":" + t.tag, kind: "tag", tag: t,
        title: n.name + ":" + t.tag + "\ntotal " + bytes(t.total) + ", exclusive " + bytes(t.exclusive) + "\n" + (t.digest || "") +
          "\nbuilt " + (t.built ? date(t.built) + " (" + ageText(t.built) + ")" : "unknown" + (t.build_unknown ? ": " + t.build_unknown : "")) +
          "\nlast pulled " + (t.last_pulled ? date(t.last_pulled) : D.pulls ? "never since the data began" : "(no pull data)") }));
    }
    const items = kids[zoom].map((i) => ({ v: T[i][metric], label: T[i].name.split("/").pop() + (kids[i].length ? "/" : ""),
      name: T[i].name, node: i, kind: kids[i].length ? "namespace" : "repository",
      title: T[i].name + "\ntotal " + bytes(T[i].total) + ", exclusive " + bytes(T[i].exclusive) + ", shared " + bytes(T[i].total - T[i].exclusive) + "\n" + T[i].tags + " tags" }));
    if (n.repository && kids[zoom].length) {
      const own = metric === "exclusive" ? n.own_exclusive : n.own_total;
      items.push({ v: own, label: "(this repository)", name: n.name, node: zoom, kind: "self", title: n.name + " itself: " + bytes(own) });
    }
    if (metric === "exclusive") {
      // A namespace's exclusive bytes include bytes shared only between its children.
      const inside = items.reduce((s, i) => s + i.v, 0);
      const sharedWithin = n.exclusive - inside;
      const where = zoom === 0 ? "the registry" : n.name;
      if (sharedWithin > 0) items.push({ v: sharedWithin, label: "shared inside " + (zoom === 0 ? "/" : n.name), name: "", kind: "shared",
        title: "bytes shared by several repositories of " + where + " and by nothing else: freed only by deleting all of them" });
    }
    return items;
  }
  // The page carries a bounded number of tags per repository; the dashboard fetches the rest.
  const fetchedTags = {};
  function fetchTags(name) {
    fetchedTags[name] = true;
    // The tag table's rows carry the build dates and last pulls the tiles are coloured by.
    fetch("api/v1/tag-rows?" + new URLSearchParams({ q: name + ":", limit: 1000, sort: "total" }), { credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : Promise.reject(r.status)))
      .then((page) => {
        tagsOf[name] = page.rows.filter((t) => t.repository === name);
        const i = T.findIndex((n) => n.name === name);
        if (i >= 0) T[i].tags_omitted = 0;
        if (zoomTags && T[zoom].name === name) drawTreemap();
      })
      .catch(() => {});
  }
  function drawTreemap() {
    const host = $("#treemap");
    if (zoomTags && D.live && T[zoom].tags_omitted > 0 && !fetchedTags[T[zoom].name]) fetchTags(T[zoom].name);
    const items = tilesFor().filter((i) => i.v > 0).sort((a, b) => b.v - a.v || (a.name < b.name ? -1 : 1));
    const W = host.clientWidth || 1000, H = host.clientHeight || 460;
    host.replaceChildren();
    const crumbs = $("#crumbs");
    crumbs.replaceChildren();
    const parts = [];
    for (let i = zoom; i !== null; i = T[i].parent) parts.unshift(i);
    parts.forEach((i, k) => {
      if (k) crumbs.append(" / ");
      crumbs.append(el("a", { "data-node": T[i].name, onclick: () => { zoom = i; zoomTags = false; drawTreemap(); } },
        i === 0 ? "all repositories" : T[i].name.split("/").pop()));
    });
    if (zoomTags) crumbs.append(" / ", el("span", {}, "tags"));
    const note = $("#tm-note");
    if (!items.length) {
      host.append(el("div", { class: "tm-empty" }, zoomTags
        ? (metric === "exclusive" ? "No tag of this repository holds bytes no other tag needs. Switch to total." : "No tags.")
        : "Nothing to show at this level."));
    }
    for (const r of squarify(items, 0, 0, W, H)) {
      const h = r.kind === "tag" ? hue(T[zoom].name) : hue(r.name || "shared");
      const light = r.kind === "shared" ? "55%" : r.kind === "self" ? "38%" : "44%";
      const sat = r.kind === "shared" ? "0%" : "45%";
      const bg = r.kind === "tag" && colour !== "repository" ? tagColour(r.tag) : `hsl(${h},${sat},${light})`;
      const t = el("div", { class: "tile" + (r.kind === "tag" || r.kind === "shared" ? " leaf" : ""), title: r.title,
        "data-name": r.name, "data-kind": r.kind, "data-bytes": r.v,
        "data-colour": r.kind === "tag" ? bg : null,
        style: `left:${(r.x / W) * 100}%;top:${(r.y / H) * 100}%;width:${(r.w / W) * 100}%;height:${(r.h / H) * 100}%;background:${bg}` },
        r.w > 46 && r.h > 18 ? el("div", { class: "n" }, r.label) : null,
        r.w > 46 && r.h > 34 ? el("div", { class: "b" }, bytes(r.v)) : null);
      if (r.kind === "namespace" || r.kind === "repository" || r.kind === "self") {
        t.addEventListener("click", () => {
          zoom = r.node;
          zoomTags = r.kind !== "namespace";
          drawTreemap();
        });
      }
      host.append(t);
    }
    const n = T[zoom];
    const omitted = zoomTags ? n.tags_omitted : 0;
    note.textContent = (metric === "exclusive"
      ? "Sized by exclusive bytes: what deleting that repository (or tag), then running GC, frees. "
      : "Sized by total bytes: shared layers count in every repository that uses them, so tiles overlap. ") +
      (zoomTags ? "Tag exclusive = bytes no other tag anywhere needs. " : "Click a namespace to zoom in, a repository to see its tags. ") +
      (omitted ? omitted + " smaller tags not included." : "");
  }
  for (const b of document.querySelectorAll("#metric button")) {
    b.addEventListener("click", () => {
      metric = b.dataset.metric;
      for (const o of document.querySelectorAll("#metric button")) o.setAttribute("aria-pressed", o === b ? "true" : "false");
      drawTreemap();
    });
  }
  for (const b of document.querySelectorAll("#colour button")) {
    b.addEventListener("click", () => {
      colour = b.dataset.colour;
      for (const o of document.querySelectorAll("#colour button")) o.setAttribute("aria-pressed", o === b ? "true" : "false");
      drawLegend();
      drawTreemap();
    });
  }
  drawTreemap();
  let resizeTimer = null;
  window.addEventListener("resize", () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(drawTreemap, 100); });

  // ---- top tables ----------------------------------------------------------------------
  const B = (k) => ({ key: k, label: k, num: true, fmt: (r) => bytes(r[k]) });
  // A table the server searches, sorts and pages (its TableQuery: q, sort, order, offset, limit).
  const remoteRows = (url, dflt) => (st, draw) => {
    const q = new URLSearchParams({ offset: st.page * st.pageSize, limit: st.pageSize, sort: st.sortKey || dflt, order: st.desc ? "desc" : "asc" });
    if (st.query) q.set("q", st.query);
    fetch(url + "?" + q, { credentials: "same-origin" }).then((r) => r.json()).then((j) => draw(j.rows || [], j.total || 0));
  };
  const Dt = (k, label) => ({ key: k, label, cls: "date", search: false, fmt: (r) => date(r[k]) });
  const pulledCol = { key: "last_pulled", label: "last pulled", cls: "date", search: false,
    fmt: (r) => (r.last_pulled ? date(r.last_pulled) : D.pulls ? "never" : "no data") };
  const repoCols = [
    { key: "repository", label: "repository" }, Object.assign(B("exclusive"), {}), B("shared"), B("total"),
    { key: "tags", label: "tags", num: true }, { key: "untagged_manifests", label: "untagged", num: true },
    Object.assign(B("untagged_bytes"), { label: "untagged bytes" }), Dt("last_pushed", "pushed"),
    { key: "newest_build", label: "built", cls: "date", search: false, fmt: (r) => (r.newest_build ? ageText(r.newest_build) : "?") },
    pulledCol,
  ];
  // The dashboard: every repository, searched, sorted by any column and paged by the server
  // (issue 19; the page holds only the top ones).
  if (D.live) {
    $("#top-repos-title").firstChild.textContent = "Repositories ";
    table($("#top-repos"), repoCols, [], { sort: "exclusive", id: "top-repos-table", pageSize: 20, search: "search repository\u2026",
      remote: remoteRows("api/v1/repository-rows", "exclusive") });
  } else table($("#top-repos"), repoCols, D.top_repositories, { sort: "exclusive", id: "top-repos-table" });
  const tagCols = [
    { key: "name", label: "tag", value: (r) => r.repository + ":" + r.tag }, B("exclusive"), B("shared"), B("total"),
    Dt("moved", "moved"), Dt("pushed", "pushed"),
    { key: "age", label: "age", num: true, search: false, value: (r) => daysSince(r.built),
      fmt: (r) => (r.built ? el("span", { title: "built " + date(r.built) }, ageText(r.built)) : el("span", { class: "muted", title: r.build_unknown || "" }, "?")) },
    pulledCol,
  ];
  // On a cache, when each tag's manifest was cached and when its entry expires.
  if (D.cache) tagCols.push(
    { key: "cached", label: "cached", cls: "date", search: false, nosort: !!D.live, value: (r) => (r.cache ? r.cache.first_cached : null), fmt: (r) => (r.cache ? date(r.cache.first_cached) : "\u2013") },
    { key: "expires", label: "TTL expires", cls: "date", search: false, nosort: !!D.live, value: (r) => (r.cache ? r.cache.expires : null),
      fmt: (r) => (!r.cache ? "no entry" : r.cache.expired ? el("span", { class: "ref-no", title: "expired; the manifest is still stored" }, "expired " + date(r.cache.expires)) : date(r.cache.expires)) });
  if (D.live) {
    // Every tag, sorted and searched by the server (the page holds only the top ones).
    $("#top-tags-title").firstChild.textContent = "Tags ";
    table($("#top-tags"), tagCols, [], { sort: "exclusive", id: "top-tags-table", pageSize: 20, search: "search repository:tag, digest\u2026",
      remote: remoteRows("api/v1/tag-rows", "exclusive") });
  } else table($("#top-tags"), tagCols, D.top_tags, { sort: "exclusive", id: "top-tags-table" });

  // ---- image ages ------------------------------------------------------------------------
  if (D.image_ages) {
    const A = D.image_ages;
    $("#ages-note").textContent = "date used: " + A.date_used + "; each referenced blob counted once, at the age of the youngest image that uses it";
    const max = Math.max(1, ...A.buckets.map((b) => b.bytes));
    const t = el("table", { id: "ages-table" }, el("thead", {}, el("tr", {}, el("th", {}, "built"), el("th", { class: "num" }, "images"),
      el("th", { class: "num" }, "blobs"), el("th", { class: "num" }, "bytes"), el("th", {}, ""))));
    const tb = el("tbody");
    for (const b of A.buckets) tb.append(el("tr", { "data-bucket": b.label, "data-bytes": b.bytes }, el("td", {}, b.label), el("td", { class: "num" }, num(b.images)),
      el("td", { class: "num" }, num(b.blobs)), el("td", { class: "num" }, bytes(b.bytes)),
      el("td", { class: "bar" }, el("i", { style: `width:${(100 * b.bytes) / max}%` }))));
    t.append(tb);
    $("#ages").append(t);
    if (A.unknown.length) $("#ages").append(el("p", { class: "muted", id: "ages-unknown" }, "Build date unknown (never guessed): " +
      A.unknown.map((u) => num(u.images) + " " + u.description).join("; ") + "."));
  } else $("#ages-section").hidden = true;

  // ---- months ----------------------------------------------------------------------------
  function barChart(host, months) {
    if (!months.length) { host.append(el("p", { class: "muted" }, "No blobs.")); return; }
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    const W = 1000, H = 260, L = 60, Bm = 30;
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.setAttribute("preserveAspectRatio", "none");
    const max = Math.max(...months.map((m) => m.referenced_bytes + m.unreferenced_bytes), 1);
    const bw = (W - L) / months.length;
    const mk = (tag, a) => { const e = document.createElementNS(ns, tag); for (const k in a) e.setAttribute(k, a[k]); return e; };
    for (let g = 0; g <= 4; g++) {
      const y = H - Bm - ((H - Bm - 10) * g) / 4;
      svg.append(mk("line", { x1: L, x2: W, y1: y, y2: y, stroke: "currentColor", "stroke-opacity": 0.12 }));
      const t = mk("text", { x: L - 6, y: y + 4, "text-anchor": "end" }); t.textContent = bytes(Math.round((max * g) / 4)); svg.append(t);
    }
    const step = Math.ceil(months.length / 12);
    months.forEach((m, i) => {
      const x = L + i * bw + bw * 0.12, w = bw * 0.76;
      const hr = ((H - Bm - 10) * m.referenced_bytes) / max, hu = ((H - Bm - 10) * m.unreferenced_bytes) / max;
      const title = `${m.month}: referenced ${bytes(m.referenced_bytes)} (${num(m.referenced_blobs)} blobs), unreferenced ${bytes(m.unreferenced_bytes)} (${num(m.unreferenced_blobs)} blobs)`;
      const g = mk("g", { "data-month": m.month, "data-referenced": m.referenced_bytes, "data-unreferenced": m.unreferenced_bytes });
      const tt = mk("title", {}); tt.textContent = title; g.append(tt);
      g.append(mk("rect", { x, width: w, y: H - Bm - hr, height: hr, fill: "var(--ref)" }));
      g.append(mk("rect", { x, width: w, y: H - Bm - hr - hu, height: hu, fill: "var(--unref)" }));
      svg.append(g);
      if (i % step === 0) { const t = mk("text", { x: x + w / 2, y: H - 10, "text-anchor": "middle" }); t.textContent = m.month; svg.append(t); }
    });
    host.append(svg, el("div", { class: "legend" },
      el("span", {}, el("i", { style: "background:var(--ref)" }), "referenced"),
      el("span", {}, el("i", { style: "background:var(--unref)" }), "unreferenced (the registry's GC deletes these)")));
  }
  barChart($("#months"), D.months);

  // ---- history ---------------------------------------------------------------------------
  function lineChart(host, h) {
    const ns = "http://www.w3.org/2000/svg";
    const mk = (tag, a) => { const e = document.createElementNS(ns, tag); for (const k in a) e.setAttribute(k, a[k]); return e; };
    const svg = mk("svg", { viewBox: "0 0 1000 260", preserveAspectRatio: "none" });
    const W = 1000, H = 260, L = 60, Bm = 30;
    const times = h.times.map((t) => Date.parse(t));
    const t0 = Math.min(...times), t1 = Math.max(...times, t0 + 1);
    const series = [{ name: "blob store", total: h.blob_bytes }].concat(h.repositories);
    const max = Math.max(1, ...series.flatMap((s) => s.total));
    const X = (t) => L + ((W - L - 10) * (t - t0)) / (t1 - t0), Y = (v) => H - Bm - ((H - Bm - 10) * v) / max;
    for (let g = 0; g <= 4; g++) {
      const y = Y((max * g) / 4);
      svg.append(mk("line", { x1: L, x2: W, y1: y, y2: y, stroke: "currentColor", "stroke-opacity": 0.12 }));
      const t = mk("text", { x: L - 6, y: y + 4, "text-anchor": "end" }); t.textContent = bytes(Math.round((max * g) / 4)); svg.append(t);
    }
    [0, times.length - 1].forEach((i) => { const t = mk("text", { x: X(times[i]), y: H - 10, "text-anchor": i ? "end" : "start" }); t.textContent = date(h.times[i]); svg.append(t); });
    const legend = el("div", { class: "legend" });
    // One colour per line, spread around the wheel by the golden angle (by namespace, the
    // four repositories of one namespace were four lines of the same blue).
    series.forEach((s, k) => {
      const color = k === 0 ? "var(--fg)" : `hsl(${Math.round(((k - 1) * 137.508) % 360)},60%,${k % 2 ? 45 : 58}%)`;
      const p = mk("polyline", { fill: "none", stroke: color, "stroke-width": k === 0 ? 2.5 : 1.5, "data-name": s.name,
        points: s.total.map((v, i) => X(times[i]) + "," + Y(v)).join(" ") });
      const tt = mk("title", {}); tt.textContent = s.name + ": " + bytes(s.total[s.total.length - 1]); p.append(tt);
      svg.append(p);
      legend.append(el("span", {}, el("i", { style: "background:" + color }), s.name));
    });
    host.append(svg, legend);
  }
  if (D.history && D.history.times.length) lineChart($("#history"), D.history);
  else $("#history-section").hidden = true;

  // ---- last pulled ------------------------------------------------------------------------
  if (D.pulls) {
    const U = D.pulls;
    $("#pulls-section").hidden = false;
    $("#pulls-note").textContent = U.data_begins
      ? "pull data from " + date(U.data_begins) + " to " + date(U.data_ends) + " UTC; scanners excluded"
      : "no pull data yet: images are \u201cno pull data\u201d, not \u201cnever pulled\u201d";
    const t = el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "last pull"), el("th", { class: "num" }, "images"), el("th", { class: "num" }, "bytes"))));
    const tb = el("tbody");
    for (const b of U.buckets) tb.append(el("tr", {}, el("td", {}, b.label), el("td", { class: "num" }, num(b.images)), el("td", { class: "num" }, bytes(b.bytes))));
    t.append(tb);
    $("#pulls").append(t);
    if (U.never_pulled.length) {
      $("#pulls").append(el("h3", {}, `Never pulled since the data began (${num(U.never_pulled_total)}${U.never_pulled_total > U.never_pulled.length ? ", largest " + U.never_pulled.length + " shown" : ""})`));
      const n = el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "repository"), el("th", {}, "tags"), el("th", {}, "digest"), el("th", {}, "pushed"), el("th", { class: "num" }, "size"))));
      const nb = el("tbody");
      for (const i of U.never_pulled) nb.append(el("tr", {}, el("td", {}, i.repository), el("td", {}, i.tags.length ? i.tags.join(", ") : "(untagged)"), el("td", { title: i.digest }, short(i.digest)), el("td", {}, date(i.pushed)), el("td", { class: "num" }, bytes(i.size))));
      n.append(nb);
      $("#pulls").append(n);
    }
  }

  // ---- plan ------------------------------------------------------------------------------
  if (D.plan) {
    const P = D.plan;
    $("#plan-title").append(el("small", {}, `${P.kind} plan of ${date(P.created_at)} UTC frees ${bytes(P.bytes)}`));
    if (P.other_storage) $("#plan").append(el("div", { class: "banner" }, "This plan was made for " + P.storage + ", not for the storage of this report."));
    if (P.written_since_plan) $("#plan").append(el("div", { class: "banner", id: "plan-stale" },
      num(P.written_since_plan) + " blobs, manifests or tags were written after this plan was made (" + date(P.created_at) +
      " UTC): its figures may be out of date. Apply re-checks every target and keeps what is needed now; make the plan again to see what it would do today."));
    const cols = [{ key: "repository", label: "repository" }, { key: "reason", label: "reason", value: (r) => r.label || r.reason },
      { key: "manifests", label: "manifests", num: true }, { key: "blobs", label: "blobs", num: true },
      { key: "uploads", label: "uploads", num: true }, { key: "links", label: "links", num: true }, B("bytes")];
    // Paged, and without the 0-byte link rows (counted below): the table shows what frees space.
    table($("#plan"), cols, P.rows, { sort: "bytes", id: "plan-table", pageSize: 20, search: "search repository, reason\u2026" });
    if (P.link_rows) $("#plan").append(el("p", { class: "muted", id: "plan-links" }, num(P.link_only_links) +
      " links that free no bytes (tag-history entries and _layers links, in " + num(P.link_rows) + " repository and reason rows) are not listed; the plan file has them."));
    $("#plan").append(el("p", { class: "muted" }, "By reason: " + P.by_reason.map((r) => (r.label || r.reason) + " " + bytes(r.bytes)).join(", ")));
  } else $("#plan-section").hidden = true;

  // ---- findings --------------------------------------------------------------------------
  const F = $("#findings");
  if (!D.findings.length) F.append(el("p", { class: "muted" }, "No integrity findings."));
  for (const g of D.findings) {
    F.append(el("details", { class: "finding", "data-kind": g.kind },
      el("summary", {}, el("span", { class: "pill sev-" + g.severity }, g.severity), " ", el("b", {}, g.kind), " \u00d7 " + num(g.count) + " \u2014 ", g.description),
      el("ul", {}, g.items.map((f) => el("li", {}, el("span", { class: "path" }, f.path || "/"), ": ", f.message)),
        g.omitted ? el("li", { class: "muted" }, num(g.omitted) + " more (stowage check lists all)") : null)));
  }

  // ---- blobs -----------------------------------------------------------------------------
  const owners = (list, more) => el("span", {}, list.join(", "), more ? el("span", { class: "more" }, " +" + more) : null);
  const blobCols = [
    { key: "digest", label: "digest", mono: true, fmt: (r) => el("span", { title: r.digest }, short(r.digest)) },
    B("size"),
    { key: "date", label: "created", cls: "date", value: (r) => r.created || r.modified, fmt: (r) => date(r.created || r.modified), search: false },
    { key: "kind", label: "kind" },
    { key: "referenced", label: "referenced", value: (r) => (r.referenced ? 1 : 0), searchText: (r) => (r.referenced ? "referenced" : "unreferenced"), exact: true,
      fmt: (r) => (r.referenced ? "yes" : el("span", { class: "ref-no" }, "no")) },
    { key: "repositories", label: "repositories", value: (r) => r.repositories.join(" "), fmt: (r) => owners(r.repositories, r.repositories_omitted) },
    { key: "tags", label: "tags", value: (r) => r.tags.join(" "), fmt: (r) => owners(r.tags, r.tags_omitted) },
  ];
  // On a cache, when each blob was cached and when its last entry expires (none: no entry).
  if (CA) blobCols.push(
    { key: "cached", label: "cached", cls: "date", search: false, nosort: !!D.live, value: (r) => (r.cache ? r.cache.first_cached : null), fmt: (r) => (r.cache ? date(r.cache.first_cached) : "\u2013") },
    { key: "expires", label: "TTL expires", cls: "date", search: false, nosort: !!D.live, value: (r) => (r.cache ? r.cache.expires : null),
      fmt: (r) => (!r.cache ? "no entry" : r.cache.expired ? el("span", { class: "ref-no", title: "expired but still stored" }, "expired " + date(r.cache.expires)) : date(r.cache.expires)) });
  const blobNote = $("#blob-note");
  if (D.live) {
    blobNote.textContent = "All " + num(D.blobs.total) + " blobs, paged by the dashboard. Search matches digests, kinds and repositories.";
    // The API sorts by every column but the owner lists (a sort by owners would compute every
    // blob's owners per page).
    const liveCols = blobCols.map((c) => (c.key === "repositories" || c.key === "tags" ? Object.assign({}, c, { nosort: true }) : c));
    table($("#blobs"), liveCols, [], { search: "search digest, kind, repository\u2026", pageSize: 50, sort: "size", id: "blob-table",
      extra: el("a", { class: "btn", href: "api/v1/blobs.csv", download: "blobs.csv" }, "CSV"),
      remote: (st, draw) => {
        const sort = ["size", "date", "digest", "kind", "referenced"].includes(st.sortKey) ? st.sortKey : "size";
        const q = new URLSearchParams({ offset: st.page * st.pageSize, limit: st.pageSize, sort, order: st.desc ? "desc" : "asc" });
        if (st.query) q.set("q", st.query);
        fetch("api/v1/blobs?" + q, { credentials: "same-origin" }).then((r) => r.json()).then((j) => draw(j.rows || [], j.total || 0));
      } });
  } else {
    blobNote.append("The " + num(D.blobs.rows.length) + " largest of " + num(D.blobs.total) + " blobs. ");
    if (D.blobs.csv) blobNote.append("Every blob is in ", el("a", { href: D.blobs.csv }, D.blobs.csv), " beside this file.");
    table($("#blobs"), blobCols, D.blobs.rows, { search: "search digest, kind, repository, tag\u2026", pageSize: 50, sort: "size", id: "blob-table" });
  }

  // ---- dashboard: status and rescan ------------------------------------------------------
  if (D.live) {
    const status = $("#live");
    status.hidden = false;
    const btn = el("button", { type: "button", id: "rescan" }, "rescan now");
    const text = el("span", { class: "muted" });
    status.append(text, " ", btn);
    let generation = null;
    const poll = () => fetch("api/v1/status", { credentials: "same-origin" }).then((r) => r.json()).then((s) => {
      text.textContent = (s.scanning ? "scanning\u2026 " : "") + (s.last_success ? "last scan " + date(s.last_success) + " UTC (" + s.scan_duration_seconds.toFixed(1) + " s)" : "") + (s.last_error ? " \u2014 last attempt failed: " + s.last_error : "");
      btn.disabled = s.scanning;
      // A newer scan: say so and let the reader choose when to load it (reloading by itself
      // lost the zoom, the search and the page at every scan).
      if (generation !== null && s.generation !== generation && !$("#new-data")) {
        status.append(" ", el("span", { class: "banner", id: "new-data" }, "New data: a scan finished " + date(s.last_success) + " UTC. ",
          el("button", { type: "button", onclick: () => location.reload() }, "show it")));
      }
      if (generation === null) generation = s.generation;
      // The blob table pages through the API: it shows the new scan's blobs on its next draw.
    }).catch(() => {});
    btn.addEventListener("click", () => fetch("api/v1/scan", { method: "POST", credentials: "same-origin" }).then(poll));
    poll();
    setInterval(poll, 5000);
  }
})();
