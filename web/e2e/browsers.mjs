// The browsers the end-to-end scripts drive: Debian's chromium (playwright-core) and
// firefox-esr (puppeteer-core over WebDriver BiDi), headless, with fake cameras and
// microphones that need no permission prompt. VIDEOCALL_CHROMIUM / VIDEOCALL_FIREFOX point
// elsewhere.
import puppeteer from "puppeteer-core";
import { chromium } from "playwright-core";

// Chromium with a fake camera and microphone; `extraArgs` are added to its command line.
export function launchChromium(extraArgs = []) {
  return chromium.launch({
    executablePath: process.env.VIDEOCALL_CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--use-fake-device-for-media-stream",
      "--use-fake-ui-for-media-stream",
      "--autoplay-policy=no-user-gesture-required",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      ...extraArgs,
    ],
  });
}

// Firefox with a fake camera and microphone, autoplay allowed.
export function launchFirefox() {
  return puppeteer.launch({
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
}
