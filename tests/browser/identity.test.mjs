// Headless-browser tests of Palisade's identity pages: sign-up, sign-in, two-step
// verification with an authenticator app and recovery codes, sign-out, and the security
// headers and console of every page.
//
//   PALISADE_TEST_BIN=target/debug/palisade node --test --test-reporter=spec tests/browser/
//
// One server and one Chromium serve the whole file; every test uses its own user and its own
// browser context. Full-page screenshots go to target/screenshots/.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomUUID } from 'node:crypto';
import { startServer } from './server.mjs';
import {
  PASSWORD, makeScreenshotDir, launchChromium, closeAll,
  newContextAndPage, isMainFrameDocument, collectProblems, withTab,
  submit, assertAt, screenshot, text,
  signUp, signIn, assertAccountPage, signOut,
} from './helpers.mjs';

let server;
let browser;

before(async () => {
  await makeScreenshotDir();
  server = await startServer();
  browser = await launchChromium();
});

after(() => closeAll(browser, server));

// ---------------------------------------------------------------------------------------------
// TOTP (RFC 6238: HMAC-SHA1, 30-second steps, 6 digits)

const STEP_SECONDS = 30;

function base32Decode(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  const out = [];
  for (const ch of text.replace(/[\s=]/g, '').toUpperCase()) {
    const index = alphabet.indexOf(ch);
    if (index < 0) throw new Error(`not base32: ${JSON.stringify(text)}`);
    value = ((value << 5) | index) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((value >>> bits) & 0xff);
    }
  }
  return Buffer.from(out);
}

function totpAtStep(key, step) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac('sha1', key).update(counter).digest();
  const offset = mac[19] & 0x0f;
  const binary = mac.readUInt32BE(offset) & 0x7fffffff;
  return String(binary % 1_000_000).padStart(6, '0');
}

const currentStep = () => Math.floor(Date.now() / 1000 / STEP_SECONDS);

/**
 * An authenticator app for one secret. The server accepts each step once and only a step later
 * than the last accepted one, with one step of drift either way: so after a step is used, the
 * next code comes from the following step (now + 30 s) rather than waiting for it.
 */
function authenticator(secretBase32) {
  const key = base32Decode(secretBase32);
  let lastStep = -Infinity;
  return {
    nextCode() {
      const step = Math.max(currentStep(), lastStep + 1);
      lastStep = step;
      return totpAtStep(key, step);
    },
    /** A six-digit code that matches none of the steps the server could accept now. */
    wrongCode() {
      const now = currentStep();
      const valid = new Set([-1, 0, 1, 2].map((d) => totpAtStep(key, now + d)));
      for (let n = 0; ; n++) {
        const code = String(n * 7919 % 1_000_000).padStart(6, '0');
        if (!valid.has(code)) return code;
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Browser helpers

let userCounter = 0;
const uniqueEmail = (label) => `${label}-${++userCounter}-${randomUUID().slice(0, 8)}@example.test`;

/**
 * A fresh browser context and page. Records every main-frame document response (page.goto's
 * and those of form submissions) and every console error or uncaught page error.
 */
async function openPage() {
  const { context, page } = await newContextAndPage(browser, server.baseURL);
  const record = { gotos: [], documents: [], problems: [] };
  page.on('response', (response) => {
    if (isMainFrameDocument(page, response)) record.documents.push(response);
  });
  collectProblems(
    page,
    record.problems,
    // Chromium also logs "Failed to load resource" for a page whose own status is 4xx, such as
    // the 401 of a refused sign-in: that status is the page's answer, which the tests check.
    (message, source) => source === page.url() && message.text().startsWith('Failed to load resource'),
  );
  const goto = async (path) => {
    const response = await page.goto(path);
    assert.ok(response, `no response for ${path}`);
    record.gotos.push(response);
    return response;
  };
  return { context, page, record, goto };
}

/**
 * Runs a test body with a fresh page; on failure, a screenshot of what the page showed goes to
 * target/screenshots/failed-<letter>.png before the context closes.
 */
function withPage(t, body) {
  return withTab(openPage, `failed-${t.name.match(/^\((\w)\)/)?.[1] ?? 'test'}`, body);
}

async function enterMfaCode(page, code) {
  await assertAt(page, '/login/mfa');
  await page.getByLabel('Code from your authenticator app, or a recovery code').fill(code);
  await submit(page, 'Verify');
}

/** The account page for `email`, with this browser among its active sessions. */
async function assertSignedInAccountPage(page, email) {
  await assertAccountPage(page, email);
  const sessions = page.getByRole('table', { name: 'Active sessions' });
  assert.match(await text(sessions), /this device/);
}

/** The account page's "Change password" form (with TOTP on, "Turn off" also asks for the password). */
function changePasswordForm(page) {
  return page
    .locator('form')
    .filter({ has: page.getByRole('button', { name: 'Change password', exact: true }) });
}

/** From the account page: sets up an authenticator app; returns it and the recovery codes. */
async function enrolTotp(page, screenshotPrefix) {
  await page.getByRole('link', { name: 'Set up an authenticator app' }).click();
  await page.waitForURL('**/account/mfa/totp');
  const secret = await text(page.locator('#totp-secret'));
  assert.match(secret, /^[A-Z2-7]+=*$/, 'the key is base32');
  if (screenshotPrefix) await screenshot(page, `${screenshotPrefix}-totp-enrol`);
  const app = authenticator(secret);
  await page.locator('#code').fill(app.nextCode());
  await submit(page, 'Turn on two-step verification');
  const codes = (await page.locator('#recovery-codes li').allInnerTexts()).map((c) => c.trim());
  assert.equal(codes.length, 10, `ten recovery codes, got ${JSON.stringify(codes)}`);
  for (const code of codes) assert.match(code, /^[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}$/);
  assert.equal(new Set(codes).size, 10, 'recovery codes are distinct');
  if (screenshotPrefix) await screenshot(page, `${screenshotPrefix}-recovery-codes`);
  return { app, codes };
}

// ---------------------------------------------------------------------------------------------
// Tests

test('the TOTP helper reproduces RFC 6238 test vectors', () => {
  const key = base32Decode('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ'); // "12345678901234567890"
  assert.equal(key.toString(), '12345678901234567890');
  for (const [t, code] of [[59, '287082'], [1111111109, '081804'], [1234567890, '005924'], [2000000000, '279037']]) {
    assert.equal(totpAtStep(key, Math.floor(t / STEP_SECONDS)), code, `t = ${t}`);
  }
});

test('(a) sign up, sign in, and the account page shows the address', (t) =>
  withPage(t, async ({ page }) => {
    const email = uniqueEmail('signup');
    await page.goto('/signup');
    assert.equal(await text(page.getByRole('heading', { level: 1 })), 'Create your account');
    await screenshot(page, 'a-signup');

    await signUp(page, email);
    await screenshot(page, 'a-login-signed-up');

    await signIn(page, email);
    await assertSignedInAccountPage(page, email);
    await page.getByRole('link', { name: 'Set up an authenticator app' }).waitFor();
    const form = changePasswordForm(page);
    await form.getByLabel('Current password', { exact: true }).waitFor();
    await form.getByLabel('New password', { exact: true }).waitFor();
    await form.getByRole('button', { name: 'Change password', exact: true }).waitFor();
    await screenshot(page, 'a-account');
  }));

test('(b) authenticator app and recovery codes guard the sign-in', (t) =>
  withPage(t, async ({ page }) => {
    const email = uniqueEmail('totp');
    await signUp(page, email);
    await signIn(page, email);
    await assertSignedInAccountPage(page, email);

    const { app, codes } = await enrolTotp(page, 'b');
    await page.getByRole('link', { name: /back to my account/ }).click();
    await page.waitForURL('**/account');
    assert.match(await page.locator('main').innerText(), /authenticator app is set up/i);

    // Password, then a code from the app (a later step than the enrolment code).
    await signOut(page);
    await signIn(page, email);
    await assertAt(page, '/login/mfa');
    await screenshot(page, 'b-login-mfa');
    await enterMfaCode(page, app.nextCode());
    await assertSignedInAccountPage(page, email);

    // Password, then a recovery code.
    await signOut(page);
    await signIn(page, email);
    await enterMfaCode(page, codes[0]);
    await assertSignedInAccountPage(page, email);

    // The same recovery code a second time is refused.
    await signOut(page);
    await signIn(page, email);
    await enterMfaCode(page, codes[0]);
    await assertAt(page, '/login/mfa');
    assert.match(await text(page.getByRole('alert')), /not valid/i);
    await screenshot(page, 'b-recovery-code-reused');
  }));

test('(c) a wrong password shows an alert and stays on the sign-in page', (t) =>
  withPage(t, async ({ page }) => {
    const email = uniqueEmail('wrongpw');
    await signUp(page, email);
    await signIn(page, email, 'not the right password');
    await assertAt(page, '/login');
    const alert = page.getByRole('alert').filter({ hasText: /\S/ });
    assert.equal(await text(alert), 'Incorrect email address or password.');
    assert.equal(await alert.getAttribute('id'), 'form-error');
    assert.equal(await page.getByRole('button', { name: 'Sign out' }).count(), 0, 'not signed in');
    await screenshot(page, 'c-login-wrong-password');

    // Still possible to sign in from the page the alert is on.
    await signIn(page, email);
    await assertSignedInAccountPage(page, email);
  }));

/**
 * Visits every page a user can reach, by page.goto where a page has its own address and by
 * submitting its forms otherwise, with a fresh user.
 */
async function tourEveryPage({ page, goto }) {
  const email = uniqueEmail('tour');
  await goto('/');
  await goto('/signup');
  await signUp(page, email);
  await goto('/login');
  await signIn(page, email, 'not the right password');
  await assertAt(page, '/login');
  await signIn(page, email);
  await assertSignedInAccountPage(page, email);
  await goto('/account');
  await goto('/account/mfa/totp');
  await goto('/account');
  const { app } = await enrolTotp(page);
  await goto('/account');
  await signOut(page);
  await signIn(page, email);
  await assertAt(page, '/login/mfa');
  await goto(page.url());
  await enterMfaCode(page, app.wrongCode());
  await assertAt(page, '/login/mfa');
  await enterMfaCode(page, app.nextCode());
  await assertSignedInAccountPage(page, email);
  const form = changePasswordForm(page);
  await form.getByLabel('Current password', { exact: true }).fill(PASSWORD);
  await form.getByLabel('New password', { exact: true }).fill(`${PASSWORD} 2`);
  await submit(page, 'Change password');
  await assertAt(page, '/account');
  assert.match(await text(page.getByRole('status')), /password was changed/i);
  await goto('/account');
  await goto('/');
  await signOut(page);
}

/** One line per distinct problem (ports removed, so they compare across pages), with a count. */
function summarize(problems) {
  const counts = new Map();
  for (const p of problems) {
    const line = p.replaceAll(server.baseURL, '');
    counts.set(line, (counts.get(line) ?? 0) + 1);
  }
  return [...counts].map(([line, n]) => `  ${n > 1 ? `${n}× ` : ''}${line}`).join('\n');
}

/** When the tour broke off, the problems above cover only the pages it reached. */
function tourNote(error) {
  return error ? `\n(the tour of the pages stopped early: ${error.message.split('\n')[0]})` : '';
}

function headerProblems(response) {
  const headers = response.headers();
  const problems = [];
  const csp = headers['content-security-policy'];
  if (!csp) problems.push('no Content-Security-Policy');
  else if (csp.includes("'unsafe-inline'")) problems.push(`CSP allows 'unsafe-inline': ${csp}`);
  const xfo = headers['x-frame-options'];
  if (xfo?.trim().toUpperCase() !== 'DENY') problems.push(`X-Frame-Options is ${JSON.stringify(xfo ?? null)}`);
  return problems.map((p) => `${response.status()} ${response.url()}: ${p}`);
}

test('(d) every page sends a strict Content-Security-Policy and X-Frame-Options: DENY', (t) =>
  withPage(t, async (tab) => {
    const stopped = await tourEveryPage(tab).then(() => null, (error) => error);
    const { gotos, documents } = tab.record;
    // Every page.goto response, and every page a form submission led to (redirects are not
    // pages: nothing renders them).
    const pages = new Set([...gotos, ...documents.filter((r) => r.status() < 300 || r.status() >= 400)]);
    const problems = [...pages].flatMap(headerProblems);
    if (problems.length) assert.fail(`pages with weak headers:\n${summarize(problems)}${tourNote(stopped)}`);
    if (stopped) throw stopped;
    assert.ok(gotos.length >= 8, `visited ${gotos.length} pages by page.goto`);
  }));

test('(e) no page logs a console error, CSP violation or uncaught error', (t) =>
  withPage(t, async (tab) => {
    const stopped = await tourEveryPage(tab).then(() => null, (error) => error);
    const { problems, documents } = tab.record;
    if (problems.length) assert.fail(`problems seen in the browser:\n${summarize(problems)}${tourNote(stopped)}`);
    if (stopped) throw stopped;
    assert.ok(documents.length >= 15, `visited ${documents.length} documents`);
  }));
