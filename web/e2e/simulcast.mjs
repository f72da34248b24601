// Simulcast in headless Chromium, driven by playwright-core. Run by platform/tests/browser.rs
// against a platform it started:
//   node simulcast.mjs <base-url> <out-dir>
// alice sends her 1280x720 camera in three layers; "small" watches in a small window, "large"
// in a large one: each gets the layer its tile needs, the layer nobody gets is not encoded,
// and when the small window grows its viewer moves up. Prints one JSON line of figures last;
// exits non-zero with the failed check's message.
//   node simulcast.mjs <base-url> <out-dir> cpu
// instead measures the CPU time of a lone 720p publisher's browser with one layer and with
// three (BENCHMARKS.md).
import { launchChromium } from "./browsers.mjs";
import { mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join as path } from "node:path";

const [base, out, mode] = process.argv.slice(2);
if (!base || !out) {
  console.error("usage: node simulcast.mjs <base-url> <out-dir> [cpu]");
  process.exit(2);
}
mkdirSync(out, { recursive: true });
const figures = {};
const step = (what) => console.error(`· ${what}`);
// Chromium processes that are children of this script (each a launched browser).
function browserPids() {
  const pids = new Set();
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
      if (Number(fields[1]) === process.pid) pids.add(Number(pid));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}
const before = browserPids();
const browser = await launchChromium();
const browserPid = [...browserPids()].find((pid) => !before.has(pid));

async function join(name, viewport, query, into = browser) {
  const context = await into.newContext({
    permissions: ["camera", "microphone"],
    viewport,
    deviceScaleFactor: 1,
  });
  const page = await context.newPage();
  page.on("console", (message) => {
    if (message.type() === "error" || message.type() === "warning") {
      console.error(`  [${name}] ${message.type()}: ${message.text()}`);
    }
  });
  page.on("pageerror", (error) => console.error(`  [${name}] page error: ${error}`));
  await page.goto(`${base}/meeting/${name}/demo${query}`);
  await page.waitForSelector("#join:not([disabled])", { timeout: 20000 });
  await page.click("#join");
  await page.waitForSelector("#leave", { timeout: 20000 });
  // Muted: the fake microphones' beeps would make speakers of everyone, and the page shows the
  // active speaker's tile larger (a tile that changes size changes layer).
  await page.click("#mute");
  return page;
}

const figure = (page, expression, argument) => page.evaluate(expression, argument);
async function waitFor(page, what, predicate, argument, timeout = 20000) {
  try {
    await page.waitForFunction(predicate, argument, { timeout, polling: 50 });
  } catch (error) {
    const state = await page.evaluate(() => JSON.stringify(window.__videocall ?? null)).catch(() => "?");
    throw new Error(`${what}: not within ${timeout} ms (state ${state.slice(0, 600)})`);
  }
}
const layerOf = (page, name) => figure(page, (n) => window.__videocall?.layerByPeer?.[n], name);
const framesOf = (page, name) => figure(page, (n) => window.__videocall?.framesByPeer?.[n] ?? 0, name);
const encoded = (page) => figure(page, () => window.__videocall?.encodedByLayer ?? []);
const tileWidth = (page, name) =>
  figure(page, (n) => document.querySelector(`[data-peer="${n}"] canvas`)?.getBoundingClientRect().width ?? 0, name);

// CPU seconds (user + system) of process `root` and everything under it, now.
function treeCpuSeconds(root) {
  const parents = new Map();
  const cpu = new Map();
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
      parents.set(Number(pid), Number(fields[1]));
      cpu.set(Number(pid), (Number(fields[11]) + Number(fields[12])) / 100);
    } catch {
      // gone meanwhile
    }
  }
  const under = (pid) => {
    for (let p = pid; p > 1; p = parents.get(p) ?? 0) if (p === root) return true;
    return false;
  };
  let total = 0;
  for (const [pid, seconds] of cpu) if (under(pid)) total += seconds;
  return total;
}

// The publisher's browser (this script's first) alone is measured; its viewers, in windows
// of three sizes so that every layer is wanted, run in a second browser.
async function publisherCpu(simulcast, viewers) {
  const page = await join(`cpu-${simulcast}`, { width: 1280, height: 800 }, `?video=1280x720&simulcast=${simulcast}`);
  const watching = [];
  for (const [i, viewport] of [{ width: 480, height: 360 }, { width: 900, height: 600 }, { width: 1600, height: 1000 }].entries()) {
    watching.push(await join(`watch-${simulcast}-${i}`, viewport, "?video=160x120&simulcast=off", viewers));
  }
  for (const viewer of watching) {
    await waitFor(viewer, "frames", (n) => (window.__videocall?.framesByPeer?.[n] ?? 0) > 30, `cpu-${simulcast}`);
  }
  await new Promise((r) => setTimeout(r, 3000));
  const seconds = 20;
  const cpuBefore = treeCpuSeconds(browserPid);
  const encodedBefore = await encoded(page);
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const cpu = (treeCpuSeconds(browserPid) - cpuBefore) / seconds;
  const encodedAfter = await encoded(page);
  const layers = await Promise.all(watching.map((viewer) => layerOf(viewer, `cpu-${simulcast}`)));
  await page.context().close();
  for (const viewer of watching) await viewer.context().close();
  return {
    cpuCores: Number(cpu.toFixed(3)),
    framesPerSecondByLayer: encodedAfter.map((n, i) => Number(((n - encodedBefore[i]) / seconds).toFixed(1))),
    viewersLayers: layers,
  };
}

try {
  if (mode === "cpu") {
    step("a 720p publisher with one layer, then with three (three viewers each, in another browser)");
    const viewers = await launchChromium();
    figures.oneLayer = await publisherCpu("off", viewers);
    figures.threeLayers = await publisherCpu("on", viewers);
    await viewers.close();
  } else {
    step("alice publishes 1280x720 in three layers; small and large watch in windows of their size");
    const alice = await join("alice", { width: 1280, height: 800 }, "?video=1280x720&simulcast=on");
    const small = await join("small", { width: 480, height: 360 }, "?video=160x120&simulcast=off");
    const large = await join("large", { width: 1600, height: 1000 }, "?video=160x120&simulcast=off");
    for (const page of [small, large]) {
      await waitFor(page, "frames from alice", () => (window.__videocall?.framesByPeer?.alice ?? 0) >= 30);
    }
    figures.smallTileWidth = await tileWidth(small, "alice");
    figures.largeTileWidth = await tileWidth(large, "alice");
    step(`tiles: small ${figures.smallTileWidth} px, large ${figures.largeTileWidth} px wide`);
    await waitFor(small, "small gets layer 0", () => window.__videocall?.layerByPeer?.alice === 0, undefined, 10000);
    await waitFor(large, "large gets layer 2", () => window.__videocall?.layerByPeer?.alice === 2, undefined, 10000);

    step("both keep getting frames of their own layer");
    const [smallBefore, largeBefore] = [await framesOf(small, "alice"), await framesOf(large, "alice")];
    await new Promise((r) => setTimeout(r, 2000));
    figures.smallFramesIn2s = (await framesOf(small, "alice")) - smallBefore;
    figures.largeFramesIn2s = (await framesOf(large, "alice")) - largeBefore;
    if (figures.smallFramesIn2s < 30 || figures.largeFramesIn2s < 30) {
      throw new Error(`frames in 2 s: small ${figures.smallFramesIn2s}, large ${figures.largeFramesIn2s}`);
    }
    if ((await layerOf(small, "alice")) !== 0 || (await layerOf(large, "alice")) !== 2) {
      throw new Error("a viewer left its layer");
    }

    step("the layer nobody gets (1) is not encoded; the others are");
    const encodedBefore = await encoded(alice);
    await new Promise((r) => setTimeout(r, 1500));
    const encodedAfter = await encoded(alice);
    figures.encodedIn1500ms = encodedAfter.map((n, i) => n - encodedBefore[i]);
    const [low, middle, top] = figures.encodedIn1500ms;
    if (low < 20 || top < 20 || middle > 2) {
      throw new Error(`frames encoded per layer in 1.5 s: ${figures.encodedIn1500ms}`);
    }
    figures.pausedLayerFrames = await figure(alice, () => window.__videocall.pausedLayerFrames);

    step("the small window grows: its viewer moves to a higher layer");
    const grown = Date.now();
    await small.setViewportSize({ width: 1600, height: 1000 });
    await waitFor(small, "small moves up", () => (window.__videocall?.layerByPeer?.alice ?? 0) >= 1, undefined, 10000);
    figures.enlargeToHigherLayerMs = Date.now() - grown;
    await waitFor(small, "small gets layer 2", () => window.__videocall?.layerByPeer?.alice === 2, undefined, 10000);
    figures.enlargeToTopLayerMs = Date.now() - grown;
    const after = await framesOf(small, "alice");
    await waitFor(small, "frames after the move", (n) => (window.__videocall?.framesByPeer?.alice ?? 0) >= n + 15, after);
    await small.screenshot({ path: path(out, "simulcast-small-grown.png") });

    step("and the large one shrinks: it moves down, and layer 2 is still encoded for small");
    const shrunk = Date.now();
    await large.setViewportSize({ width: 480, height: 360 });
    await waitFor(large, "large moves down", () => window.__videocall?.layerByPeer?.alice === 0, undefined, 10000);
    figures.shrinkToLowerLayerMs = Date.now() - shrunk;
  }
  console.log(JSON.stringify(figures));
  await browser.close();
} catch (error) {
  console.error(`FAILED: ${error.message}`);
  console.log(JSON.stringify(figures));
  await browser.close().catch(() => {});
  process.exit(1);
}
