// End-to-end meeting in Debian's headless Chromium, driven by playwright-core. Run by
// platform/tests/browser.rs against platforms it started:
//   node meeting.mjs <base-url> <out-dir> <blocked-base-url>
// where the second platform's relay advertises an address nobody listens on. When it prints
// RESTART the test kills and restarts the first platform and answers RESTARTED on stdin.
// Prints one JSON line of figures last; exits non-zero with the failed check's message.
import { launchChromium } from "./browsers.mjs";
import { mkdirSync, writeFileSync } from "node:fs";
import { join as path } from "node:path";
import { createInterface } from "node:readline";
import { readStrip, stripAges } from "./strip.mjs";

const [base, out, blockedBase] = process.argv.slice(2);
if (!base || !out || !blockedBase) {
  console.error("usage: node meeting.mjs <base-url> <out-dir> <blocked-base-url>");
  process.exit(2);
}
mkdirSync(out, { recursive: true });
const figures = {};
const step = (what) => console.error(`· ${what}`);

const browser = await launchChromium(["--auto-select-desktop-capture-source=Entire screen"]);

const stdinLines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const pages = [];
async function open(name, meeting = "demo", query = "", origin = base, init) {
  const context = await browser.newContext({ permissions: ["camera", "microphone"] });
  if (init) await context.addInitScript(init);
  const page = await context.newPage();
  page.on("console", (message) => {
    if (message.type() === "error" || message.type() === "warning") {
      console.error(`  [${name}] ${message.type()}: ${message.text()}`);
    }
  });
  page.on("pageerror", (error) => console.error(`  [${name}] page error: ${error}`));
  await page.goto(`${origin}/meeting/${name}/${meeting}${query}`);
  await page.waitForSelector("#join:not([disabled])", { timeout: 20000 });
  pages.push(page);
  return page;
}
async function join(name, query = "", meeting = "demo", init) {
  const page = await open(name, meeting, query, base, init);
  await page.click("#join");
  await page.waitForSelector("#leave", { timeout: 20000 });
  return page;
}
async function close(page) {
  pages.splice(pages.indexOf(page), 1);
  await page.context().close();
}
async function expectScreen(name, meeting, heading, { origin = base, prepare } = {}) {
  const page = await open(name, meeting, "", origin);
  if (prepare) await prepare(page);
  await page.click("#join");
  try {
    await page.waitForSelector(`h1:has-text("${heading}")`, { timeout: 15000 });
  } catch {
    throw new Error(`${meeting}: no "${heading}" screen (page says: ${(await page.textContent("body")).slice(0, 200)})`);
  }
  await page.screenshot({ path: path(out, `screen-${meeting}.png`) });
  await close(page);
}

const figure = (page, expression) => page.evaluate(expression);
async function waitFor(page, what, predicate, argument, timeout = 20000) {
  try {
    await page.waitForFunction(predicate, argument, { timeout, polling: 100 });
  } catch (error) {
    const state = await page.evaluate(() => JSON.stringify(window.__videocall ?? null)).catch(() => "?");
    throw new Error(`${what}: not within ${timeout} ms (state ${state.slice(0, 400)})`);
  }
}
const framesFrom = (page, name, atLeast, timeout) =>
  waitFor(page, `frames from ${name}`, ([n, k]) => (window.__videocall?.framesByPeer?.[n] ?? 0) >= k, [name, atLeast], timeout);
const audioFrom = (page, name, atLeast) =>
  waitFor(page, `audio from ${name}`, ([n, k]) => (window.__videocall?.audioByPeer?.[n] ?? 0) >= k, [name, atLeast]);

async function canvasIsNotBlank(page, selector) {
  return page.evaluate((selector) => {
    const canvas = document.querySelector(selector);
    if (!canvas || canvas.width < 16) return false;
    const { data } = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
    let min = 255, max = 0;
    for (let i = 0; i < data.length; i += 4 * 97) {
      const luma = (data[i] + data[i + 1] + data[i + 2]) / 3;
      min = Math.min(min, luma);
      max = Math.max(max, luma);
    }
    return max - min > 40;
  }, selector);
}

async function transportIs(page, name, expected) {
  try {
    await page.waitForFunction((t) => document.querySelector("[data-testid=transport]")?.textContent.trim() === t, expected, { timeout: 10000 });
  } catch {
    throw new Error(`${name}'s transport is ${await page.textContent("[data-testid=transport]")}, not ${expected}`);
  }
}

function percentile(values, q) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))];
}

async function latency(label, query) {
  const a = await join(`${label}a`, query);
  const b = await join(`${label}b`, query);
  await framesFrom(b, `${label}a`, 1);
  const first = await figure(b, () => window.__videocall.joinToFirstFrameMs);
  // Let the pipeline settle, then keep the latest 150 frames' figures.
  await framesFrom(b, `${label}a`, 200, 30000);
  const samples = (await figure(b, () => window.__videocall.glassToGlassMs)).slice(-150);
  figures[label] = {
    join_to_first_frame_ms: Math.round(first),
    glass_to_glass_p50_ms: Math.round(percentile(samples, 0.5)),
    glass_to_glass_p95_ms: Math.round(percentile(samples, 0.95)),
    transport: await figure(b, () => window.__videocall.transport),
    codec: await figure(a, () => window.__videocall.codec),
  };
  await close(a);
  await close(b);
}

try {
  step("alice and bob join (WebTransport)");
  const alice = await join("alice");
  const bob = await join("bob");
  await transportIs(alice, "alice", "WebTransport");
  await transportIs(bob, "bob", "WebTransport");
  step("each sees the other's video and hears audio");
  await framesFrom(alice, "bob", 30);
  await framesFrom(bob, "alice", 30);
  await audioFrom(alice, "bob", 25);
  await audioFrom(bob, "alice", 25);
  for (const [page, other] of [[alice, "bob"], [bob, "alice"]]) {
    if (!(await canvasIsNotBlank(page, `[data-peer="${other}"] canvas`))) {
      throw new Error(`${other}'s canvas is blank`);
    }
  }
  await alice.screenshot({ path: path(out, "alice-sees-bob.png") });

  step("speaking rings show from the audio level");
  await alice.waitForSelector('[data-peer="bob"].speaking', { timeout: 10000 });

  step("the relay names the active speaker from the packets' audio levels; the page shows it larger");
  await waitFor(alice, "bob as the active speaker", () => window.__videocall?.activeSpeaker === "bob", undefined, 10000);
  await alice.waitForSelector('[data-peer="bob"].active', { timeout: 5000 });

  step("mute propagates (and the controls work from the keyboard)");
  await bob.focus("#mute");
  await bob.keyboard.press("Enter");
  await alice.waitForSelector('[data-peer="bob"] [aria-label="microphone muted"]', { timeout: 10000 });
  await bob.click("#mute");
  await alice.waitForSelector('[data-peer="bob"] [aria-label="microphone muted"]', { state: "detached", timeout: 10000 });

  step("camera off shows a placeholder; on again resumes");
  await bob.click("#camera");
  await alice.waitForSelector('[data-peer="bob"] .avatar', { timeout: 10000 });
  await bob.click("#camera");
  await alice.waitForSelector('[data-peer="bob"] .avatar', { state: "detached", timeout: 10000 });
  const resumed = await figure(alice, () => window.__videocall.framesByPeer.bob);
  await framesFrom(alice, "bob", resumed + 15);

  step("participants and connection panels");
  await alice.click("#people");
  await alice.waitForSelector('aside[aria-label="participants"] li:has-text("bob")', { timeout: 5000 });
  await alice.click("#stats");
  const panelTransport = await alice.textContent("[data-testid=panel-transport]");
  if (panelTransport.trim() !== "WebTransport") throw new Error(`connection panel says ${panelTransport}`);
  await alice.waitForFunction(() => /\d+ ms/.test(document.querySelector('aside[aria-label="connection"]').textContent), undefined, { timeout: 10000 });
  await alice.screenshot({ path: path(out, "alice-connection-panel.png") });

  step("chat arrives");
  await alice.click("#chat");
  await alice.fill("#chat-input", "hello from alice");
  await alice.press("#chat-input", "Enter");
  await bob.click("#chat");
  await bob.waitForSelector("text=hello from alice", { timeout: 10000 });

  step("a screen share tile appears");
  await bob.click("#share");
  await alice.waitForSelector('canvas[aria-label="bob\'s screen"]', { timeout: 15000 });
  await waitFor(alice, "screen frames", () => {
    const canvas = document.querySelector('canvas[aria-label="bob\'s screen"]');
    return canvas && canvas.width > 16;
  }, undefined, 15000);
  await alice.screenshot({ path: path(out, "alice-sees-bobs-screen.png") });
  await bob.click("#share");
  await alice.waitForSelector('canvas[aria-label="bob\'s screen"]', { state: "detached", timeout: 10000 });

  step("carol joins over WebSocket (forced)");
  const carol = await join("carol", "?transport=websocket");
  await transportIs(carol, "carol", "WebSocket");
  await framesFrom(carol, "alice", 30);
  await framesFrom(alice, "carol", 30);
  await carol.screenshot({ path: path(out, "carol-websocket.png") });

  step("a tile carol does not show gets her none of alice's video (bob still gets it); shown, it resumes");
  // The page tells the relay how large it shows each video (ViewTracks) on its 0.5 s tick.
  const aliceFrames = (page) => figure(page, () => window.__videocall.framesByPeer.alice ?? 0);
  await carol.evaluate(() => { document.querySelector('[data-peer="alice"] canvas').style.display = "none"; });
  await carol.waitForTimeout(1500);
  const [carolBefore, bobBefore] = [await aliceFrames(carol), await aliceFrames(bob)];
  await carol.waitForTimeout(2000);
  const carolHidden = (await aliceFrames(carol)) - carolBefore;
  const bobMeanwhile = (await aliceFrames(bob)) - bobBefore;
  if (carolHidden > 1) throw new Error(`carol decoded ${carolHidden} frames of a tile she does not show`);
  if (bobMeanwhile < 20) throw new Error(`bob decoded only ${bobMeanwhile} frames of alice meanwhile`);
  figures.hidden_tile_frames_in_2s = carolHidden;
  await carol.evaluate(() => { document.querySelector('[data-peer="alice"] canvas').style.display = ""; });
  const shownAt = Date.now();
  await framesFrom(carol, "alice", carolBefore + carolHidden + 15, 10000);
  figures.shown_tile_15_frames_ms = Date.now() - shownAt;

  step("a closed tab disappears for the others within 10 s");
  const closedAt = Date.now();
  await close(carol);
  await alice.waitForSelector('[data-peer="carol"]', { state: "detached", timeout: 10000 });
  figures.closed_tab_gone_ms = Date.now() - closedAt;

  step("without WebTransport the page uses WebSocket by itself");
  const erin = await join("erin", "", "demo", () => { delete window.WebTransport; });
  await transportIs(erin, "erin", "WebSocket");
  await framesFrom(erin, "alice", 15);
  await close(erin);

  step("a WebTransport that never connects falls back within 3 s");
  const startedAt = Date.now();
  const frank = await join("frank", "", "demo", () => {
    window.WebTransport = class { constructor() { this.ready = new Promise(() => {}); this.closed = new Promise(() => {}); } close() {} };
  });
  await transportIs(frank, "frank", "WebSocket");
  figures.webtransport_fallback_join_ms = Date.now() - startedAt;
  await framesFrom(frank, "alice", 15);
  await close(frank);

  step("VP8 where the browser cannot encode H.264");
  const grace = await join("grace", "", "demo", () => {
    const original = VideoEncoder.isConfigSupported.bind(VideoEncoder);
    VideoEncoder.isConfigSupported = (config) =>
      config.codec.startsWith("avc1") ? Promise.resolve({ supported: false, config }) : original(config);
  });
  await framesFrom(alice, "grace", 30);
  const graceCodec = await figure(grace, () => window.__videocall.codec);
  if (graceCodec !== "Vp8") throw new Error(`grace encodes ${graceCodec}`);
  await close(grace);

  step("Firefox's capture path (<video> frames, AudioWorklet) is seen and heard");
  const dave = await join("dave", "?capture=element");
  await framesFrom(alice, "dave", 30);
  await audioFrom(alice, "dave", 25);
  await framesFrom(dave, "alice", 30);
  await close(dave);

  step("videocall-streamer's H.264 test pattern is decoded, its burned-in counter advancing, its Opus tone heard");
  const viewer = await join("viewer", "", "shelf");
  await framesFrom(viewer, "pi", 30);
  await audioFrom(viewer, "pi", 25);
  if (!(await canvasIsNotBlank(viewer, '[data-peer="pi"] canvas'))) throw new Error("pi's canvas is blank");
  const strip = await readStrip(viewer, '[data-peer="pi"] canvas');
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const later = await readStrip(viewer, '[data-peer="pi"] canvas');
  if (!strip || !later) throw new Error(`the streamer's strip does not read (${JSON.stringify([strip, later])})`);
  if (!(later.counter > strip.counter + 5)) {
    throw new Error(`the streamer's counter does not advance: ${strip.counter} then ${later.counter}`);
  }
  figures.streamer_counter_per_s = later.counter - strip.counter;
  figures.streamer_picture_age_ms = later.now - later.capturedMs;
  // Glass to glass (streamer's capture clock → drawn in the page), over 3 s of pictures.
  const ages = await stripAges(viewer, '[data-peer="pi"] canvas', 3000);
  if (ages.pictures < 10) throw new Error(`only ${ages.pictures} new pictures drawn in 3 s`);
  figures.streamer_glass_to_glass_p50_ms = ages.p50;
  figures.streamer_glass_to_glass_p90_ms = ages.p90;
  await viewer.screenshot({ path: path(out, "native-h264.png") });
  await close(viewer);

  step("the platform restarts: the pages say they are reconnecting, and reconnect by themselves");
  // Counted in all: after the restart bob is a new participant (a new id) to alice.
  const before = await figure(alice, () => window.__videocall.framesDecoded);
  // The page says it is reconnecting while it is (however briefly).
  await alice.evaluate(() => {
    window.__sawReconnecting = false;
    new MutationObserver(() => {
      if (document.querySelector("[data-testid=reconnecting]")) window.__sawReconnecting = true;
    }).observe(document.body, { subtree: true, childList: true });
  });
  console.log("RESTART");
  const answer = await stdinLines.next();
  if (answer.value !== "RESTARTED") throw new Error(`unexpected answer ${answer.value}`);
  const restartedAt = Date.now();
  await waitFor(alice, "frames from bob after the restart",
    ([n]) => (window.__videocall?.framesDecoded ?? 0) >= n + 30 && (window.__videocall?.framesByPeer?.bob ?? 0) > 0,
    [before], 40000);
  figures.reconnect_ms = Date.now() - restartedAt;
  if (!(await figure(alice, () => window.__sawReconnecting))) throw new Error("alice's page never said it was reconnecting");
  await alice.waitForSelector("[data-testid=reconnecting]", { state: "detached", timeout: 10000 });
  await alice.screenshot({ path: path(out, "alice-after-restart.png") });

  step("leaving: a clear screen, and gone for the others");
  await bob.click("#leave");
  await bob.waitForSelector('h1:has-text("You left the meeting")', { timeout: 5000 });
  await alice.waitForSelector('[data-peer="bob"]', { state: "detached", timeout: 10000 });
  await close(alice);
  await close(bob);

  step("clear screens: full, not allowed, over, no such meeting, unreachable, blocked");
  const first = await join("first", "", "full");
  await expectScreen("second", "full", "This meeting is full");
  await close(first);
  await expectScreen("guest", "private", "You are not allowed into this meeting");
  await expectScreen("guest", "over", "This meeting is over");
  await expectScreen("guest", "nosuch", "There is no such meeting");
  await expectScreen("guest", "demo", "The server cannot be reached", {
    prepare: (page) => page.route("**/JoinMeeting", (route) => route.abort("connectionrefused")),
  });
  await expectScreen("guest", "demo", "Your network blocks the media connection", { origin: blockedBase });

  step("latency at 640x480 and 1280x720");
  await latency("vga", "?video=640x480");
  await latency("hd", "?video=1280x720");
  console.log(JSON.stringify(figures));
  writeFileSync(path(out, "figures.json"), JSON.stringify(figures, null, 2));
} catch (error) {
  for (const [i, page] of pages.entries()) {
    await page.screenshot({ path: path(out, `failure-${i}.png`) }).catch(() => {});
  }
  console.error(`FAILED: ${error.message}`);
  process.exitCode = 1;
} finally {
  await browser.close();
  process.stdin.destroy();
}
