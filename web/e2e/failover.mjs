// A relay of a meeting is killed under one of its two Chromium participants: the page notices,
// asks the control plane for a new grant that avoids the lost relay, lands on the relay still
// hosting the meeting, and media flows both ways again. Run by platform/tests/browser.rs:
//   node failover.mjs <base-url> <out-dir>
// Protocol on stdio: prints MET once alice (relay-0) and bob (the relay to be killed) see and
// hear each other, and waits for KILLED (the test has sent SIGKILL); measures until media is
// back both ways and prints BACK <json>; waits for CHECKED; prints one JSON line of figures.
import { launchChromium } from "./browsers.mjs";
import { mkdirSync } from "node:fs";
import { join as path } from "node:path";
import { createInterface } from "node:readline";

const [base, out] = process.argv.slice(2);
if (!base || !out) {
  console.error("usage: node failover.mjs <base-url> <out-dir>");
  process.exit(2);
}
mkdirSync(out, { recursive: true });
const step = (what) => console.error(`· ${what}`);
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const expectLine = async (word) => {
  const { value, done } = await lines.next();
  if (done || value.trim() !== word) throw new Error(`expected ${word} from the test, got ${value}`);
};

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
  await page.click("#join");
  await page.waitForSelector("#leave", { timeout: 20000 });
  return page;
}

async function waitFor(page, what, predicate, argument, timeout = 20000) {
  try {
    await page.waitForFunction(predicate, argument, { timeout, polling: 50 });
  } catch {
    const state = await page.evaluate(() => JSON.stringify(window.__videocall ?? null)).catch(() => "?");
    throw new Error(`${what}: not within ${timeout} ms (state ${state.slice(0, 400)})`);
  }
}
const figure = (page, name) => page.evaluate((n) => window.__videocall?.[n] ?? null, name);
// Each page has one peer, so its totals count only the other person's media.
const moreMedia = async (page, who, frames, audio, timeout) => {
  const [v, a] = [(await figure(page, "framesDecoded")) ?? 0, (await figure(page, "audioFramesDecoded")) ?? 0];
  await waitFor(
    page,
    `${who}: media again`,
    ([v0, a0, dv, da]) =>
      (window.__videocall?.framesDecoded ?? 0) >= v0 + dv &&
      (window.__videocall?.audioFramesDecoded ?? 0) >= a0 + da,
    [v, a, frames, audio],
    timeout,
  );
};

const figures = {};
try {
  step("alice joins (relay-0), then bob (relay-0 has its share: the other relay)");
  const alice = await join("alice");
  const bob = await join("bob");
  for (const [page, who] of [[alice, "alice"], [bob, "bob"]]) await moreMedia(page, who, 30, 20, 20000);
  figures.bob_relay_before = await figure(bob, "relayId");
  figures.alice_relay = await figure(alice, "relayId");
  if (figures.bob_relay_before === figures.alice_relay) {
    throw new Error(`alice and bob share ${figures.alice_relay}`);
  }
  console.log("MET");
  await expectLine("KILLED");
  const killed = Date.now();
  step(`${figures.bob_relay_before} killed: waiting for media both ways`);
  const back = await Promise.all([
    moreMedia(alice, "alice", 5, 5, 15000).then(() => Date.now() - killed),
    moreMedia(bob, "bob", 5, 5, 15000).then(() => Date.now() - killed),
  ]);
  figures.alice_media_back_ms = back[0];
  figures.bob_media_back_ms = back[1];
  figures.media_back_ms = Math.max(...back);
  figures.bob_relay_after = await figure(bob, "relayId");
  console.log(`BACK ${JSON.stringify(figures)}`);
  step("the lost bob leaves alice's list; one bob stays");
  await waitFor(alice, "alice: one bob", () => {
    const peers = window.__videocall?.peers ?? [];
    return peers.length === 1 && peers[0] === "bob";
  }, undefined, Math.max(1000, 10000 - (Date.now() - killed)));
  figures.lost_bob_gone_ms = Date.now() - killed;
  await alice.screenshot({ path: path(out, "failover-alice-sees-bob.png") });
  await expectLine("CHECKED");
  await moreMedia(alice, "alice", 30, 20, 10000);
  await moreMedia(bob, "bob", 30, 20, 10000);
  for (const page of [alice, bob]) await page.context().close();
  process.stdin.destroy();
  console.log(JSON.stringify(figures));
} finally {
  await browser.close();
}
