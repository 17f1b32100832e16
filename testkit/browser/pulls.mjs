// Opens stowage's HTML report or dashboard in Debian's chromium (headless, playwright-core)
// and checks the last-pulled columns of the repository and tag tables against real pull
// data (issue 19). Called by crates/stowage-cli/tests/usage.rs.
//
//   node pulls.mjs report|dashboard FILE.html|URL EXPECTED.json SHOT_DIR
//
// EXPECTED.json: {"repositories": {name: RFC 3339 | null}, "tags": {"repo:tag": RFC 3339 | null}}
// (null: never pulled since the data began). Prints "N passed, 0 failed" and exits 0.
import { chromium } from "playwright-core";
import fs from "node:fs";
import path from "node:path";

const [mode, target, expectedFile, shots] = process.argv.slice(2);
const E = JSON.parse(fs.readFileSync(expectedFile, "utf8"));
let passed = 0;
function check(cond, what, detail) {
  if (!cond) {
    console.error(`FAILED: ${what}${detail === undefined ? "" : ": " + JSON.stringify(detail)}`);
    throw new Error(what);
  }
  passed++;
}
const shown = (t) => (t ? t.slice(0, 10) + " " + t.slice(11, 16) : "never");

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox", "--disable-gpu"] });
let code = 0;
try {
  const page = await browser.newPage({ viewport: { width: 1300, height: 900 } });
  await page.goto(mode === "report" ? "file://" + path.resolve(target) : target, { waitUntil: "load" });
  const cells = (table, key) => page.$$eval(`#${table} tbody tr`, (trs, key) => trs.map((tr) => {
    const c = (k) => tr.querySelector(`td[data-key="${k}"]`);
    return c(key) ? [c(key).dataset.value, c("last_pulled").textContent] : null;
  }).filter(Boolean), key);
  await page.waitForFunction(() => document.querySelectorAll("#top-repos-table tbody td[data-key=last_pulled]").length > 0);
  await page.waitForFunction(() => document.querySelectorAll("#top-tags-table tbody td[data-key=last_pulled]").length > 0);
  const repos = Object.fromEntries(await cells("top-repos-table", "repository"));
  for (const [name, t] of Object.entries(E.repositories)) check(repos[name] === shown(t), `repository ${name}: last pulled`, [repos[name], t]);
  check(Object.values(E.repositories).some((t) => t) && Object.values(E.repositories).some((t) => !t), "both pulled and never-pulled repositories");
  const tags = Object.fromEntries(await cells("top-tags-table", "name"));
  let seen = 0;
  for (const [name, t] of Object.entries(E.tags)) {
    if (!(name in tags)) continue;
    seen++;
    check(tags[name] === shown(t), `tag ${name}: last pulled`, [tags[name], t]);
  }
  check(seen > 0 && Object.keys(tags).every((n) => n in E.tags), "tag rows checked", [seen, Object.keys(tags)]);
  await page.screenshot({ path: path.join(shots, `pulls-${mode}.png`), fullPage: true });
} catch (e) {
  code = 1;
  console.error(String(e && e.stack || e));
} finally {
  await browser.close();
}
console.log(`${passed} passed, ${code} failed`);
process.exit(code);
