// Headless-browser test of the OAuth authorization code flow (OAU-1, OAU-2, OAU-6, PLT-8): an
// application sends the browser to Palisade, the user signs in (the form pre-filled from
// login_hint), consents on a page listing exactly the requested scopes, and lands back on the
// application's own page with a code, `state` and `iss`. The sign-in and consent pages refuse
// to be framed. Screenshots of each step go to target/screenshots/.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { startServer } from './server.mjs';
import {
  makeScreenshotDir, launchChromium, closeAll, newContextAndPage, collectProblems, withTab,
  submit, assertAt, screenshot, text, signUp, signIn, startApp, registerClient,
} from './helpers.mjs';

let server;
let browser;
let app;

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

const base64url = (bytes) => bytes.toString('base64url');

test('sign-in, consent and the way back to the application', (t) =>
  withTab(() => newContextAndPage(browser, server.baseURL), 'oauth-failure', async ({ page }) => {
    const problems = [];
    collectProblems(page, problems);
    // Registered without a port: loopback redirect URIs may use any (RFC 8252).
    const clientId = registerClient(server, [
      '--name', 'Photo app', '--auth-method', 'none', '--grant', 'authorization_code',
      '--scope', 'openid', '--scope', 'email', '--redirect-uri', 'http://127.0.0.1/callback',
    ]).client_id;
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
    assert.equal(answer.iss, server.issuer);
    assert.ok(answer.code?.length > 20, 'a code');
    assert.deepEqual(problems, []);
  }));
