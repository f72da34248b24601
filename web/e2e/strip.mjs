// Shared by the browser scripts.
// The burned-in strip of videocall-streamer's test pattern (streamer/src/pattern.rs): four rows
// of 32 black or white blocks, each width/32 pixels square: the frame counter, the capture time
// in ms (high, low 32 bits), and the counter inverted as a check. Null when it does not read.
export async function readStrip(page, selector) {
  return page.evaluate(([selector, decoder]) => {
    const strip = (0, eval)(`(${decoder})`)(document.querySelector(selector));
    return strip && { ...strip, now: Date.now() };
  }, [selector, decodeStrip.toString()]);
}

// Runs in the page (passed as source text): the strip of `canvas`, or null.
function decodeStrip(canvas) {
  if (!canvas || canvas.width < 128) return null;
  const side = Math.floor(canvas.width / 32);
  const { data } = canvas.getContext("2d").getImageData(0, 0, canvas.width, side * 4);
  const words = [0, 0, 0, 0];
  for (let row = 0; row < 4; row++) {
    for (let bit = 0; bit < 32; bit++) {
      const i = ((row * side + (side >> 1)) * canvas.width + bit * side + (side >> 1)) * 4;
      const luma = 0.299 * data[i] + 0.587 * data[i + 1] + 0.114 * data[i + 2];
      words[row] = ((words[row] << 1) | (luma >= 128 ? 1 : 0)) >>> 0;
    }
  }
  if ((~words[0] >>> 0) !== words[3]) return null;
  return { counter: words[0], capturedMs: words[1] * 2 ** 32 + words[2] };
}

// Glass-to-glass: for `durationMs`, reads the strip off the canvas at every animation frame and
// takes each new counter's age (page clock minus the streamer's capture clock) when it is first
// drawn. The reading at animation frames adds up to one display refresh (~16 ms, ~8 on average).
export async function stripAges(page, selector, durationMs) {
  const ages = await page.evaluate(([selector, durationMs, decoder]) => new Promise((resolve) => {
    const decode = (0, eval)(`(${decoder})`);
    const canvas = document.querySelector(selector);
    const ages = [];
    let last = null;
    const started = performance.now();
    const look = () => {
      const strip = decode(canvas);
      if (strip && strip.counter !== last) {
        last = strip.counter;
        ages.push(Date.now() - strip.capturedMs);
      }
      if (performance.now() - started < durationMs) requestAnimationFrame(look);
      else resolve(ages);
    };
    requestAnimationFrame(look);
  }), [selector, durationMs, decodeStrip.toString()]);
  const sorted = [...ages].sort((a, b) => a - b);
  const at = (q) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : null);
  return { pictures: sorted.length, p50: at(0.5), p90: at(0.9), max: sorted.length ? sorted[sorted.length - 1] : null };
}
