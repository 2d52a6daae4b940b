// Helpers shared by the browser tests (identity.test.mjs, passkeys.test.mjs): launching
// Chromium, recording what goes wrong in a page, and the pages every test passes through
// (sign-up, sign-in, the account page, sign-out).
//
// Full-page screenshots go to target/screenshots/.

import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const SCREENSHOTS = fileURLToPath(new URL('../../target/screenshots/', import.meta.url));
export const PASSWORD = 'correct horse battery staple';
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

// ---------------------------------------------------------------------------------------------
// One server and one Chromium per test file

/** Makes sure target/screenshots/ exists. */
export async function makeScreenshotDir() {
  await mkdir(SCREENSHOTS, { recursive: true });
}

/** Debian's Chromium, headless. */
export function launchChromium() {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
  });
}

/** Closes what `before` started; either may be missing if `before` failed part way. */
export async function closeAll(browser, server) {
  await browser?.close();
  // Throws unless the server exits 0 after SIGTERM.
  await server?.stop();
}

// ---------------------------------------------------------------------------------------------
// Pages

/** A fresh browser context (which accepts the server's self-signed certificate) and page. */
export async function newContextAndPage(browser, baseURL) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, baseURL });
  const page = await context.newPage();
  return { context, page };
}

/** Whether `response` is a document loaded into the page's main frame (not a fetch or subframe). */
export function isMainFrameDocument(page, response) {
  const request = response.request();
  return request.isNavigationRequest() && request.frame() === page.mainFrame();
}

/**
 * Pushes every console error and uncaught page error of `page` onto `problems`, except the
 * console errors `expected(message, source, path)` accepts (`source` is the URL the message
 * comes from and `path` its pathname, both '' if it has none).
 */
export function collectProblems(page, problems, expected = () => false) {
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    const source = message.location()?.url ?? '';
    const path = source ? new URL(source).pathname : '';
    // Chromium asks every site for /favicon.ico on its own; no page refers to it.
    if (path === '/favicon.ico') return;
    if (expected(message, source, path)) return;
    problems.push(`console error on ${page.url()}: ${message.text()} (source ${source || 'unknown'})`);
  });
  page.on('pageerror', (error) => {
    problems.push(`uncaught error on ${page.url()}: ${error.message}`);
  });
}

/**
 * Runs a test body with the tab `open` makes; on failure, a screenshot of what the page showed
 * goes to target/screenshots/<failureScreenshot>.png before the context closes.
 */
export async function withTab(open, failureScreenshot, body) {
  const tab = await open();
  try {
    await body(tab);
  } catch (error) {
    await screenshot(tab.page, failureScreenshot).catch(() => {});
    throw error;
  } finally {
    await tab.context.close();
  }
}

/** Clicks a button that submits a form and waits for the page it leads to to load. */
export async function submit(page, buttonName) {
  const loaded = page.waitForEvent('load');
  await page.getByRole('button', { name: buttonName, exact: true }).click();
  await loaded;
}

export async function assertAt(page, pathname, query = {}) {
  const url = new URL(page.url());
  if (url.pathname !== pathname) {
    // Say what the user sees instead: the heading and any alert on the page.
    const seen = await page
      .locator('h1, [role=alert]:visible')
      .allInnerTexts()
      .then((texts) => texts.map((x) => x.trim()).filter(Boolean).join(' | '))
      .catch(() => '');
    assert.fail(`expected to be on ${pathname}, now at ${page.url()} showing: ${seen || '(nothing)'}`);
  }
  for (const [key, value] of Object.entries(query)) {
    assert.equal(url.searchParams.get(key), value, `query ${key} at ${page.url()}`);
  }
}

export async function screenshot(page, name) {
  await page.screenshot({ path: `${SCREENSHOTS}${name}.png`, fullPage: true });
}

export async function text(locator) {
  await locator.waitFor({ state: 'visible', timeout: 5_000 });
  return (await locator.innerText()).trim();
}

// ---------------------------------------------------------------------------------------------
// Sign-up, sign-in, account page, sign-out

export async function signUp(page, email, password = PASSWORD) {
  await page.goto('/signup');
  await page.getByLabel('Email address', { exact: true }).fill(email);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await submit(page, 'Create account');
  await assertAt(page, '/login', { notice: 'signed_up' });
  assert.match(await text(page.getByRole('status')), /sign in/i);
}

/** Fills and submits the sign-in form of the page that is open. */
export async function signIn(page, email, password = PASSWORD) {
  await page.getByLabel('Email address', { exact: true }).fill(email);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await submit(page, 'Sign in');
}

/** The account page, showing `email` as the account's address. */
export async function assertAccountPage(page, email) {
  await assertAt(page, '/account');
  assert.equal(await text(page.locator('#account-email')), email);
}

export async function signOut(page) {
  await submit(page, 'Sign out');
  await assertAt(page, '/login', { notice: 'signed_out' });
  assert.match(await text(page.getByRole('status')), /signed out/i);
}
