// Firefox meets Chromium: Debian's firefox-esr (headless, driven by puppeteer-core over WebDriver
// BiDi, fake camera and microphone) and Debian's chromium (playwright-core) join one meeting of
// the platform at <base-url>; each must decode the other's video and audio. Firefox has no
// MediaStreamTrackProcessor, so its page captures from a <video> element and an AudioWorklet.
//   node firefox.mjs <base-url> <out-dir>
// Prints one JSON line of figures; exits non-zero with the failed check's message.
import puppeteer from "puppeteer-core";
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join as path } from "node:path";
import { readStrip } from "./strip.mjs";

const [base, out] = process.argv.slice(2);
if (!base || !out) {
  console.error("usage: node firefox.mjs <base-url> <out-dir>");
  process.exit(2);
}
mkdirSync(out, { recursive: true });
const step = (what) => console.error(`· ${what}`);

const firefox = await puppeteer.launch({
  browser: "firefox",
  executablePath: process.env.VIDEOCALL_FIREFOX || "/usr/bin/firefox-esr",
  headless: true,
  protocol: "webDriverBiDi",
  extraPrefsFirefox: {
    "media.navigator.streams.fake": true,
    "media.navigator.permission.disabled": true,
    "media.autoplay.default": 0,
    "media.autoplay.block-webaudio": false,
  },
});
const chrome = await chromium.launch({
  executablePath: process.env.VIDEOCALL_CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox", "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
  ],
});

async function until(page, what, predicate, argument, timeout = 30000) {
  try {
    await page.waitForFunction(predicate, { timeout, polling: 100 }, argument);
  } catch {
    const state = await page.evaluate(() => JSON.stringify(window.__videocall ?? null));
    throw new Error(`${what}: not within ${timeout} ms (state ${String(state).slice(0, 400)})`);
  }
}

let fox;
let alice;
try {
  step("alice joins in Chromium");
  const context = await chrome.newContext({ permissions: ["camera", "microphone"] });
  alice = await context.newPage();
  await alice.goto(`${base}/meeting/alice/demo`);
  await alice.waitForSelector("#join:not([disabled])", { timeout: 20000 });
  await alice.click("#join");
  await alice.waitForSelector("#leave", { timeout: 20000 });

  step("fox joins in Firefox");
  fox = await firefox.newPage();
  fox.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warn") console.error(`  [fox] ${m.type()}: ${m.text()}`);
  });
  await fox.goto(`${base}/meeting/fox/demo`);
  await fox.waitForSelector("#join:not([disabled])", { timeout: 20000 });
  await fox.click("#join");
  await fox.waitForSelector("#leave", { timeout: 20000 });

  step("each decodes the other's video and audio");
  await until(fox, "frames from alice in Firefox", () => (window.__videocall?.framesByPeer?.alice ?? 0) >= 30);
  await until(fox, "audio from alice in Firefox", () => (window.__videocall?.audioByPeer?.alice ?? 0) >= 25);
  for (const [what, predicate] of [
    ["frames from fox in Chromium", () => (window.__videocall?.framesByPeer?.fox ?? 0) >= 30],
    ["audio from fox in Chromium", () => (window.__videocall?.audioByPeer?.fox ?? 0) >= 25],
  ]) {
    try {
      await alice.waitForFunction(predicate, undefined, { timeout: 30000 });
    } catch {
      const state = await alice.evaluate(() => JSON.stringify(window.__videocall ?? null));
      throw new Error(`${what}: not within 30000 ms (state ${state.slice(0, 400)})`);
    }
  }
  step("Firefox's frames reach Chromium without a standing delay");
  await alice.waitForFunction(() => (window.__videocall?.framesByPeer?.fox ?? 0) >= 200, undefined, { timeout: 30000 });
  const recent = (await alice.evaluate(() => window.__videocall.glassToGlassMs)).slice(-30).sort((a, b) => a - b);
  const foxToAliceP50 = recent[Math.floor(recent.length / 2)];
  // A standing delay (an encoder holding frames back) is seconds; an unloaded machine shows
  // 6–8 ms and a loaded one (both browsers and a build on two cores) around 100 ms. The figure
  // is recorded below; the bound only catches the standing delay.
  if (!(foxToAliceP50 < 500)) throw new Error(`Firefox → Chromium glass-to-glass p50 ${foxToAliceP50} ms`);
  await fox.screenshot({ path: path(out, "firefox-sees-alice.png") });
  await alice.screenshot({ path: path(out, "chromium-sees-fox.png") });
  const figures = {
    firefox_transport: await fox.evaluate(() => window.__videocall.transport),
    firefox_codec: await fox.evaluate(() => window.__videocall.codec),
    firefox_to_chromium_glass_to_glass_p50_ms: Math.round(foxToAliceP50),
    firefox_join_to_first_frame_ms: Math.round(await fox.evaluate(() => window.__videocall.joinToFirstFrameMs)),
    chromium_to_firefox_glass_to_glass_p50_ms: Math.round(await fox.evaluate(() => {
      const recent = window.__videocall.glassToGlassMs.slice(-30).sort((a, b) => a - b);
      return recent[Math.floor(recent.length / 2)];
    })),
  };

  step("Firefox decodes videocall-streamer's H.264 test pattern, its burned-in counter advancing");
  const viewer = await firefox.newPage();
  await viewer.goto(`${base}/meeting/viewer/shelf`);
  await viewer.waitForSelector("#join:not([disabled])", { timeout: 20000 });
  await viewer.click("#join");
  await viewer.waitForSelector("#leave", { timeout: 20000 });
  await until(viewer, "frames from the streamer in Firefox", () => (window.__videocall?.framesByPeer?.pi ?? 0) >= 30);
  const strip = await readStrip(viewer, '[data-peer="pi"] canvas');
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const later = await readStrip(viewer, '[data-peer="pi"] canvas');
  if (!strip || !later || !(later.counter > strip.counter + 5)) {
    throw new Error(`the streamer's counter in Firefox: ${JSON.stringify([strip, later])}`);
  }
  figures.firefox_streamer_counter_per_s = later.counter - strip.counter;
  figures.firefox_streamer_picture_age_ms = later.now - later.capturedMs;
  await viewer.screenshot({ path: path(out, "firefox-sees-the-streamer.png") });
  console.log(JSON.stringify(figures));
} catch (error) {
  for (const [name, page] of [["fox", fox], ["alice", alice]]) {
    if (page) await page.screenshot({ path: path(out, `firefox-failure-${name}.png`) }).catch(() => {});
  }
  console.error(`FAILED: ${error.message}`);
  process.exitCode = 1;
} finally {
  await firefox.close();
  await chrome.close();
}
