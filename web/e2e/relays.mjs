// Two people in Debian's headless Chromium meet on two relays of one platform
// (`videocall up --relays 2 --meeting-share-per-relay 1`): each is placed on its own relay,
// reaches it over WebTransport through the gateway (relay-<n>.localhost), and sees and hears
// the other across the relay mesh. Run by platform/tests/browser.rs:
//   node relays.mjs <base-url> <out-dir>
// Prints MET once both see and hear each other, then waits for a line on stdin (the test
// checks where they are meanwhile) and leaves; prints one JSON line of figures last.
import { launchChromium } from "./browsers.mjs";
import { mkdirSync } from "node:fs";
import { join as path } from "node:path";
import { createInterface } from "node:readline";

const [base, out] = process.argv.slice(2);
if (!base || !out) {
  console.error("usage: node relays.mjs <base-url> <out-dir>");
  process.exit(2);
}
mkdirSync(out, { recursive: true });
const step = (what) => console.error(`· ${what}`);

const browser = await launchChromium();

async function join(name) {
  const context = await browser.newContext({ permissions: ["camera", "microphone"] });
  const page = await context.newPage();
  page.on("console", (message) => {
    if (message.type() === "error" || message.type() === "warning") {
      console.error(`  [${name}] ${message.type()}: ${message.text()}`);
    }
  });
  page.on("pageerror", (error) => console.error(`  [${name}] page error: ${error}`));
  await page.goto(`${base}/meeting/${name}/demo`);
  await page.waitForSelector("#join:not([disabled])", { timeout: 20000 });
  const clicked = Date.now();
  await page.click("#join");
  await page.waitForSelector("#leave", { timeout: 20000 });
  return { page, clicked };
}

async function waitFor(page, what, predicate, argument, timeout = 20000) {
  try {
    await page.waitForFunction(predicate, argument, { timeout, polling: 100 });
  } catch {
    const state = await page.evaluate(() => JSON.stringify(window.__videocall ?? null)).catch(() => "?");
    throw new Error(`${what}: not within ${timeout} ms (state ${state.slice(0, 400)})`);
  }
}
const framesFrom = (page, who, name, atLeast) =>
  waitFor(page, `${who}: frames from ${name}`, ([n, k]) => (window.__videocall?.framesByPeer?.[n] ?? 0) >= k, [name, atLeast]);
const audioFrom = (page, who, name, atLeast) =>
  waitFor(page, `${who}: audio from ${name}`, ([n, k]) => (window.__videocall?.audioByPeer?.[n] ?? 0) >= k, [name, atLeast]);
const transport = (page) => page.evaluate(() => window.__videocall?.transport ?? null);

const figures = {};
try {
  step("alice joins (relay 0), then bob (the share of relay 0 is taken: relay 1)");
  const alice = await join("alice");
  const bob = await join("bob");
  for (const [page, who, other] of [[alice.page, "alice", "bob"], [bob.page, "bob", "alice"]]) {
    await framesFrom(page, who, other, 30);
    await audioFrom(page, who, other, 20);
  }
  figures.bob_join_to_alice_frames_ms = Date.now() - bob.clicked;
  for (const [page, who] of [[alice.page, "alice"], [bob.page, "bob"]]) {
    const used = await transport(page);
    if (used !== "WebTransport") throw new Error(`${who} is on ${used}, not WebTransport`);
  }
  await alice.page.screenshot({ path: path(out, "relays-alice-sees-bob.png") });
  await bob.page.screenshot({ path: path(out, "relays-bob-sees-alice.png") });
  console.log("MET");
  const lines = createInterface({ input: process.stdin });
  await lines[Symbol.asyncIterator]().next();
  lines.close();
  process.stdin.destroy();
  // Still flowing after the check.
  const before = await alice.page.evaluate(() => window.__videocall.framesByPeer.bob);
  await framesFrom(alice.page, "alice", "bob", before + 30);
  for (const page of [alice.page, bob.page]) await page.context().close();
  console.log(JSON.stringify(figures));
} finally {
  await browser.close();
}
