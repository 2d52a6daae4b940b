// Helpers shared by the Node tests: launching Chromium, recording what goes wrong in a page, the
// pages every test passes through (sign-up, sign-in, the account page, sign-out), and the
// OAuth applications the OAuth tests play.
//
// Full-page screenshots go to target/screenshots/.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { createServer } from 'node:http';
import { join } from 'node:path';
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

// ---------------------------------------------------------------------------------------------
// OAuth applications

/**
 * An application's loopback HTTP page at `/callback` that records what the authorization server
 * sends back. Resolves to `{ http, received, callback }`.
 */
export function startApp() {
  const received = [];
  const http = createServer((req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    if (url.pathname === '/callback') received.push(Object.fromEntries(url.searchParams));
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><title>Photo app</title><h1 id="welcome">Signed in to Photo app</h1>');
  });
  return new Promise((resolve) => {
    http.listen(0, '127.0.0.1', () => {
      resolve({ http, received, callback: `http://127.0.0.1:${http.address().port}/callback` });
    });
  });
}

/** Registers a client with `palisade clients create ARGS` beside `server`; its JSON. */
export function registerClient(server, args) {
  const out = spawnSync(process.env.PALISADE_TEST_BIN, ['clients', 'create', ...args], {
    cwd: server.dir,
    env: {
      PATH: process.env.PATH,
      PALISADE_DATA_DIR: join(server.dir, 'data'),
      PALISADE_LOG__LEVEL: 'warn',
      ...server.database,
    },
  });
  assert.equal(out.status, 0, out.stderr.toString());
  return JSON.parse(out.stdout.toString());
}
