// Firefox meets Chromium: Debian's firefox-esr (headless, driven by puppeteer-core over WebDriver
// BiDi, fake camera and microphone) and Debian's chromium (playwright-core) join one meeting of
// the platform at <base-url>; each must decode the other's video and audio. Firefox has no
// MediaStreamTrackProcessor, so its page captures from a <video> element and an AudioWorklet.
// Then both join the end-to-end encrypted meeting `encrypted` beside two native participants the
// test starts (the streamer as pi, `videocall join` as carol): everyone opens everyone's media,
// both browsers show the same verification codes (printed as `CODES {name: code}` for the test
// to hold against carol's), and a chat line arrives sealed.
//   node firefox.mjs <base-url> <out-dir>
// VIDEOCALL_FRAMES=wasm|webcrypto|fastest (the default) says where the encrypted meeting's
// frames are ciphered (`?frames=`).
// Prints one JSON line of figures last; exits non-zero with the failed check's message.
import { launchChromium, launchFirefox } from "./browsers.mjs";
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

const firefox = await launchFirefox();
const chrome = await launchChromium();

// Waits in a Firefox (puppeteer) or Chromium (playwright) page: their waitForFunction take the
// argument and the options in opposite orders.
async function until(page, what, predicate, argument, timeout = 30000) {
  const playwright = typeof page.context === "function";
  try {
    if (playwright) {
      await page.waitForFunction(predicate, argument, { timeout, polling: 100 });
    } else {
      await page.waitForFunction(predicate, { timeout, polling: 100 }, argument);
    }
  } catch {
    const state = await page.evaluate(() => JSON.stringify(window.__videocall ?? null));
    throw new Error(`${what}: not within ${timeout} ms (state ${String(state).slice(0, 400)})`);
  }
}

let fox;
let alice;
let context;

// Opens `/meeting/<name>/<meeting>` in a new page of `opener` (a Chromium context or the
// Firefox browser) and joins from the lobby; Firefox's warnings go to stderr.
async function joinIn(opener, name, meeting, query = "") {
  const page = await opener.newPage();
  if (opener === firefox) {
    page.on("console", (m) => {
      if (m.type() === "error" || m.type() === "warn") console.error(`  [${name}] ${m.type()}: ${m.text()}`);
    });
  }
  await page.goto(`${base}/meeting/${name}/${meeting}${query}`);
  await page.waitForSelector("#join:not([disabled])", { timeout: 20000 });
  await page.click("#join");
  await page.waitForSelector("#leave", { timeout: 20000 });
  return page;
}
try {
  step("alice joins in Chromium");
  context = await chrome.newContext({ permissions: ["camera", "microphone"] });
  alice = await joinIn(context, "alice", "demo");

  step("fox joins in Firefox");
  fox = await joinIn(firefox, "fox", "demo");

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
  const viewer = await joinIn(firefox, "viewer", "shelf");
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
  await viewer.close();
  await fox.close();
  await alice.close();

  // The same people in an end-to-end encrypted meeting, with native participants: the streamer
  // (pi, publishing sealed H.264 and Opus) and `videocall join` (carol, who opens what the
  // browsers send and prints it). Every frame and chat line is sealed before it leaves.
  step("alice (Chromium) and fox (Firefox) join the encrypted meeting");
  const frames = process.env.VIDEOCALL_FRAMES || "fastest";
  alice = await joinIn(context, "alice", "encrypted", `?frames=${frames}`);
  fox = await joinIn(firefox, "fox", "encrypted", `?frames=${frames}`);

  step("each opens and decodes the others' video and audio, the streamer's too");
  const encryptedStart = Date.now();
  for (const [page, name, peer] of [[alice, "Chromium", "fox"], [fox, "Firefox", "alice"], [alice, "Chromium", "pi"], [fox, "Firefox", "pi"]]) {
    await until(page, `encrypted frames from ${peer} in ${name}`, (p) => (window.__videocall?.framesByPeer?.[p] ?? 0) >= 30, peer);
    await until(page, `encrypted audio from ${peer} in ${name}`, (p) => (window.__videocall?.audioByPeer?.[p] ?? 0) >= 25, peer);
  }
  figures.encrypted_all_decoding_ms = Date.now() - encryptedStart;
  await alice.waitForSelector('[data-testid="e2ee"][data-epoch]', { timeout: 10000 });
  await fox.waitForSelector('[data-testid="e2ee"][data-epoch]', { timeout: 10000 });

  step("the same verification codes on both screens, for all four members");
  const members = (page) => page.evaluate(() => JSON.stringify(window.__videocall?.e2ee?.members ?? {}));
  await until(alice, "four members in Chromium's group", () => Object.keys(window.__videocall?.e2ee?.members ?? {}).length === 4);
  await until(fox, "four members in Firefox's group", () => Object.keys(window.__videocall?.e2ee?.members ?? {}).length === 4);
  const codes = await members(alice);
  if (codes !== (await members(fox))) {
    throw new Error(`verification codes differ: Chromium ${codes}, Firefox ${await members(fox)}`);
  }
  await alice.click("#people");
  await alice.waitForSelector('[data-testid="e2ee-members"] li', { timeout: 5000 });
  await alice.screenshot({ path: path(out, "encrypted-alice-codes.png") });
  await alice.click("#people");
  console.log(`CODES ${codes}`);

  step("chat, sealed: Chromium → Firefox and the native participant");
  await alice.click("#chat");
  await alice.fill("#chat-input", "the password is pomegranate");
  await alice.press("#chat-input", "Enter");
  await fox.click("#chat");
  await until(fox, "alice's sealed chat line in Firefox", () => document.querySelector(".chat")?.textContent.includes("the password is pomegranate"));

  step("glass to glass in the encrypted meeting, and the cost of sealing and opening");
  await alice.waitForFunction(() => (window.__videocall?.framesByPeer?.fox ?? 0) >= 200, undefined, { timeout: 30000 });
  const p50 = (values) => {
    const recent = values.slice(-30).sort((a, b) => a - b);
    return Math.round(recent[Math.floor(recent.length / 2)]);
  };
  figures.encrypted_firefox_to_chromium_glass_to_glass_p50_ms = p50(await alice.evaluate(() => window.__videocall.glassToGlassMs));
  figures.encrypted_chromium_to_firefox_glass_to_glass_p50_ms = p50(await fox.evaluate(() => window.__videocall.glassToGlassMs));
  const inWebCrypto = { sealed: 0, opened: 0 };
  for (const [name, page] of [["chromium", alice], ["firefox", fox]]) {
    const e2ee = await page.evaluate(() => window.__videocall.e2ee);
    if (!(e2ee.sealed > 100 && e2ee.opened > 100)) throw new Error(`${name} sealed/opened: ${JSON.stringify(e2ee)}`);
    if (e2ee.refusals !== 0) throw new Error(`${name} refused something: ${JSON.stringify(e2ee)}`);
    // Frames of 1 kB and more may be ciphered by the browser's WebCrypto, off the page's main
    // thread: those that wait less there (fastest: at least one probe in 30 of them), or all
    // (webcrypto). Which frames are that large depends on the encoder: below, across both.
    if (e2ee.cipher !== frames) throw new Error(`${name} ciphers frames in ${e2ee.cipher}, not ${frames}: ${JSON.stringify(e2ee)}`);
    if (frames === "fastest") {
      figures[`encrypted_${name}_webcrypto_from_bytes`] = e2ee.webCryptoFromBytes;
      figures[`encrypted_${name}_webcrypto_round_trip_ms`] = Number(e2ee.webCryptoRoundTripMs.toFixed(2));
    }
    inWebCrypto.sealed += e2ee.sealedInWebCrypto;
    inWebCrypto.opened += e2ee.openedInWebCrypto;
    figures[`encrypted_${name}_frames_in_webcrypto`] = `${e2ee.sealedInWebCrypto} of ${e2ee.sealed} sealed, ${e2ee.openedInWebCrypto} of ${e2ee.opened} opened`;
    figures[`encrypted_${name}_main_thread_seal_us_per_frame`] = Number(e2ee.sealUsPerFrame.toFixed(1));
    figures[`encrypted_${name}_main_thread_open_us_per_frame`] = Number(e2ee.openUsPerFrame.toFixed(1));
    figures[`encrypted_${name}_seal_wait_us_per_frame`] = Number(e2ee.sealWaitUsPerFrame.toFixed(1));
    figures[`encrypted_${name}_open_wait_us_per_frame`] = Number(e2ee.openWaitUsPerFrame.toFixed(1));
    figures[`encrypted_${name}_sealed_bytes_per_frame`] = Math.round(e2ee.sealedBytes / e2ee.sealed);
    figures[`encrypted_${name}_unopened`] = e2ee.unopened;
    figures[`encrypted_${name}_join_to_first_frame_ms`] = Math.round(await page.evaluate(() => window.__videocall.joinToFirstFrameMs));
  }
  // Sealed in WebCrypto and opened in WebCrypto (the other browser's too), all opening for
  // everyone (no refusals, few unopened above; carol, native, opens them with the sframe crate).
  if (frames === "wasm" ? inWebCrypto.sealed + inWebCrypto.opened !== 0 : !(inWebCrypto.sealed > 0 && inWebCrypto.opened > 0)) throw new Error(`frames through WebCrypto (${frames}): ${JSON.stringify(inWebCrypto)}`);
  step("what sealing and opening a frame costs in each browser, wasm and WebCrypto (window.videocallE2eeBench)");
  for (const [name, page] of [["chromium", alice], ["firefox", fox]]) {
    const bench = await page.evaluate(async () => {
      const lines = [];
      for (const bytes of [160, 1200, 4000, 12000, 60000]) {
        const frames = Math.max(50, Math.round(4_000_000 / (bytes + 200)));
        const { sealUs, openUs, webCrypto: w } = await window.videocallE2eeBench(bytes, frames);
        const f = (x) => x.toFixed(1);
        lines.push(`${bytes} B: wasm seal ${f(sealUs)} / open ${f(openUs)} µs; WebCrypto main thread ${f(w.sealIssueUs)} / ${f(w.openIssueUs)} µs, ` +
          `pipelined ${f(w.sealUs)} / ${f(w.openUs)} µs, one at a time ${f(w.sealOneUs)} / ${f(w.openOneUs)} µs`);
      }
      return lines;
    });
    figures[`frame_cost_${name}`] = bench;
  }
  await fox.screenshot({ path: path(out, "encrypted-firefox.png") });
  await alice.screenshot({ path: path(out, "encrypted-chromium.png") });
  console.log(JSON.stringify(figures));
} catch (error) {
  for (const [name, page] of [["fox", fox], ["alice", alice]]) {
    if (page) await page.screenshot({ path: path(out, `firefox-failure-${name}.png`) }).catch(() => {});
    // What the encryption counted, when the meeting was an encrypted one.
    const e2ee = page && await page.evaluate(() => JSON.stringify(window.__videocall?.e2ee ?? null)).catch(() => null);
    if (e2ee && e2ee !== "null") console.error(`[${name}] e2ee ${e2ee}`);
  }
  console.error(`FAILED: ${error.message}`);
  process.exitCode = 1;
} finally {
  await firefox.close();
  await chrome.close();
}
