// Opens stowage's HTML report or dashboard of a pull-through cache in Debian's chromium
// (headless, playwright-core) and checks its cache figures against the CLI's (issue 20).
// Called by crates/stowage-cli/tests/cache.rs.
//
//   node cache.mjs report|dashboard FILE.html|URL EXPECTED.json SHOT_DIR
//
// EXPECTED.json: {"cache": <stowage cache --objects --format json>}
// Prints "N passed, 0 failed" and exits 0, or names the first failed check and exits 1.
import { chromium } from "playwright-core";
import fs from "node:fs";
import path from "node:path";

const [mode, target, expectedFile, shots] = process.argv.slice(2);
const C = JSON.parse(fs.readFileSync(expectedFile, "utf8")).cache;
fs.mkdirSync(shots, { recursive: true });

let passed = 0;
function check(cond, what, detail) {
  if (!cond) {
    console.error(`FAILED: ${what}${detail === undefined ? "" : ": " + JSON.stringify(detail)}`);
    throw new Error(what);
  }
  passed++;
}
// The page's units (report.js).
function bytes(n) {
  const u = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  if (n < 1024) return n + " B";
  let v = n, i = 0;
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return (v >= 100 ? v.toFixed(0) : v.toFixed(1)) + " " + u[i];
}
const date = (t) => (t ? t.slice(0, 10) + " " + t.slice(11, 16) : "");

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox", "--disable-gpu"] });
let code = 0;
try {
  const page = await browser.newPage({ viewport: { width: 1300, height: 900 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  await page.goto(mode === "report" ? "file://" + path.resolve(target) : target, { waitUntil: "load" });
  await page.waitForSelector("#cache-table tbody tr");
  await page.waitForSelector('#blob-table td[data-key="expires"]');

  // The headline figure: expired but still stored, as `stowage cache` counts it.
  check(C.expired_stored_bytes > 0, "the fixture has expired bytes", C.expired_stored_bytes);
  const card = await page.textContent('[data-figure="cache-expired"] .value');
  check(card === bytes(C.expired_stored_bytes), "card: expired but still stored", [card, C.expired_stored_bytes]);
  const sentence = await page.textContent("#cache-headline");
  check(sentence.includes(`${C.entries} entries, ${C.expired_entries} expired`) && sentence.includes(`(${C.expired_stored_blobs} blobs`),
    "the cache sentence", sentence);

  // Cached repositories: each with its entries, expired count and cache times.
  const rows = await page.$$eval("#cache-table tbody tr", (trs) => trs.map((tr) => Object.fromEntries(
    [...tr.querySelectorAll("td")].map((td) => [td.dataset.key, td.textContent]))));
  check(rows.length === C.repositories.length, "one row per cached repository", rows);
  for (const r of C.repositories) {
    const row = rows.find((x) => x.repository === r.repository);
    check(row && Number(row.manifests) === r.manifests && Number(row.blobs) === r.blobs && Number(row.expired) === r.expired,
      `cached repository ${r.repository}: counts`, [row, r]);
    check(row.first_cached === date(r.first_cached) && row.last_cached === date(r.last_cached), `${r.repository}: cache times`, [row, r]);
    check(row.next_expiry === (r.next_expiry ? date(r.next_expiry) : "all expired"), `${r.repository}: next expiry`, [row, r]);
  }

  // Per blob: first cache time and last expiry over its entries; expired only when all are.
  const per = {};
  for (const o of C.objects.filter((o) => o.stored)) {
    const p = per[o.digest] || { first: o.cached_at, last: o.expires, expired: true };
    if (o.cached_at < p.first) p.first = o.cached_at;
    if (o.expires > p.last) p.last = o.expires;
    p.expired = p.expired && o.expired;
    per[o.digest] = p;
  }
  const blobs = await page.$$eval("#blob-table tbody tr", (trs) => trs.map((tr) => Object.fromEntries(
    [...tr.querySelectorAll("td")].map((td) => [td.dataset.key, td.dataset.key === "digest" ? td.dataset.value : td.textContent]))));
  let mixed = 0, expired = 0;
  for (const b of blobs) {
    const p = per[b.digest];
    if (!p) { check(b.expires === "no entry", `blob ${b.digest}: no entry`, b); continue; }
    check(b.cached === date(p.first), `blob ${b.digest}: cached`, [b, p]);
    check(b.expires === (p.expired ? "expired " : "") + date(p.last), `blob ${b.digest}: expiry`, [b, p]);
    expired += p.expired;
    mixed += C.objects.filter((o) => o.digest === b.digest && o.stored).some((o) => o.expired) && !p.expired;
  }
  check(expired > 0, "some blob shows its expiry passed", expired);
  check(mixed > 0, "a blob another live image shares is not shown expired", mixed);

  // Per tag: its manifest's entry in its repository (the tag table's cache columns).
  await page.waitForSelector('#top-tags-table td[data-key="expires"]');
  const tagRows = await page.$$eval("#top-tags-table tbody tr", (trs) => trs.map((tr) => Object.fromEntries(
    [...tr.querySelectorAll("td")].map((td) => [td.dataset.key, td.textContent]))));
  let tagsWithEntry = 0;
  for (const t of tagRows) {
    const at = t.name.lastIndexOf(":");
    const [repo, tag] = [t.name.slice(0, at), t.name.slice(at + 1)];
    const o = C.objects.find((o) => o.kind === "manifest" && o.repository === repo && (o.tags || []).includes(tag));
    if (!o) { check(t.expires === "no entry", `tag ${t.name}: no entry`, t); continue; }
    tagsWithEntry++;
    check(t.cached === date(o.cached_at), `tag ${t.name}: cached`, [t, o]);
    check(t.expires === (o.expired ? "expired " : "") + date(o.expires), `tag ${t.name}: expiry`, [t, o]);
  }
  check(tagsWithEntry > 0, "some tag shows its manifest's cache entry", [tagsWithEntry, tagRows.length]);
  await page.screenshot({ path: path.join(shots, `cache-${mode}.png`), fullPage: true });
  check(errors.length === 0, "no console errors", errors);
} catch (e) {
  code = 1;
  console.error(String(e && e.stack || e));
} finally {
  await browser.close();
}
console.log(`${passed} passed, ${code} failed`);
process.exit(code);
