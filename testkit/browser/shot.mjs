// Screenshot of a report page for the README (docs/img/report.png): the treemap zoomed into
// one repository with its tag tiles coloured by image age, then the tables and charts.
//
//   node shot.mjs FILE.html REPOSITORY OUT.png
import { chromium } from "playwright-core";
import path from "node:path";

const [file, repo, out] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox", "--disable-gpu"] });
try {
  const page = await browser.newPage({ viewport: { width: 1300, height: 900 } });
  await page.goto("file://" + path.resolve(file), { waitUntil: "load" });
  await page.waitForSelector("#treemap .tile");
  const parts = repo.split("/");
  for (let i = 1; i <= parts.length; i++) {
    const name = parts.slice(0, i).join("/");
    const tile = await page.$(`#treemap .tile[data-name="${name}"]`);
    if (tile) await tile.click();
  }
  await page.click('#metric button[data-metric="total"]');
  await page.click('#colour button[data-colour="age"]');
  // Down to "bytes by image age": the rest is the long blob table.
  const h = await page.$eval("#ages-section", (e) => e.getBoundingClientRect().bottom + window.scrollY + 16);
  await page.screenshot({ path: out, fullPage: true, clip: { x: 0, y: 0, width: 1300, height: Math.ceil(h) } });
} finally {
  await browser.close();
}
