// What sealing and opening a media frame costs in Debian's chromium and firefox-esr, in the
// browser client's wasm and in the browser's WebCrypto (window.videocallE2eeBench, which any
// page of the client installs): three runs per browser, the median of each figure printed as a
// Markdown table for BENCHMARKS.md. Serves web/dist itself on a loopback port (a secure
// context: WebCrypto is there); needs the client built (scripts/web-build.sh, which also
// installs the browser tools). Nothing else should run beside it.
//   node web/e2e/e2ee-bench.mjs
import { launchChromium, launchFirefox } from "./browsers.mjs";
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";

const dist = fileURLToPath(new URL("../dist/", import.meta.url));
const types = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm", ".css": "text/css" };
const server = createServer(async (request, response) => {
  // Every path that is not an asset is the client's page.
  const asset = normalize(decodeURIComponent(new URL(request.url, "http://x").pathname)).replace(/^([/\\])+/, "");
  const file = asset.startsWith("assets") ? join(dist, asset) : join(dist, "index.html");
  try {
    const body = await readFile(file);
    response.writeHead(200, { "content-type": types[extname(file)] ?? "application/octet-stream" });
    response.end(body);
  } catch {
    response.writeHead(404).end();
  }
});
await new Promise((listening) => server.listen(0, "127.0.0.1", listening));
const page = `http://127.0.0.1:${server.address().port}/meeting/bench/e2ee-bench`;
const sizes = [160, 1200, 2048, 4000, 12000, 60000];
const runs = 3;

// Runs the bench `runs` times in a page; the median of each figure per size.
async function measure(evaluate) {
  const all = [];
  for (let run = 0; run < runs; run++) {
    all.push(await evaluate(async (sizes) => {
      const results = [];
      for (const bytes of sizes) {
        const frames = Math.max(100, Math.round(8_000_000 / (bytes + 200)));
        results.push(await window.videocallE2eeBench(bytes, frames));
      }
      return results;
    }, sizes));
  }
  const median = (values) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)];
  return sizes.map((bytes, i) => {
    const of = (pick) => median(all.map((results) => pick(results[i])));
    return {
      bytes,
      wasmSeal: of((r) => r.sealUs),
      wasmOpen: of((r) => r.openUs),
      issueSeal: of((r) => r.webCrypto.sealIssueUs),
      issueOpen: of((r) => r.webCrypto.openIssueUs),
      pipelinedSeal: of((r) => r.webCrypto.sealUs),
      pipelinedOpen: of((r) => r.webCrypto.openUs),
      oneSeal: of((r) => r.webCrypto.sealOneUs),
      oneOpen: of((r) => r.webCrypto.openOneUs),
    };
  });
}

// The figures of one browser, launched by `launch` and closed after.
async function inBrowser(launch) {
  const browser = await launch();
  try {
    const tab = await browser.newPage();
    await tab.goto(page);
    await tab.waitForFunction(() => typeof window.videocallE2eeBench === "function");
    return await measure((f, a) => tab.evaluate(f, a));
  } finally {
    await browser.close();
  }
}

const rows = [
  ["Chromium", await inBrowser(() => launchChromium())],
  ["Firefox", await inBrowser(() => launchFirefox())],
];
server.close();

const f = (x) => x.toFixed(1);
console.log("| browser | frame bytes | wasm seal / open µs | WebCrypto: main thread to start seal / open µs | all in flight, per frame | one at a time |");
console.log("|---|---|---|---|---|---|");
for (const [browser, results] of rows) {
  for (const r of results) {
    console.log(`| ${browser} | ${r.bytes} | ${f(r.wasmSeal)} / ${f(r.wasmOpen)} | ${f(r.issueSeal)} / ${f(r.issueOpen)} | ${f(r.pipelinedSeal)} / ${f(r.pipelinedOpen)} | ${f(r.oneSeal)} / ${f(r.oneOpen)} |`);
  }
}
