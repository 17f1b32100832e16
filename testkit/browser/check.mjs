// Opens stowage's HTML report or dashboard in Debian's chromium (headless, driven by
// playwright-core) and checks what a person would see. Called by
// crates/stowage-cli/tests/browser.rs, which prepares the expected figures with the CLI.
//
//   node check.mjs report    FILE.html EXPECTED.json SHOT_DIR
//   node check.mjs dashboard URL       EXPECTED.json SHOT_DIR
//
// EXPECTED.json: {"du": <stowage du --format json>, "tags": {"repo": <stowage tags --format json>},
//                 "blobs": N, "unreferenced": N}
// Prints "N passed, 0 failed" and exits 0, or names the first failed check and exits 1.
import { chromium } from "playwright-core";
import fs from "node:fs";
import path from "node:path";

const [mode, target, expectedFile, shots] = process.argv.slice(2);
const E = JSON.parse(fs.readFileSync(expectedFile, "utf8"));
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
fs.mkdirSync(shots, { recursive: true });

let passed = 0;
function check(cond, what, detail) {
  if (!cond) {
    console.error(`FAILED: ${what}${detail === undefined ? "" : ": " + JSON.stringify(detail)}`);
    throw new Error(what);
  }
  passed++;
}

const browser = await chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-gpu"] });
let code = 0;
try {
  const page = await browser.newPage({ viewport: { width: 1300, height: 900 } });
  const errors = [];
  const requests = [];
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("request", (r) => requests.push(r.url()));
  const url = mode === "report" ? "file://" + path.resolve(target) : target;
  const origin = mode === "report" ? null : new URL(url).origin;

  const t0 = Date.now();
  await page.goto(url, { waitUntil: "load" });
  await page.waitForSelector("#treemap .tile");
  console.log(`${mode}: loaded and drawn in ${Date.now() - t0} ms`);
  await page.screenshot({ path: path.join(shots, `${mode}-overview.png`), fullPage: true });

  const du = E.du.nodes;
  const node = (name) => du.find((n) => n.name === name);

  // Headline figures.
  const blobsCard = await page.textContent('[data-figure="blobs"] .value');
  check(blobsCard.replace(/,/g, "") === String(E.blobs), "headline blob count", blobsCard);
  const unref = await page.getAttribute('[data-reason="unreferenced"]', "data-bytes");
  check(Number(unref) === E.unreferenced, "reclaimable unreferenced bytes", unref);
  const cmd = await page.textContent('[data-reason="unreferenced"] code');
  check(/^stowage --storage \S+ gc --grace 1h --out plan\.json$/.test(cmd), "reclaim command", cmd);
  // Issue 19: the answer first, one sentence and the commands that act on it.
  const sentence = await page.textContent("#answer .sentence");
  check(sentence.includes(" can be freed safely now") && sentence.includes(Number(E.blobs).toLocaleString("en-US") + " blobs"), "manager sentence", sentence);
  const answerBox = await page.$eval("#answer", (a) => a.getBoundingClientRect().top);
  const cardsBox = await page.$eval("#headline", (a) => a.getBoundingClientRect().top);
  check(answerBox < cardsBox, "the sentence is above the figures", [answerBox, cardsBox]);
  if (E.unreferenced > 0) {
    const steps = await page.$$eval("#answer li code", (cs) => cs.map((c) => c.textContent));
    check(steps[0] === cmd && / apply --quarantine \S+ --registry-restart /.test(steps[1]), "next commands: gc with the card's grace, apply with --quarantine and the restart", steps);
  }

  // Treemap, root level: one tile per top-level name with its exclusive bytes.
  const tiles = async () => page.$$eval("#treemap .tile", (ts) => ts.map((t) => ({
    name: t.dataset.name, kind: t.dataset.kind, bytes: Number(t.dataset.bytes) })));
  let ts = await tiles();
  for (const n of du.filter((n) => n.depth === 1 && n.exclusive > 0)) {
    const t = ts.find((x) => x.name === n.name);
    check(t && t.bytes === n.exclusive, `treemap tile ${n.name} = exclusive ${n.exclusive}`, t);
  }
  // Zoom: team -> team/app -> its repositories, each with its exclusive bytes.
  await page.click('#treemap .tile[data-name="team"]');
  await page.click('#treemap .tile[data-name="team/app"]');
  ts = await tiles();
  for (const n of du.filter((n) => n.name.startsWith("team/app/") && n.exclusive > 0)) {
    const t = ts.find((x) => x.name === n.name);
    check(t && t.bytes === n.exclusive, `zoomed tile ${n.name} = ${n.exclusive}`, ts);
  }
  const crumbs = await page.textContent("#crumbs");
  check(crumbs.includes("team") && crumbs.includes("app"), "breadcrumbs follow the zoom", crumbs);
  await page.screenshot({ path: path.join(shots, `${mode}-treemap-team-app.png`) });
  // Into a repository: its tags; switch to total and compare with `stowage tags`.
  const repo = Object.keys(E.tags)[0];
  await page.click(`#treemap .tile[data-name="${repo}"]`);
  await page.click('#metric button[data-metric="total"]');
  ts = await tiles();
  for (const t of E.tags[repo].tags.filter((t) => t.total > 0)) {
    const tile = ts.find((x) => x.name === `${repo}:${t.tag}`);
    check(tile && tile.kind === "tag" && tile.bytes === t.total, `tag tile ${repo}:${t.tag} total ${t.total}`, ts);
  }
  await page.screenshot({ path: path.join(shots, `${mode}-treemap-tags.png`) });
  // Issue 19: tag tiles coloured by image age (the build date `stowage tags` reports) or by
  // last pull; unknown is grey, and the legend says what the colours mean.
  const tagColours = () => page.$$eval("#treemap .tile[data-kind=tag]", (ts) => ts.map((t) => ({ name: t.dataset.name, colour: t.dataset.colour })));
  await page.click('#colour button[data-colour="age"]');
  const grey = "hsl(0,0%,55%)";
  for (const t of await tagColours()) {
    const rec = E.tags[repo].tags.find((x) => `${repo}:${x.tag}` === t.name);
    check(rec && (rec.built ? t.colour !== grey && t.colour.startsWith("hsl(") : t.colour === grey), `tag tile ${t.name} coloured by its build date`, { t, built: rec && rec.built });
  }
  const legend = await page.textContent("#tm-legend");
  check(legend.includes("image age") && legend.includes("over 2 years"), "age legend", legend);
  await page.screenshot({ path: path.join(shots, `${mode}-treemap-tags-by-age.png`) });
  await page.click('#colour button[data-colour="pulled"]');
  for (const t of await tagColours()) check(t.colour === grey, `tag tile ${t.name}: no pull data is grey`, t);
  await page.click('#colour button[data-colour="repository"]');
  check((await page.textContent("#tm-legend")) === "", "no legend when coloured by repository");
  await page.click('#crumbs a[data-node="/"]');
  await page.click('#metric button[data-metric="exclusive"]');

  // Top repositories table: exclusive and total per repository as `du` computes them (on the
  // dashboard the rows come from the server: wait for them).
  await page.waitForFunction(() => document.querySelectorAll("#top-repos-table tbody td[data-key=repository]").length > 0);
  const top = await page.$$eval("#top-repos-table tbody tr", (rows) => rows.map((r) => {
    const v = (k) => r.querySelector(`td[data-key="${k}"]`).dataset.value;
    return { name: v("repository"), exclusive: Number(v("exclusive")), total: Number(v("total")), shared: Number(v("shared")) };
  }));
  for (const n of du.filter((n) => n.repository)) {
    const row = top.find((r) => r.name === n.name);
    check(row && row.exclusive === n.own_exclusive && row.total === n.own_total &&
      row.shared === n.own_total - n.own_exclusive, `top repositories row ${n.name}`, row);
  }
  const ex = top.map((r) => r.exclusive);
  check(ex.every((v, i) => i === 0 || ex[i - 1] >= v), "top repositories sorted by exclusive", ex);
  if (mode !== "report") {
    // Issue 19: the dashboard's repository table is sorted, searched and paged by the server.
    const repoRedraw = async (action) => {
      const before = Number(await page.getAttribute("#top-repos-table", "data-draws"));
      await action();
      await page.waitForFunction((n) => Number(document.querySelector("#top-repos-table").dataset.draws) > n, before);
    };
    const shown = () => page.$$eval('#top-repos-table tbody td[data-key="shared"]', (tds) => tds.map((t) => Number(t.dataset.value)));
    await repoRedraw(() => page.click('#top-repos-table th[data-key="shared"]'));
    let sh = await shown();
    check(requests.some((u) => u.includes("/api/v1/repository-rows?") && u.includes("sort=shared") && u.includes("order=desc")), "the repository sort is asked of the server", requests.filter((u) => u.includes("repository-rows")));
    check(sh.every((v, i) => i === 0 || sh[i - 1] >= v), "repositories sorted by shared, descending", sh);
    await repoRedraw(() => page.click('#top-repos-table th[data-key="shared"]'));
    sh = await shown();
    check(sh.every((v, i) => i === 0 || sh[i - 1] <= v), "then ascending", sh);
    await repoRedraw(() => page.fill("#top-repos input[type=search]", "team/"));
    const names = await page.$$eval('#top-repos-table tbody td[data-key="repository"]', (tds) => tds.map((t) => t.dataset.value));
    check(names.length === du.filter((n) => n.repository && n.name.startsWith("team/")).length && names.every((n) => n.startsWith("team/")), "repository search on the server", names);
    await repoRedraw(() => page.fill("#top-repos input[type=search]", ""));
  }

  // Blob table: search, then sort.
  const rowsOf = () => page.$$eval("#blob-table tbody tr", (rows) => rows.map((r) => {
    const c = (k) => r.querySelector(`td[data-key="${k}"]`);
    return c("size") ? { size: Number(c("size").dataset.value), repos: c("repositories").textContent, digest: c("digest").dataset.value } : null;
  }).filter(Boolean));
  // Run an action on the blob table and wait until the table has been drawn again.
  const redraw = async (action) => {
    const before = Number(await page.getAttribute("#blob-table", "data-draws"));
    await action();
    await page.waitForFunction((n) => Number(document.querySelector("#blob-table").dataset.draws) > n, before);
  };
  await page.waitForFunction(() => Number(document.querySelector("#blob-table").dataset.draws) > 0 &&
    document.querySelectorAll("#blob-table tbody tr td[data-key=size]").length > 0);
  let rows = await rowsOf();
  check(rows.length === Math.min(50, E.blobs), "first page of blobs", rows.length);
  check(rows.every((r, i) => i === 0 || rows[i - 1].size >= r.size), "blobs start largest first");
  await redraw(() => page.fill("#blobs input[type=search]", "multiarch"));
  rows = await rowsOf();
  check(rows.length > 0 && rows.every((r) => r.repos.includes("multiarch/tool")), "search by repository", rows);
  await redraw(() => page.fill("#blobs input[type=search]", "unreferenced"));
  rows = await rowsOf();
  check(rows.length === E.unreferenced_blobs, "search unreferenced", { rows: rows.length, want: E.unreferenced_blobs });
  await page.screenshot({ path: path.join(shots, `${mode}-blob-search.png`) });
  // "referenced" is not a substring match of "unreferenced" (issue 19, "Smaller").
  await redraw(() => page.fill("#blobs input[type=search]", "referenced"));
  rows = await rowsOf();
  check(rows.length === Math.min(50, E.blobs - E.unreferenced_blobs), "search referenced", { rows: rows.length, want: E.blobs - E.unreferenced_blobs });
  await redraw(() => page.fill("#blobs input[type=search]", ""));
  await redraw(() => page.click('#blob-table th[data-key="size"]'));
  rows = await rowsOf();
  check(rows.every((r, i) => i === 0 || rows[i - 1].size <= r.size), "sort by size ascending after a click", rows.map((r) => r.size));
  const sortAttr = await page.getAttribute('#blob-table th[data-key="size"]', "aria-sort");
  check(sortAttr === "ascending", "sorted column marked", sortAttr);
  await redraw(() => page.click('#blob-table th[data-key="size"]'));
  rows = await rowsOf();
  check(rows.every((r, i) => i === 0 || rows[i - 1].size >= r.size), "sort by size descending after a second click");
  // Issue 19 item 4: every column header sorts by its own column (the dashboard sent
  // sort=size whatever was clicked); the owner lists are not sortable live.
  const kindsShown = () => page.$$eval('#blob-table tbody td[data-key="kind"]', (tds) => tds.map((t) => t.textContent));
  await redraw(() => page.click('#blob-table th[data-key="kind"]'));
  let ks = await kindsShown();
  const sortedAsc = ks.slice().sort();
  const sortedDesc = sortedAsc.slice().reverse();
  check(JSON.stringify(ks) === JSON.stringify(sortedAsc) || JSON.stringify(ks) === JSON.stringify(sortedDesc), "sort by kind after a click", ks);
  check(new Set(ks).size > 1, "more than one kind on the page", ks);
  const kindSort = await page.getAttribute('#blob-table th[data-key="kind"]', "aria-sort");
  check(kindSort === "ascending" || kindSort === "descending", "kind column marked", kindSort);
  if (mode !== "report") {
    const cls = await page.getAttribute('#blob-table th[data-key="tags"]', "class");
    check((cls || "").includes("nosort"), "owner columns not sortable on the dashboard", cls);
  }

  // Issue 19: the tag table shows push date, image age and last pull, and sorts by each; on
  // the dashboard the server sorts and searches every tag.
  const tagRows = () => page.$$eval("#top-tags-table tbody tr", (rows) => rows.map((r) => {
    const c = (k) => r.querySelector(`td[data-key="${k}"]`);
    return c("name") ? { name: c("name").dataset.value, pushed: c("pushed").dataset.value, age: c("age").dataset.value, ageText: c("age").textContent } : null;
  }).filter(Boolean));
  const tagRedraw = async (action) => {
    const before = Number(await page.getAttribute("#top-tags-table", "data-draws"));
    await action();
    await page.waitForFunction((n) => Number(document.querySelector("#top-tags-table").dataset.draws) > n, before);
  };
  await page.waitForFunction(() => document.querySelectorAll("#top-tags-table tbody td[data-key=name]").length > 0);
  let tr = await tagRows();
  check(tr.length > 0 && tr.some((r) => /\d+ (d|mo|y)$/.test(r.ageText)), "tag ages shown", tr);
  await tagRedraw(() => page.click('#top-tags-table th[data-key="pushed"]'));
  await tagRedraw(() => page.click('#top-tags-table th[data-key="pushed"]'));
  tr = await tagRows();
  const pushedShown = tr.map((r) => r.pushed).filter((p) => p);
  const pAsc = pushedShown.slice().sort();
  check(JSON.stringify(pushedShown) === JSON.stringify(pAsc) || JSON.stringify(pushedShown) === JSON.stringify(pAsc.slice().reverse()), "tags sorted by push date", pushedShown);
  if (mode !== "report") {
    await tagRedraw(() => page.fill("#top-tags input[type=search]", repo + ":"));
    tr = await tagRows();
    check(tr.length === E.tags[repo].tags.length && tr.every((r) => r.name.startsWith(repo + ":")), "tag search on the server", tr);
    check(requests.some((u) => u.includes("/api/v1/tag-rows?") && u.includes("sort=pushed")), "the tag sort is asked of the server", requests.filter((u) => u.includes("tag-rows")));
    await tagRedraw(() => page.fill("#top-tags input[type=search]", ""));
  }

  // Findings grouped by kind, each with its paths.
  const kinds = await page.$$eval("details.finding", (ds) => ds.map((d) => d.dataset.kind));
  check(JSON.stringify(kinds.slice().sort()) === JSON.stringify(E.finding_kinds.slice().sort()), "finding kinds", kinds);
  // Month histogram: referenced + unreferenced bytes add up to the blob store.
  const months = await page.$$eval("#months g[data-month]", (gs) => gs.map((g) => Number(g.dataset.referenced) + Number(g.dataset.unreferenced)));
  check(months.reduce((a, b) => a + b, 0) === E.blob_bytes, "months add up to the blob bytes", months);

  // Growth chart (issue 19 item 6): one colour per line, whatever their namespace.
  const strokes = await page.$$eval("#history polyline", (ps) => ps.map((p) => p.getAttribute("stroke")));
  if (E.history) {
    check(strokes.length >= 3, "growth lines drawn", strokes);
    check(new Set(strokes).size === strokes.length, "every growth line has its own colour", strokes);
  }
  // The plan (issue 19 item 7): below the treemap, paged, reasons in words, no 0-byte link rows.
  if (E.plan) {
    const after = await page.evaluate(() => !!(document.querySelector("#treemap").compareDocumentPosition(document.querySelector("#plan-section")) & Node.DOCUMENT_POSITION_FOLLOWING));
    check(after, "the plan comes after the treemap");
    const planRows = await page.$$eval("#plan-table tbody tr", (rs) => rs.map((r) => r.textContent));
    check(planRows.length > 0 && planRows.length <= 20, "plan table paged", planRows.length);
    check(planRows.every((t) => !/blob-deleted|dangling|untagged-manifest/.test(t)), "plan reasons in words", planRows);
    const zero = await page.$$eval('#plan-table tbody td[data-key="bytes"]', (ts) => ts.filter((t) => Number(t.dataset.value) === 0 && !t.parentElement.querySelector('td[data-key="manifests"]').dataset.value.match(/[1-9]/)).length);
    check(zero === 0, "no 0-byte link-only rows", zero);
    if (E.plan.link_rows) check(await page.$("#plan-links") !== null, "link-only rows counted in one line");
    await page.screenshot({ path: path.join(shots, `${mode}-plan.png`), fullPage: true });
  }
  // The dashboard does not reload itself after a scan (issue 19 item 5): a banner instead.
  if (mode !== "report") {
    await page.click('#treemap .tile[data-name="team"]');
    await page.evaluate(() => { window.__stillHere = true; });
    await page.click("#rescan");
    await page.waitForSelector("#new-data", { timeout: 30000 });
    const kept = await page.evaluate(() => window.__stillHere === true);
    check(kept, "the page was not reloaded by the scan");
    const crumbs2 = await page.textContent("#crumbs");
    check(crumbs2.includes("team"), "the zoom survives a scan", crumbs2);
    await page.screenshot({ path: path.join(shots, `${mode}-new-data.png`) });
  }

  // Issue 20: the cache section, card and blob columns are a pull-through cache's only.
  check(!(await page.$("#cache-section")) && !(await page.$('[data-figure="cache-expired"]')) && !(await page.$('#blob-table th[data-key="expires"]')),
    "no cache figures on a registry that is not a cache");
  await page.screenshot({ path: path.join(shots, `${mode}-final.png`), fullPage: true });
  check(errors.length === 0, "no console errors", errors);
  const foreign = requests.filter((u) => (origin ? !u.startsWith(origin + "/") : u !== url));
  check(foreign.length === 0, "no network requests beyond the page (and, for the dashboard, its own API)", foreign);
  if (mode === "report") check(requests.length === 1, "the report loads nothing but itself", requests);
} catch (e) {
  code = 1;
  console.error(String(e && e.stack || e));
} finally {
  await browser.close();
}
console.log(`${passed} passed, ${code} failed`);
process.exit(code);
