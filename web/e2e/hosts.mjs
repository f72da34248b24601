// Hosting a meeting on the meeting page, in Debian's headless Chromium (playwright-core), run
// by platform/tests/hosts.rs against a platform with a private meeting whose guests wait:
//   node hosts.mjs <base-url> <out-dir> <meeting> '{"host":[user,pw],"member":[…],"late":[…]}'
// The host admits a guest and turns one away (then two at once); hands come in order; a mute
// that disallows unmuting stops the guest's audio reaching the others and holds until the host
// asks, and the guest then unmutes; the host makes a member a
// co-host, who admits the next guests and locks the meeting against a member; removals (one
// with a ban, which keeps them out); end for all. Tiles show connection indicators.
// Accessibility is checked (names, labels, focus order, contrast), and screenshots are taken
// at desktop size and on a phone (390x844). Exits non-zero with the failed check.
import { launchChromium } from "./browsers.mjs";
import { mkdirSync } from "node:fs";
import { join as path } from "node:path";

const [base, out, meeting, accountsJson] = process.argv.slice(2);
if (!base || !out || !meeting || !accountsJson) {
  console.error("usage: node hosts.mjs <base-url> <out-dir> <meeting> <accounts-json>");
  process.exit(2);
}
const accounts = JSON.parse(accountsJson);
mkdirSync(out, { recursive: true });
const step = (what) => console.error(`· ${what}`);
const expect = (ok, what) => {
  if (!ok) throw new Error(what);
};

const browser = await launchChromium();
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 3, isMobile: true, hasTouch: true };

async function open(name, { account, phone = false } = {}) {
  const context = await browser.newContext({
    permissions: ["camera", "microphone", "clipboard-read", "clipboard-write"],
    ...(phone ? PHONE : { viewport: DESKTOP }),
  });
  const page = await context.newPage();
  page.on("pageerror", (error) => console.error(`  [${name}] page error: ${error}`));
  page.on("console", (message) => {
    if (message.type() === "error" || message.type() === "warning") console.error(`  [${name}] ${message.type()}: ${message.text()}`);
  });
  await page.goto(`${base}/meeting/${name}/${meeting}`);
  await page.waitForSelector("#join:not([disabled])", { timeout: 20000 });
  if (account) {
    await page.click("#sign-in-password");
    await page.fill("#username", account[0]);
    await page.fill("#password", account[1]);
    await page.click("#sign-in");
    await page.waitForSelector("#signed-in-as", { timeout: 10000 });
    await page.waitForSelector("#join:not([disabled])", { timeout: 20000 });
  }
  return page;
}
async function waitFor(page, what, predicate, argument, timeout = 20000) {
  try {
    await page.waitForFunction(predicate, argument, { timeout, polling: 100 });
  } catch {
    const text = (await page.textContent("body").catch(() => "?")).slice(0, 300);
    throw new Error(`${what}: not within ${timeout} ms (page says: ${text})`);
  }
}
async function see(page, what, selector, timeout = 20000) {
  try {
    return await page.waitForSelector(selector, { timeout });
  } catch {
    const text = (await page.textContent("body").catch(() => "?")).slice(0, 300);
    throw new Error(`${what}: no ${selector} within ${timeout} ms (page says: ${text})`);
  }
}
const screen = (page, heading, timeout = 20000) => see(page, `the "${heading}" screen`, `h1:has-text("${heading}")`, timeout);
const audioFrom = (page, name) => page.evaluate((n) => window.__videocall?.audioByPeer?.[n] ?? 0, name);
async function panel(page, which) {
  if ((await page.getAttribute(`#${which}`, "aria-pressed")) !== "true") await page.click(`#${which}`);
}
async function closePanel(page) {
  await page.click('aside.panel button[aria-label="close the panel"]');
  await page.waitForSelector("aside.panel", { state: "detached", timeout: 5000 });
}

// Every control named, every field labelled, pictures described; Tab reaches the controls in
// order; text and controls at a contrast of 4.5:1 or more against what is behind them.
async function checkAccessibility(page, who) {
  const problems = await page.evaluate(() => {
    const found = [];
    const name = (el) => (el.getAttribute("aria-label") || el.textContent || el.getAttribute("title") || "").trim();
    for (const button of document.querySelectorAll("button")) {
      if (!name(button)) found.push(`a button without a name: ${button.outerHTML.slice(0, 80)}`);
    }
    for (const input of document.querySelectorAll("input, select, textarea")) {
      const labelled = input.getAttribute("aria-label") || (input.id && document.querySelector(`label[for="${input.id}"]`)) || input.closest("label");
      if (!labelled) found.push(`a field without a label: ${input.outerHTML.slice(0, 80)}`);
    }
    for (const media of document.querySelectorAll("video, canvas, img, [role=img]")) {
      if (!media.getAttribute("aria-label") && !media.getAttribute("alt") && media.getAttribute("aria-hidden") !== "true") {
        found.push(`a picture without a description: ${media.outerHTML.slice(0, 80)}`);
      }
    }
    const rgb = (color) => (color.match(/[\d.]+/g) || []).map(Number);
    const luminance = ([r, g, b]) => {
      const c = [r, g, b].map((v) => {
        v /= 255;
        return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
      });
      return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
    };
    const background = (el) => {
      for (let e = el; e; e = e.parentElement) {
        const c = rgb(getComputedStyle(e).backgroundColor);
        if (c.length >= 3 && (c.length < 4 || c[3] > 0.5)) return c;
      }
      return [255, 255, 255];
    };
    for (const el of document.querySelectorAll(".controls button, .bar *, .banner, .panel h2, .panel li, .label span")) {
      if (!el.textContent.trim() || el.getAttribute("aria-hidden") === "true") continue;
      const style = getComputedStyle(el);
      if (style.visibility === "hidden" || style.display === "none") continue;
      const fg = luminance(rgb(style.color));
      const bg = luminance(background(el));
      const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
      if (ratio < 4.5) found.push(`contrast ${ratio.toFixed(2)}:1 on "${el.textContent.trim().slice(0, 30)}"`);
    }
    return found;
  });
  expect(problems.length === 0, `${who}: accessibility: ${problems.join("; ")}`);
  // Focus order: from the first control, Tab walks the bar left to right.
  const ids = await page.evaluate(() => [...document.querySelectorAll(".controls button")].map((b) => b.id));
  await page.focus(`#${ids[0]}`);
  for (const id of ids.slice(1)) {
    await page.keyboard.press("Tab");
    const focused = await page.evaluate(() => document.activeElement?.id);
    expect(focused === id, `${who}: Tab after the previous control reached ${focused}, not ${id}`);
  }
}

try {
  step("the host signs in and opens the meeting: hosts see the host controls");
  const host = await open("host", { account: accounts.host });
  await host.click("#join");
  await see(host, "the host in the meeting", "#leave");
  await see(host, "the host's lock", "#lock");
  await see(host, "the host's end for all", "#end-all");
  await panel(host, "people");
  await see(host, "the host's own role", '#people li:first-child [data-role="host"]');

  step("a guest waits; the host sees them and admits them; they meet without reloading");
  const gina = await open("gina");
  await gina.click("#join");
  await see(gina, "gina waiting", "[data-testid=waiting-room]");
  expect((await gina.textContent("[data-testid=waiting-room]")).includes("number 1 in line"), "gina is first in line");
  await see(host, "gina in the host's waiting list", '#waiting li[data-waiting="gina"]');
  await host.screenshot({ path: path(out, "hosts-waiting-room.png") });
  await host.click('button[aria-label="admit gina"]');
  await see(gina, "gina in the meeting", "#leave");
  await gina.waitForSelector("[data-testid=waiting-room]", { state: "detached", timeout: 20000 });
  await see(host, "gina's tile at the host", '[data-peer="gina"]');
  await see(gina, "the host's tile at gina", ".tile[data-peer]");
  expect(!(await gina.$("#lock")), "a guest has no lock");
  const quality = await see(host, "gina's connection indicator", '[data-peer="gina"] [data-quality]');
  const seen = await quality.getAttribute("data-quality");
  expect(seen === "good" || seen === "fair", `gina comes through ${seen} on loopback`);
  await see(host, "the host's own connection indicator", '.tile:first-child [data-quality]');

  step("gina switches camera and microphone in the meeting: the host keeps seeing and hearing her");
  const tracks = () => gina.evaluate(() => document.getElementById("self-view").srcObject.getTracks().map((t) => t.id));
  const tracksBefore = await tracks();
  await gina.click("#devices");
  for (const picker of ["#switch-camera", "#switch-microphone"]) {
    const option = await gina.waitForSelector(`${picker} option:not([disabled])`, { state: "attached", timeout: 10000 });
    await gina.selectOption(picker, await option.getAttribute("value"));
  }
  await waitFor(gina, "new camera and microphone tracks in gina's stream", (before) => {
    const now = document.getElementById("self-view").srcObject.getTracks();
    return now.length === 2 && now.every((t) => t.readyState === "live" && !before.includes(t.id));
  }, tracksBefore);
  const [framesBefore, audioBefore] = await host.evaluate(() => [window.__videocall.framesByPeer.gina ?? 0, window.__videocall.audioByPeer.gina ?? 0]);
  await waitFor(host, "gina's video and audio after the switch", ([f, a]) => (window.__videocall.framesByPeer.gina ?? 0) > f + 30 && (window.__videocall.audioByPeer.gina ?? 0) > a + 25, [framesBefore, audioBefore]);
  expect(!(await gina.$("[data-testid=host-notice]")), `the switch went without a complaint: ${await gina.textContent("body")}`);
  await closePanel(gina);

  step("another guest is turned away and told why");
  const rex = await open("rex");
  await rex.click("#join");
  await see(rex, "rex waiting", "[data-testid=waiting-room]");
  await see(host, "rex in the waiting list", '#waiting li[data-waiting="rex"]');
  await host.click('button[aria-label="turn rex away"]');
  await screen(rex, "A host did not let you in");
  await rex.screenshot({ path: path(out, "hosts-turned-away.png") });
  await rex.context().close();
  step("two more are turned away at once");
  const [zed, yan] = [await open("zed"), await open("yan")];
  await zed.click("#join");
  await yan.click("#join");
  await see(host, "zed and yan waiting", '#waiting li[data-waiting="yan"]');
  await see(host, "zed waiting", '#waiting li[data-waiting="zed"]');
  await host.click("#reject-all");
  await screen(zed, "A host did not let you in");
  await screen(yan, "A host did not let you in");
  await zed.context().close();
  await yan.context().close();

  step("a member joins without waiting; hands come to the host in the order raised");
  const sam = await open("sam", { account: accounts.member });
  await sam.click("#join");
  await see(sam, "sam in the meeting", "#leave");
  await gina.click("#hand");
  await see(host, "gina's hand", '#hands li[data-hand="gina"]');
  await sam.keyboard.press("h");
  await see(host, "sam's hand", '#hands li[data-hand="Sam Member"]');
  const hands = await host.$$eval("#hands li", (items) => items.map((li) => li.dataset.hand));
  expect(JSON.stringify(hands) === JSON.stringify(["gina", "Sam Member"]), `hands in order: ${hands}`);
  await see(host, "gina's hand on her tile", '[data-peer="gina"] [aria-label="hand raised"]');
  await host.click('button[aria-label="lower gina\'s hand"]');
  await see(gina, "gina told her hand was lowered", '[data-testid=host-notice]:has-text("lowered your hand")');
  await waitFor(gina, "gina's hand button up", () => document.querySelector("#hand").getAttribute("aria-pressed") === "false");
  await sam.click("#hand");

  step("the host mutes gina and does not let her unmute herself: her page mutes, and her audio stops reaching the others");
  await waitFor(host, "gina's audio at the host", () => (window.__videocall?.audioByPeer?.gina ?? 0) > 25);
  await waitFor(sam, "gina's audio at sam", () => (window.__videocall?.audioByPeer?.gina ?? 0) > 25);
  await host.uncheck("#allow-unmute");
  await host.click('button[aria-label="mute gina"]');
  await see(gina, "gina told she was muted", '[data-testid=host-notice]:has-text("muted your microphone")');
  await waitFor(gina, "gina's mute button down", () => document.querySelector("#mute").getAttribute("aria-pressed") === "true");
  await gina.click("#dismiss-notice");
  await gina.click("#mute");
  await see(gina, "gina told she may not unmute herself", '[data-testid=host-notice]:has-text("when a host asks you to")');
  expect((await gina.getAttribute("#mute", "aria-pressed")) === "true", "gina stays muted until asked");
  await host.check("#allow-unmute");
  await see(host, "gina shown muted", '[data-peer="gina"] [aria-label="microphone muted"]');
  await host.waitForTimeout(500);
  const [hostHeard, samHeard] = [await audioFrom(host, "gina"), await audioFrom(sam, "gina")];
  await host.waitForTimeout(2000);
  const [hostLater, samLater] = [await audioFrom(host, "gina"), await audioFrom(sam, "gina")];
  expect(hostLater - hostHeard <= 2 && samLater - samHeard <= 2, `gina's audio still arrives after the mute: host ${hostHeard}→${hostLater}, sam ${samHeard}→${samLater}`);
  await gina.screenshot({ path: path(out, "hosts-muted-guest.png") });

  step("asked to unmute, gina turns her microphone on again and is heard");
  await host.click('button[aria-label="ask gina to unmute"]');
  await see(gina, "the ask", "#accept-unmute");
  await gina.click("#accept-unmute");
  await waitFor(gina, "gina's mute button up", () => document.querySelector("#mute").getAttribute("aria-pressed") === "false");
  const resumed = await audioFrom(host, "gina");
  await waitFor(host, "gina heard again", ([n, k]) => (window.__videocall?.audioByPeer?.[n] ?? 0) > k + 20, ["gina", resumed]);

  step("a participant has no host controls; the host makes sam a co-host");
  await panel(sam, "people");
  expect(!(await sam.$('button[aria-label="mute gina"]')), "a participant is offered no mute");
  expect(!(await sam.$("#lock")), "a participant has no lock");
  await host.click('button[aria-label="make co-host: Sam Member"]');
  await see(sam, "sam told", '[data-testid=host-notice]:has-text("made you a co-host")');
  await see(sam, "sam's lock", "#lock");
  await see(host, "sam shown as co-host", '#people li[data-person="Sam Member"] [data-role="co-host"]');

  step("the co-host sees the next guests waiting and admits them all");
  const lou = await open("lou", { phone: true });
  await lou.click("#join");
  await see(lou, "lou waiting", "[data-testid=waiting-room]");
  const max = await open("max");
  await max.click("#join");
  await see(max, "max waiting", "[data-testid=waiting-room]");
  await see(sam, "the waiting list at the co-host", '#waiting li[data-waiting="max"]', 30000);
  await sam.click("#admit-all");
  await see(lou, "lou in the meeting", "#leave");
  await see(max, "max in the meeting", "#leave");
  await max.context().close();

  step("accessibility and screenshots: desktop with the participants panel, and a phone");
  await host.waitForSelector('[data-peer="lou"]', { timeout: 20000 });
  await checkAccessibility(host, "the host");
  await host.screenshot({ path: path(out, "hosts-desktop-participants.png") });
  await closePanel(host);
  await host.screenshot({ path: path(out, "hosts-desktop-grid.png") });
  await host.click("#layout");
  await see(host, "the speaker layout", ".grid.speaker .tile.featured");
  await host.screenshot({ path: path(out, "hosts-desktop-speaker.png") });
  await host.click("#layout");
  await host.click('button[aria-label="pin gina"]');
  await see(host, "gina pinned", '[data-peer="gina"].featured');
  await host.click('button[aria-label="unpin gina"]');
  await lou.screenshot({ path: path(out, "hosts-phone-grid.png") });
  const phone = await lou.evaluate(() => {
    const tiles = [...document.querySelectorAll(".grid .tile")].map((t) => t.getBoundingClientRect());
    const covered = tiles.reduce((sum, r) => sum + r.width * r.height, 0);
    const inView = (id) => {
      const r = document.getElementById(id)?.getBoundingClientRect();
      return !!r && r.bottom <= innerHeight && r.top >= 0 && r.right <= innerWidth && r.left >= 0;
    };
    return { share: covered / (innerWidth * innerHeight), leave: inView("leave"), mute: inView("mute"), people: inView("people") };
  });
  expect(phone.share > 0.45, `on a phone the tiles cover ${(phone.share * 100).toFixed(0)} % of the screen`);
  expect(phone.leave && phone.mute && phone.people, `on a phone the controls are reachable: ${JSON.stringify(phone)}`);
  await checkAccessibility(lou, "lou on a phone");
  await lou.evaluate(() => document.querySelector(".controls").scrollTo(0, 0));
  await lou.click("#chat");
  await see(lou, "the chat sheet", 'aside[aria-label="chat"]');
  const sheet = await lou.evaluate(() => {
    const inView = (el) => {
      const r = el?.getBoundingClientRect();
      return !!r && r.bottom <= innerHeight && r.top >= 0;
    };
    return { close: inView(document.querySelector('aside button[aria-label="close the panel"]')), leave: inView(document.getElementById("leave")), mute: inView(document.getElementById("mute")) };
  });
  expect(sheet.close && sheet.leave && sheet.mute, `with the chat open on a phone: ${JSON.stringify(sheet)}`);
  await lou.screenshot({ path: path(out, "hosts-phone-chat.png") });
  await closePanel(lou);

  step("the co-host locks the meeting: a member who was not in it is kept out");
  await sam.click("#lock");
  await see(host, "the lock shown", "[data-testid=locked]");
  const kim = await open("kim", { account: accounts.late });
  await kim.click("#join");
  await screen(kim, "This meeting is locked");
  await kim.screenshot({ path: path(out, "hosts-locked.png") });
  await kim.context().close();
  await sam.click("#lock");
  await host.waitForSelector("[data-testid=locked]", { state: "detached", timeout: 10000 });

  step("the host removes gina, who is told why; and removes sam with a ban: sam cannot come back");
  await panel(host, "people");
  await host.click('button[aria-label="remove gina"]');
  await host.fill("#remove-reason", "please take this elsewhere");
  await host.click("#remove-confirm");
  await screen(gina, "A host removed you from the meeting");
  expect((await gina.textContent("body")).includes("please take this elsewhere"), "gina sees the reason");
  await host.waitForSelector('[data-peer="gina"]', { state: "detached", timeout: 10000 });
  await gina.screenshot({ path: path(out, "hosts-removed.png") });
  await host.click('button[aria-label="remove Sam Member"]');
  await host.check("#remove-ban");
  await host.click("#remove-confirm");
  await screen(sam, "A host removed you from the meeting");
  await sam.click("text=Back to the lobby");
  await sam.waitForSelector("#join:not([disabled])", { timeout: 20000 });
  await sam.click("#join");
  await screen(sam, "You are not allowed into this meeting");

  step("the host ends the meeting for all");
  await host.click("#end-all");
  await see(host, "the confirmation", "#end-all-confirm");
  await host.click("#end-all-confirm");
  for (const [who, page] of [["lou", lou], ["the host", host]]) {
    await screen(page, "The meeting has ended").catch((e) => {
      throw new Error(`${who}: ${e.message}`);
    });
  }
  await lou.screenshot({ path: path(out, "hosts-phone-ended.png") });
  step("done");
} finally {
  await browser.close();
}
