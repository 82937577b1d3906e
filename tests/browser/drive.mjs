// Headless Chromium (the system's, never a downloaded one) on one page, driven over
// stdin/stdout by tests/support/browser.py: one JSON request a line, one JSON answer a line.
//   {"id": 1, "call": "connect", "args": [...], "timeout": 60000}  -> await window.page.connect(...)
//   {"id": 2, "wait": "JS expression", "timeout": 30000}           -> until it is truthy
// Usage: node drive.mjs CHROMIUM PAGE_URL USER_DATA_DIR
import readline from "node:readline";
import { chromium } from "playwright-core";

const [executablePath, url, userDataDir] = process.argv.slice(2);
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  // Loopback only: WebRTC may use 127.0.0.1, host candidates are plain addresses (no
  // mDNS), and no name but 127.0.0.1 resolves.
  "--allow-loopback-in-peer-connection",
  "--disable-features=WebRtcHideLocalIpsWithMdns",
  "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
  // A busy machine must not slow the page's timers and media.
  "--disable-background-timer-throttling",
  "--disable-renderer-backgrounding",
  "--autoplay-policy=no-user-gesture-required",
];

function send(message) {
  process.stdout.write(JSON.stringify(message) + "\n");
}

const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath,
  headless: true,
  args: FLAGS,
});
const page = context.pages()[0] ?? (await context.newPage());
page.on("console", (message) => process.stderr.write(`page ${message.type()}: ${message.text()}\n`));
page.on("pageerror", (error) => process.stderr.write(`page error: ${error.message}\n`));
await page.goto(url);
await page.waitForFunction(() => window.page !== undefined, null, { timeout: 30000 });
send({ ready: true, version: context.browser()?.version() ?? null });

const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  const request = JSON.parse(line);
  const timeout = request.timeout ?? 30000;
  try {
    let value;
    if (request.call !== undefined) {
      const call = page.evaluate(({ name, args }) => window.page[name](...args), {
        name: request.call,
        args: request.args ?? [],
      });
      let timer;
      const late = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${request.call} took over ${timeout} ms`)), timeout);
      });
      try {
        value = await Promise.race([call, late]);
      } finally {
        clearTimeout(timer);
      }
    } else {
      const handle = await page.waitForFunction(request.wait, null, { timeout, polling: 100 });
      value = await handle.jsonValue();
    }
    send({ id: request.id, ok: true, value: value ?? null });
  } catch (error) {
    send({ id: request.id, ok: false, error: String(error?.message ?? error) });
  }
}
await context.close();
