// Debian's headless Chromium joins a relay through the gateway over WebTransport: its own
// ClientHello (post-quantum key share, shuffled CRYPTO frames) is what the gateway routes.
// Run by gateway/tests/chromium.rs:
//   node gateway.mjs <page-url> <webtransport-url> <certificate-sha256-hex> <join-frame-hex>
// Prints one JSON line: {"reply": "<hex of the relay's first control frame>"}.
import { launchChromium } from "./browsers.mjs";

const [pageUrl, url, hash, join] = process.argv.slice(2);
if (!join) {
  console.error("usage: node gateway.mjs <page-url> <webtransport-url> <sha256-hex> <join-hex>");
  process.exit(2);
}
const browser = await launchChromium();
try {
  const page = await browser.newPage();
  const response = await page.goto(pageUrl);
  if (!response || response.status() !== 200) {
    throw new Error(`page through the gateway: HTTP ${response && response.status()}`);
  }
  const reply = await page.evaluate(
    async ({ url, hash, join }) => {
      const bytes = (hex) => new Uint8Array(hex.match(/../g).map((b) => parseInt(b, 16)));
      const transport = new WebTransport(url, {
        serverCertificateHashes: [{ algorithm: "sha-256", value: bytes(hash) }],
      });
      await Promise.race([
        transport.ready,
        new Promise((_, reject) => setTimeout(() => reject(new Error("not ready in 10 s")), 10000)),
      ]);
      const stream = await transport.createBidirectionalStream();
      const writer = stream.writable.getWriter();
      await writer.write(bytes(join));
      const reader = stream.readable.getReader();
      let received = new Uint8Array(0);
      for (;;) {
        if (received.length >= 4) {
          const length = new DataView(received.buffer).getUint32(0);
          if (received.length >= 4 + length) {
            received = received.slice(0, 4 + length);
            break;
          }
        }
        const { value, done } = await reader.read();
        if (done) throw new Error("control stream closed before a reply");
        const joined = new Uint8Array(received.length + value.length);
        joined.set(received);
        joined.set(value, received.length);
        received = joined;
      }
      transport.close();
      return Array.from(received, (b) => b.toString(16).padStart(2, "0")).join("");
    },
    { url, hash, join },
  );
  console.log(JSON.stringify({ reply }));
} finally {
  await browser.close();
}
