// Signing in on the meeting page in Debian's headless Chromium (playwright-core), run by
// platform/tests/sign_in.rs against a platform with an OpenID Connect provider:
//   node sign-in.mjs <base-url> <out-dir> <admin-password>
// Through the provider (the lobby's "Sign in with …", the provider's login form, back to the
// lobby signed in with the provider's name and picture, into the meeting under that name),
// signing out, and a local account's password (a wrong one first). Exits non-zero with the
// failed check's message; screenshots land in <out-dir>.
import { launchChromium } from "./browsers.mjs";
import { mkdirSync } from "node:fs";
import { join as path } from "node:path";

const [base, out, adminPassword] = process.argv.slice(2);
if (!base || !out || !adminPassword) {
  console.error("usage: node sign-in.mjs <base-url> <out-dir> <admin-password>");
  process.exit(2);
}
mkdirSync(out, { recursive: true });
const step = (what) => console.error(`· ${what}`);
const expect = (ok, what) => {
  if (!ok) throw new Error(what);
};

const browser = await launchChromium();
try {
  const context = await browser.newContext({ permissions: ["camera", "microphone"] });
  const page = await context.newPage();
  page.on("pageerror", (error) => console.error(`  page error: ${error}`));
  const lobby = `${base}/meeting/alice/demo`;

  step("the lobby offers the provider next to joining as a guest");
  await page.goto(lobby);
  await page.waitForSelector("#join:not([disabled])", { timeout: 20000 });
  await page.waitForSelector("#joining-as-guest");
  const link = await page.waitForSelector("#sign-in-oidc", { timeout: 10000 });
  expect((await link.textContent()) === "Sign in with Test Provider", `button says ${await link.textContent()}`);
  await page.screenshot({ path: path(out, "sign-in-lobby-guest.png") });

  step("through the provider and back, signed in");
  await link.click();
  await page.waitForSelector('input[name="login"]', { timeout: 10000 });
  await page.fill('input[name="login"]', "alice");
  await page.click("button");
  await page.waitForURL(lobby, { timeout: 15000 });
  const signedIn = await page.waitForSelector("#signed-in-as", { timeout: 20000 });
  expect((await signedIn.textContent()) === "Signed in as Alice Liddell", `lobby says ${await signedIn.textContent()}`);
  const picture = await page.getAttribute("img.avatar", "src");
  expect(picture === "http://127.0.0.1:9/alice.png", `picture ${picture}`);
  expect((await page.inputValue("#name")) === "Alice Liddell", "the name field takes the provider's name");
  expect(!(await page.evaluate(() => location.href)).includes("vcs_"), "the session is not in the address");
  await page.screenshot({ path: path(out, "sign-in-lobby-signed-in.png") });

  step("into the meeting under that name");
  await page.waitForSelector("#join:not([disabled])", { timeout: 20000 });
  await page.click("#join");
  await page.waitForSelector("#leave", { timeout: 20000 });
  await page.waitForFunction(() => document.body.textContent.includes("Alice Liddell"), null, { timeout: 10000 });
  await page.screenshot({ path: path(out, "sign-in-meeting.png") });
  await page.click("#leave");

  step("signing out makes a guest again");
  await page.goto(lobby);
  await page.waitForSelector("#sign-out", { timeout: 20000 });
  await page.click("#sign-out");
  await page.waitForSelector("#joining-as-guest", { timeout: 10000 });
  expect((await page.evaluate(() => localStorage.getItem("videocall.session"))) === null, "the session is forgotten");

  step("a local account's password: a wrong one is said so, the right one signs in");
  await page.click("#sign-in-password");
  await page.fill("#username", "admin");
  await page.fill("#password", "not-the-password");
  await page.click("#sign-in");
  const alert = await page.waitForSelector(".account [role=alert]", { timeout: 10000 });
  expect((await alert.textContent()).includes("wrong username or password"), `alert says ${await alert.textContent()}`);
  await page.fill("#password", adminPassword);
  await page.click("#sign-in");
  const admin = await page.waitForSelector("#signed-in-as", { timeout: 10000 });
  expect((await admin.textContent()).startsWith("Signed in as "), `lobby says ${await admin.textContent()}`);
  await page.screenshot({ path: path(out, "sign-in-password.png") });
  step("done");
} finally {
  await browser.close();
}
