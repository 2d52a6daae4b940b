// Headless-browser test of Palisade's passkeys, end to end in real Chromium: a passkey is added
// from the account page, signs in without a password, is removed, and is then refused. The
// authenticator is Chromium's built-in virtual one, driven over CDP (WebAuthn domain).
//
//   PALISADE_TEST_BIN=target/debug/palisade node --test --test-reporter=spec tests/browser/
//
// WebAuthn needs a host name, not an IP address: the relying-party ID is `localhost`, so the
// browser goes to https://localhost:<port of the server's HTTPS listener> (the server accepts
// passkeys from https://localhost on any port when its RP ID is localhost).
//
// One server and one Chromium serve the whole file. Full-page screenshots go to
// target/screenshots/.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startServer } from './server.mjs';
import {
  makeScreenshotDir, launchChromium, closeAll,
  newContextAndPage, isMainFrameDocument, collectProblems, withTab,
  submit, assertAt, screenshot, text,
  signUp, signIn, assertAccountPage, signOut,
} from './helpers.mjs';

const RP_ID = 'localhost';
/** The JSON endpoints behind the passkey buttons (requests made by /static/passkey.js). */
const PASSKEY_API = new Set([
  '/account/passkeys/options',
  '/account/passkeys',
  '/login/passkey/options',
  '/login/passkey',
]);

let server;
let browser;
/** https://localhost:<port>: the server's HTTPS address under the RP ID's host name. */
let origin;

before(async () => {
  await makeScreenshotDir();
  server = await startServer();
  const url = new URL(server.baseURL);
  url.hostname = RP_ID;
  origin = url.origin;
  browser = await launchChromium();
});

after(() => closeAll(browser, server));

// ---------------------------------------------------------------------------------------------
// Browser helpers

const uniqueEmail = (label) => `${label}-${randomUUID().slice(0, 8)}@example.test`;

/**
 * A fresh browser context and page on https://localhost:<port>. Records every console error
 * or uncaught page error, and every exchange with the passkey endpoints (for failure messages).
 *
 * `record.refusalExpected` marks the one moment a refused passkey sign-in is the point of the
 * test: then, and only then, Chromium's "Failed to load resource ... 403" entry for the
 * /login/passkey fetch is expected rather than a problem.
 */
async function openPage() {
  const { context, page } = await newContextAndPage(browser, origin);
  const record = { problems: [], api: [], documents: 0, refusalExpected: false, refusalsSeen: 0 };
  page.on('response', async (response) => {
    const request = response.request();
    if (isMainFrameDocument(page, response)) record.documents++;
    const url = new URL(response.url());
    if (url.origin !== origin || !PASSKEY_API.has(url.pathname)) return;
    const entry = { method: request.method(), url: response.url(), status: response.status(), body: '' };
    record.api.push(entry);
    entry.body = await response.text().catch((e) => `(body unavailable: ${e.message})`);
  });
  collectProblems(page, record.problems, (message, source, path) => {
    // Chromium logs "Failed to load resource" for a 4xx answer to a page's own fetch; the
    // refused passkey sign-in is one, on purpose.
    if (
      record.refusalExpected &&
      path === '/login/passkey' &&
      message.text().startsWith('Failed to load resource') &&
      message.text().includes('403')
    ) {
      record.refusalsSeen++;
      return true;
    }
    return false;
  });
  return { context, page, record };
}

/**
 * Runs a test body with a fresh page; on failure, a screenshot of what the page showed goes to
 * target/screenshots/failed-passkey.png before the context closes.
 */
function withPage(body) {
  return withTab(openPage, 'failed-passkey', body);
}

/**
 * Chromium's virtual authenticator for this page: a platform authenticator (internal
 * transport) with resident keys and user verification that always succeeds, no user needed.
 */
async function addVirtualAuthenticator(context, page) {
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  return {
    async credentials() {
      const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
      return credentials;
    },
  };
}

/** The exchanges with the passkey endpoints so far, for failure messages. */
function apiLog(record) {
  if (!record.api.length) return '(no requests to the passkey endpoints)';
  return record.api.map((e) => `${e.method} ${e.url} → ${e.status} ${e.body}`).join('\n');
}

/**
 * Clicks one of the passkey buttons (its script talks to the server and the authenticator, then
 * navigates) and waits for the page it leads to to load. If the script shows an error instead,
 * fails with that error and the passkey requests and responses.
 */
async function passkeyNavigation(page, record, buttonName) {
  const button = page.getByRole('button', { name: buttonName, exact: true });
  await button.waitFor({ state: 'visible', timeout: 5_000 });
  const loaded = page.waitForEvent('load', { timeout: 15_000 });
  await button.click();
  try {
    await loaded;
  } catch (error) {
    const shown = await page.locator('#passkey-error:visible').innerText({ timeout: 1_000 }).catch(() => '');
    assert.fail(
      `"${buttonName}" did not lead to a new page (${error.message.split('\n')[0]}); ` +
        `#passkey-error shows: ${shown || '(nothing)'}\n${apiLog(record)}`,
    );
  }
}

/** The passkeys the account page lists: name and the credential ID its Remove form sends. */
async function listedPasskeys(page) {
  return page.locator('#passkey-list li').evaluateAll((items) =>
    items.map((li) => ({
      name: li.querySelector('strong')?.textContent.trim(),
      id: li.querySelector('input[name=passkey]')?.value,
    })),
  );
}

// ---------------------------------------------------------------------------------------------
// Tests

test('(p) a passkey is added, signs in without a password, and once removed is refused', () =>
  withPage(async ({ context, page, record }) => {
    const authenticator = await addVirtualAuthenticator(context, page);
    const email = uniqueEmail('passkey');
    const passkeyName = `Test laptop ${randomUUID().slice(0, 4)}`;

    // Password sign-up and sign-in, on https://localhost.
    await signUp(page, email);
    await signIn(page, email);
    await assertAccountPage(page, email);
    assert.equal(new URL(page.url()).origin, origin);

    // Add a passkey from the account page.
    assert.equal(await text(page.locator('#no-passkeys')), 'No passkeys yet.');
    await page.getByLabel('Name for a new passkey (optional)', { exact: true }).fill(passkeyName);
    await passkeyNavigation(page, record, 'Add a passkey');
    await assertAt(page, '/account', { notice: 'passkey_added' });
    assert.match(await text(page.getByRole('status')), /passkey was added/i);
    const listed = await listedPasskeys(page);
    assert.equal(listed.length, 1, `one passkey listed, got ${JSON.stringify(listed)}`);
    assert.equal(listed[0].name, passkeyName);
    assert.match(await text(page.locator('#passkey-list')), /last used never/);
    assert.equal(await page.locator('#no-passkeys').count(), 0);
    await screenshot(page, 'passkey-account');

    // The authenticator now holds exactly one discoverable credential for localhost: the one
    // the server lists (CDP gives the ID in base64, the server in base64url).
    const held = await authenticator.credentials();
    assert.equal(held.length, 1, `one credential in the authenticator, got ${held.length}`);
    const [credential] = held;
    assert.equal(credential.rpId, RP_ID);
    assert.equal(credential.isResidentCredential, true);
    assert.equal(Buffer.from(credential.credentialId, 'base64').toString('base64url'), listed[0].id);
    const signCountAfterRegistration = credential.signCount;

    // Sign out; sign in with the passkey alone.
    await signOut(page);
    await page.getByRole('button', { name: 'Sign in with a passkey', exact: true }).waitFor({ state: 'visible', timeout: 5_000 });
    await screenshot(page, 'passkey-login');
    await passkeyNavigation(page, record, 'Sign in with a passkey');
    await assertAccountPage(page, email);
    assert.match(await text(page.getByRole('table', { name: 'Active sessions' })), /this device/);
    assert.doesNotMatch(await text(page.locator('#passkey-list')), /last used never/, 'the sign-in is recorded as a use');
    const [used] = await authenticator.credentials();
    assert.ok(used.signCount > signCountAfterRegistration, `signature counter went from ${signCountAfterRegistration} to ${used.signCount}`);

    // Remove the passkey.
    await submit(page, `Remove passkey ${passkeyName}`);
    await assertAt(page, '/account', { notice: 'passkey_removed' });
    assert.match(await text(page.getByRole('status')), /passkey was removed/i);
    assert.deepEqual(await listedPasskeys(page), []);
    assert.equal(await text(page.locator('#no-passkeys')), 'No passkeys yet.');

    // The authenticator still offers the credential, but the server no longer knows it.
    await signOut(page);
    assert.equal((await authenticator.credentials()).length, 1, 'the authenticator keeps its credential');
    const documentsBefore = record.documents;
    const answer = page.waitForResponse(
      (r) => new URL(r.url()).pathname === '/login/passkey' && r.request().method() === 'POST',
    );
    record.refusalExpected = true;
    await page.getByRole('button', { name: 'Sign in with a passkey', exact: true }).click();
    const refused = await answer;
    const error = page.locator('#passkey-error');
    assert.equal(await text(error), 'The passkey could not be verified.', apiLog(record));
    record.refusalExpected = false;
    assert.equal(refused.status(), 403, apiLog(record));
    assert.equal(await error.getAttribute('role'), 'alert');
    await assertAt(page, '/login', { notice: 'signed_out' });
    assert.equal(record.documents, documentsBefore, 'no navigation after the refused passkey');
    assert.equal(await page.getByRole('button', { name: 'Sign out' }).count(), 0, 'not signed in');
    assert.equal(await page.getByRole('button', { name: 'Sign in with a passkey', exact: true }).isEnabled(), true);

    // Nothing went wrong in the browser along the way (the 403 above aside).
    assert.deepEqual(record.problems, [], `problems seen in the browser:\n${record.problems.join('\n')}`);
  }));
