// Drives the test page in headless Chromium (Debian's, not a download)
// with playwright-core and prints {"results":...,"logs":[...]} as JSON.
import { chromium } from "playwright-core";

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
const logs = [];
try {
  const page = await browser.newPage();
  page.on("console", (m) => logs.push(m.type() + ": " + m.text()));
  page.on("pageerror", (e) => logs.push("pageerror: " + e.message));
  page.on("requestfailed", (r) => logs.push("requestfailed: " + r.method() + " " + r.url() + " " + (r.failure() || {}).errorText));
  await page.goto(process.env.PAGE_URL);
  await page.waitForFunction(() => window.__done === true, null, { timeout: 30000 });
  const results = await page.evaluate(() => window.__results);
  console.log(JSON.stringify({ results, logs }));
} catch (e) {
  console.log(JSON.stringify({ results: null, logs: [...logs, "driver: " + e.message] }));
} finally {
  await browser.close();
}
