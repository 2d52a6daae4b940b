// Headless-browser test of the OAuth authorization code flow (OAU-1, OAU-2, OAU-6, PLT-8): an
// application sends the browser to Palisade, the user signs in (the form pre-filled from
// login_hint), consents on a page listing exactly the requested scopes, and lands back on the
// application's own page with a code, `state` and `iss`. The sign-in and consent pages refuse
// to be framed. Screenshots of each step go to target/screenshots/.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { startServer } from './server.mjs';
import {
  makeScreenshotDir, launchChromium, closeAll, newContextAndPage, collectProblems, withTab,
  submit, assertAt, screenshot, text, signUp, signIn,
} from './helpers.mjs';

let server;
let browser;
let app;

/** The application: a loopback HTTP page that shows what the authorization server sent back. */
function startApp() {
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

before(async () => {
  await makeScreenshotDir();
  server = await startServer();
  browser = await launchChromium();
  app = await startApp();
});

after(async () => {
  app.http.close();
  await closeAll(browser, server);
});

/** Registers a public client with `palisade clients create`, beside the running server. */
function registerClient(redirectUri) {
  const out = spawnSync(
    process.env.PALISADE_TEST_BIN,
    ['clients', 'create', '--name', 'Photo app', '--auth-method', 'none',
      '--grant', 'authorization_code', '--scope', 'openid', '--scope', 'email',
      '--redirect-uri', redirectUri],
    {
      cwd: server.dir,
      env: { PATH: process.env.PATH, PALISADE_DATA_DIR: join(server.dir, 'data'), PALISADE_LOG__LEVEL: 'warn' },
    },
  );
  assert.equal(out.status, 0, out.stderr.toString());
  return JSON.parse(out.stdout.toString()).client_id;
}

const base64url = (bytes) => bytes.toString('base64url');

test('sign-in, consent and the way back to the application', (t) =>
  withTab(() => newContextAndPage(browser, server.baseURL), 'oauth-failure', async ({ page }) => {
    const problems = [];
    collectProblems(page, problems);
    // Registered without a port: loopback redirect URIs may use any (RFC 8252).
    const clientId = registerClient('http://127.0.0.1/callback');
    const email = `oauth-${randomUUID()}@example.com`;
    await signUp(page, email);

    const verifier = base64url(randomBytes(32));
    const challenge = base64url(createHash('sha256').update(verifier).digest());
    const authorize = new URL('/oauth/authorize', server.baseURL);
    for (const [k, v] of Object.entries({
      response_type: 'code', client_id: clientId, redirect_uri: app.callback,
      scope: 'openid email', state: 'xyz-state', nonce: 'n-123',
      code_challenge: challenge, code_challenge_method: 'S256', login_hint: email,
    })) authorize.searchParams.set(k, v);

    const signInPage = await page.goto(authorize.href);
    await assertAt(page, '/login');
    assert.equal(await page.getByLabel('Email address', { exact: true }).inputValue(), email,
      'login_hint pre-fills the address');
    assert.match(signInPage.headers()['content-security-policy'], /frame-ancestors 'none'/);
    assert.equal(signInPage.headers()['x-frame-options'], 'DENY');
    await screenshot(page, 'oauth-1-sign-in');

    const consentLoaded = page.waitForResponse((r) => new URL(r.url()).pathname === '/oauth/authorize');
    await signIn(page, email);
    const consent = await consentLoaded;
    await assertAt(page, '/oauth/authorize');
    assert.match(consent.headers()['content-security-policy'], /frame-ancestors 'none'/);
    assert.equal(consent.headers()['x-frame-options'], 'DENY');
    assert.match(await text(page.getByRole('heading', { level: 1 })), /Allow Photo app/);
    const scopes = await page.locator('#scopes li').allInnerTexts();
    assert.deepEqual(scopes, ['Confirm who you are (your account identifier)', 'See your email address'],
      'exactly the requested scopes');
    await screenshot(page, 'oauth-2-consent');

    await submit(page, 'Allow');
    assert.equal(new URL(page.url()).origin, new URL(app.callback).origin, 'back at the application');
    assert.equal(await text(page.locator('#welcome')), 'Signed in to Photo app');
    await screenshot(page, 'oauth-3-back-at-the-app');
    const answer = app.received.at(-1);
    assert.equal(answer.state, 'xyz-state');
    assert.equal(answer.iss, new URL(server.baseURL).origin.replace('127.0.0.1', 'localhost'));
    assert.ok(answer.code?.length > 20, 'a code');
    assert.deepEqual(problems, []);
  }));
