// Glass to glass, clear against end-to-end encrypted, with the same two people: Chromium (alice)
// and Firefox (fox), headless with fake cameras, meet in the demo meeting of a clear platform
// and in the demo meeting of an encrypted one (`videocall up --demo-e2ee`), round after round,
// each round every way in a rotated order: clear, encrypted with every frame in wasm
// (`?frames=wasm`), with each frame where it waits less (`?frames=fastest`, the default) and
// with every frame of 1 kB or more in WebCrypto (`?frames=webcrypto`). Each sitting lasts until
// both have decoded `frames` frames of the other; its glass to glass is the median of the
// frames after the first 60 (the encoders settle).
//   node glass-ab.mjs <clear-base-url> <encrypted-base-url> [rounds] [frames]
// `scripts/glass-ab.sh` starts both platforms and runs it. Prints a line per sitting and a
// summary: per way, the median over rounds of each direction's median, and of the encrypted
// ways' differences from the clear sitting of the same round.
import { launchChromium, launchFirefox } from "./browsers.mjs";

const [clearBase, encryptedBase, roundsArg, framesArg] = process.argv.slice(2);
if (!clearBase || !encryptedBase) {
  console.error("usage: node glass-ab.mjs <clear-base-url> <encrypted-base-url> [rounds] [frames]");
  process.exit(2);
}
const rounds = Number(roundsArg ?? 5);
const frames = Number(framesArg ?? 300);
const settle = 60;

const ways = [
  { name: "clear", base: clearBase, query: "" },
  { name: "e2ee wasm", base: encryptedBase, query: "?frames=wasm" },
  { name: "e2ee fastest", base: encryptedBase, query: "?frames=fastest" },
  { name: "e2ee webcrypto", base: encryptedBase, query: "?frames=webcrypto" },
];

const firefox = await launchFirefox();
const chrome = await launchChromium();
const context = await chrome.newContext({ permissions: ["camera", "microphone"] });

async function join(opener, name, url) {
  const page = await opener.newPage();
  await page.goto(url);
  await page.waitForSelector("#join:not([disabled])", { timeout: 20000 });
  await page.click("#join");
  await page.waitForSelector("#leave", { timeout: 20000 });
  return page;
}

// Polls `page` (either driver) until `peer`'s frames reach `count`.
async function framesFrom(page, peer, count) {
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    const got = await page.evaluate((p) => window.__videocall?.framesByPeer?.[p] ?? 0, peer);
    if (got >= count) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`fewer than ${count} frames from ${peer}`);
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length ? sorted[Math.floor(sorted.length / 2)] : NaN;
};

async function sit(way) {
  const alice = await join(context, "alice", `${way.base}/meeting/alice/demo${way.query}`);
  const fox = await join(firefox, "fox", `${way.base}/meeting/fox/demo${way.query}`);
  try {
    await Promise.all([framesFrom(alice, "fox", frames), framesFrom(fox, "alice", frames)]);
    const read = (page) => page.evaluate(() => ({
      glass: window.__videocall.glassToGlassMs,
      e2ee: window.__videocall.e2ee ?? null,
    }));
    const [a, f] = [await read(alice), await read(fox)];
    return {
      foxToAlice: median(a.glass.slice(settle)),
      aliceToFox: median(f.glass.slice(settle)),
      e2ee: { chromium: a.e2ee, firefox: f.e2ee },
    };
  } finally {
    for (const page of [alice, fox]) {
      await page.click("#leave").catch(() => {});
      await page.close().catch(() => {});
    }
  }
}

const results = Object.fromEntries(ways.map((w) => [w.name, []]));
const differences = Object.fromEntries(ways.slice(1).map((w) => [w.name, []]));
try {
  for (let round = 0; round < rounds; round++) {
    const order = ways.map((_, i) => ways[(i + round) % ways.length]);
    const byWay = {};
    for (const way of order) {
      const sitting = await sit(way);
      byWay[way.name] = sitting;
      results[way.name].push(sitting);
      const e2ee = (side) => {
        const e = sitting.e2ee[side];
        if (!e) return "";
        const line = e.webCryptoFromBytes === undefined ? "" : `, line ${e.webCryptoFromBytes} B, round trip ${e.webCryptoRoundTripMs.toFixed(2)} ms`;
        return ` ${side}: ${e.sealedInWebCrypto}/${e.sealed} sealed and ${e.openedInWebCrypto}/${e.opened} opened in WebCrypto${line};`;
      };
      console.log(`round ${round + 1} ${way.name}: Firefox → Chromium ${sitting.foxToAlice} ms, Chromium → Firefox ${sitting.aliceToFox} ms;${e2ee("chromium")}${e2ee("firefox")}`);
    }
    for (const way of ways.slice(1)) {
      differences[way.name].push({
        foxToAlice: byWay[way.name].foxToAlice - byWay.clear.foxToAlice,
        aliceToFox: byWay[way.name].aliceToFox - byWay.clear.aliceToFox,
      });
    }
  }
  console.log(`\nmedian over ${rounds} rounds (${frames} frames a sitting, the first ${settle} left out):`);
  console.log("| way | Firefox → Chromium ms | Chromium → Firefox ms | minus clear, F → C | minus clear, C → F |");
  console.log("|---|---|---|---|---|");
  for (const way of ways) {
    const r = results[way.name];
    const d = differences[way.name];
    const cell = (xs, key) => (xs ? median(xs.map((x) => x[key])).toFixed(1) : "");
    console.log(`| ${way.name} | ${cell(r, "foxToAlice")} | ${cell(r, "aliceToFox")} | ${cell(d, "foxToAlice")} | ${cell(d, "aliceToFox")} |`);
  }
} catch (error) {
  console.error(`FAILED: ${error.message}`);
  process.exitCode = 1;
} finally {
  await firefox.close();
  await chrome.close();
}
