// Time until a stowage report is drawn in headless chromium (bench/report.sh).
//   node open-time.mjs FILE.html [RUNS]
// Prints one line per run (ms until the treemap and the blob table are drawn) and the median.
import { chromium } from "playwright-core";
import path from "node:path";

const [file, runsArg] = process.argv.slice(2);
const runs = Number(runsArg || 3);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox", "--disable-gpu"] });
const times = [];
for (let i = 0; i < runs; i++) {
  const page = await browser.newPage({ viewport: { width: 1300, height: 900 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  const t0 = Date.now();
  await page.goto("file://" + path.resolve(file), { waitUntil: "load" });
  await page.waitForSelector("#treemap .tile");
  await page.waitForFunction(() => Number(document.querySelector("#blob-table")?.dataset.draws) > 0);
  const ms = Date.now() - t0;
  if (errors.length) { console.error(errors.join("\n")); process.exit(1); }
  times.push(ms);
  console.log(`run ${i + 1}: ${ms} ms`);
  await page.close();
}
await browser.close();
times.sort((a, b) => a - b);
console.log(`median: ${times[Math.floor(times.length / 2)]} ms`);
