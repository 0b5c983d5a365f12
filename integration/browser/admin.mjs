// Loads the admin page in headless Chromium (Debian's) with playwright-core,
// saves a screenshot to SHOT and prints {"text":...,"logs":[...]} as JSON.
import { chromium } from "playwright-core";

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
const logs = [];
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.on("console", (m) => logs.push(m.type() + ": " + m.text()));
  page.on("pageerror", (e) => logs.push("pageerror: " + e.message));
  await page.goto(process.env.PAGE_URL, { waitUntil: "load" });
  const text = await page.evaluate(() => document.body.innerText);
  const title = await page.title();
  if (process.env.SHOT) {
    await page.screenshot({ path: process.env.SHOT, fullPage: true });
  }
  console.log(JSON.stringify({ title, text, logs }));
} catch (e) {
  console.log(JSON.stringify({ title: "", text: "", logs: [...logs, "driver: " + e.message] }));
} finally {
  await browser.close();
}
