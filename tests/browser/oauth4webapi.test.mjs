// Palisade's OAuth provider driven by oauth4webapi, the strictest certified OAuth / OpenID
// Connect client library (OAU-1..10, TOK-1): discovery with an exact issuer match; the code flow
// with PKCE, nonce and the RFC 9207 `iss` check; ID-token and access-token validation against
// the published JWKS; userinfo; refresh; revocation; introspection; a DPoP-bound flow with
// server nonces; PAR; dynamic registration with RFC 7592 read, update and delete. The user's
// part — signing in and consenting — happens in headless Chromium.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { Agent, fetch as undiciFetch } from 'undici';
import * as oauth from 'oauth4webapi';
import { startServer } from './server.mjs';
import {
  makeScreenshotDir, launchChromium, closeAll, newContextAndPage, withTab, submit, signUp,
  signIn, startApp, registerClient,
} from './helpers.mjs';

const INITIAL_ACCESS_TOKEN = `initial-${randomUUID()}`;

let server;
let browser;
let app;
let as;
/** Requests that trust only the server's development CA. */
let options;

before(async () => {
  await makeScreenshotDir();
  const { createHash } = await import('node:crypto');
  server = await startServer({
    PALISADE_OAUTH__REGISTRATION_TOKEN_SHA256: JSON.stringify([
      createHash('sha256').update(INITIAL_ACCESS_TOKEN).digest('hex'),
    ]),
  });
  browser = await launchChromium();
  app = await startApp();
  const ca = await readFile(join(server.dir, 'data', 'tls', 'dev-ca.pem'));
  const dispatcher = new Agent({ connect: { ca } });
  options = { [oauth.customFetch]: (url, init) => undiciFetch(url, { ...init, dispatcher }) };
  const issuer = new URL(server.issuer);
  as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, {
    ...options, algorithm: 'oidc',
  }));
});

after(async () => {
  app.http.close();
  await closeAll(browser, server);
});

/** A client of the given authentication method with its oauth4webapi objects. */
function client(method, { grants = ['authorization_code', 'refresh_token'], scopes = ['openid', 'email', 'offline_access'] } = {}) {
  const args = ['--name', 'Driver', '--auth-method', method, '--redirect-uri', 'http://127.0.0.1/callback'];
  for (const g of grants) args.push('--grant', g);
  for (const s of scopes) args.push('--scope', s);
  const registered = registerClient(server, args);
  const auth = {
    none: () => oauth.None(),
    client_secret_basic: () => oauth.ClientSecretBasic(registered.client_secret),
    client_secret_post: () => oauth.ClientSecretPost(registered.client_secret),
  }[method]();
  return { client: { client_id: registered.client_id }, auth };
}

/** The user's part in Chromium: sign in if asked, allow if asked; the URL the app received. */
async function authorizeInBrowser(page, url, email) {
  await page.goto(url.href);
  if (new URL(page.url()).pathname === '/login') await signIn(page, email);
  if (new URL(page.url()).pathname === '/oauth/authorize') await submit(page, 'Allow');
  const landed = new URL(page.url());
  assert.equal(landed.origin, new URL(app.callback).origin, `at ${page.url()}`);
  return landed;
}

/** A user of their own, signed up in the page. */
async function newUser(page) {
  const email = `driver-${randomUUID()}@example.com`;
  await signUp(page, email);
  return email;
}

/** Runs `request` once more with the server's nonce if it asked for one (RFC 9449 §8). */
async function withNonceRetry(request) {
  try {
    return await request();
  } catch (err) {
    if (!oauth.isDPoPNonceError(err)) throw err;
    return request();
  }
}

function authorizationUrl(c, params) {
  const url = new URL(as.authorization_endpoint);
  for (const [k, v] of Object.entries({ client_id: c.client.client_id, response_type: 'code', redirect_uri: app.callback, ...params })) {
    url.searchParams.set(k, v);
  }
  return url;
}

test('discovery insists on the exact issuer', async () => {
  assert.equal(as.issuer, server.issuer);
  assert.deepEqual(as.code_challenge_methods_supported, ['S256']);
  const wrong = new URL(server.baseURL); // same server, another name: not the issuer
  await assert.rejects(
    async () => oauth.processDiscoveryResponse(wrong, await oauth.discoveryRequest(wrong, options)),
    (err) => err.code === oauth.JSON_ATTRIBUTE_COMPARISON,
  );
});

test('code flow with PKCE, nonce and iss; ID token; userinfo; refresh; introspection; revocation', (t) =>
  withTab(() => newContextAndPage(browser, server.baseURL), 'oauth4webapi-code-failure', async ({ page }) => {
    const email = await newUser(page);
    const c = client('client_secret_basic');
    const rs = client('client_secret_post', { grants: ['client_credentials'], scopes: [] });
    const verifier = oauth.generateRandomCodeVerifier();
    const nonce = oauth.generateRandomNonce();
    const state = oauth.generateRandomState();
    const landed = await authorizeInBrowser(page, authorizationUrl(c, {
      scope: 'openid email offline_access', state, nonce,
      code_challenge: await oauth.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
    }), email);
    // validateAuthResponse checks `state` and, as the metadata promises it, `iss`.
    const params = oauth.validateAuthResponse(as, c.client, landed, state);
    const tamperedIss = new URL(landed);
    tamperedIss.searchParams.set('iss', 'https://evil.example');
    assert.throws(() => oauth.validateAuthResponse(as, c.client, tamperedIss, state));

    const response = await oauth.authorizationCodeGrantRequest(as, c.client, c.auth, params, app.callback, verifier, options);
    const tokens = await oauth.processAuthorizationCodeResponse(as, c.client, response, { expectedNonce: nonce, requireIdToken: true });
    const claims = oauth.getValidatedIdTokenClaims(tokens);
    assert.equal(claims.iss, server.issuer);
    assert.equal(claims.aud, c.client.client_id);
    assert.ok(claims.sid && claims.auth_time && claims.acr);
    await oauth.validateApplicationLevelSignature(as, response, options);
    assert.equal(tokens.token_type, 'bearer');

    // The access token is a valid RFC 9068 token for the resource it names.
    const accessClaims = await oauth.validateJwtAccessToken(
      as,
      new Request(`${server.issuer}/api/photos`, { headers: { authorization: `Bearer ${tokens.access_token}` } }),
      `${server.issuer}/api`,
      options,
    );
    assert.equal(accessClaims.sub, claims.sub);
    assert.equal(accessClaims.client_id, c.client.client_id);

    const info = await oauth.processUserInfoResponse(as, c.client, claims.sub,
      await oauth.userInfoRequest(as, c.client, tokens.access_token, options));
    assert.equal(info.email, email);

    const refreshed = await oauth.processRefreshTokenResponse(as, c.client,
      await oauth.refreshTokenGrantRequest(as, c.client, c.auth, tokens.refresh_token, options));
    assert.notEqual(refreshed.refresh_token, tokens.refresh_token, 'rotated');
    assert.equal(oauth.getValidatedIdTokenClaims(refreshed).sub, claims.sub);

    const introspect = async (token) => oauth.processIntrospectionResponse(as, rs.client,
      await oauth.introspectionRequest(as, rs.client, rs.auth, token, options));
    const active = await introspect(refreshed.access_token);
    assert.equal(active.active, true);
    assert.equal(active.sub, claims.sub);

    await oauth.processRevocationResponse(
      await oauth.revocationRequest(as, c.client, c.auth, refreshed.refresh_token, options));
    assert.equal((await introspect(refreshed.access_token)).active, false, 'revoking the refresh token ends its grant');
    await assert.rejects(async () => oauth.processRefreshTokenResponse(as, c.client,
      await oauth.refreshTokenGrantRequest(as, c.client, c.auth, refreshed.refresh_token, options)));
  }));

test('a DPoP-bound flow: code, tokens and refresh bound to the key, nonces on the way', (t) =>
  withTab(() => newContextAndPage(browser, server.baseURL), 'oauth4webapi-dpop-failure', async ({ page }) => {
    const email = await newUser(page);
    const c = client('none');
    const DPoP = oauth.DPoP(c.client, await oauth.generateKeyPair('ES256'));
    const withDpop = { ...options, DPoP };
    const verifier = oauth.generateRandomCodeVerifier();
    const state = oauth.generateRandomState();
    const landed = await authorizeInBrowser(page, authorizationUrl(c, {
      scope: 'openid email', state, code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256', dpop_jkt: await DPoP.calculateThumbprint(),
    }), email);
    const params = oauth.validateAuthResponse(as, c.client, landed, state);
    const tokens = await withNonceRetry(async () => oauth.processAuthorizationCodeResponse(as, c.client,
      await oauth.authorizationCodeGrantRequest(as, c.client, c.auth, params, app.callback, verifier, withDpop),
      { expectNoNonce: true }));
    assert.equal(tokens.token_type, 'dpop');

    const claims = oauth.getValidatedIdTokenClaims(tokens);
    const info = await withNonceRetry(async () => oauth.processUserInfoResponse(as, c.client, claims.sub,
      await oauth.userInfoRequest(as, c.client, tokens.access_token, withDpop)));
    assert.equal(info.email, email);
    // Without the key the token is worth nothing.
    await assert.rejects(async () => oauth.processUserInfoResponse(as, c.client, claims.sub,
      await oauth.userInfoRequest(as, c.client, tokens.access_token, options)));

    // The public client's refresh token is bound to the key too.
    const other = oauth.DPoP(c.client, await oauth.generateKeyPair('EdDSA'));
    await assert.rejects(
      () => withNonceRetry(async () => oauth.processRefreshTokenResponse(as, c.client,
        await oauth.refreshTokenGrantRequest(as, c.client, c.auth, tokens.refresh_token, { ...options, DPoP: other }))),
      (err) => err.error === 'invalid_dpop_proof',
      'a refresh token bound to one key is refused with another',
    );
    const refreshed = await withNonceRetry(async () => oauth.processRefreshTokenResponse(as, c.client,
      await oauth.refreshTokenGrantRequest(as, c.client, c.auth, tokens.refresh_token, withDpop)));
    assert.equal(refreshed.token_type, 'dpop');
    assert.equal(oauth.getValidatedIdTokenClaims(refreshed).sub, claims.sub);
  }));

test('pushed authorization requests', (t) =>
  withTab(() => newContextAndPage(browser, server.baseURL), 'oauth4webapi-par-failure', async ({ page }) => {
    const email = await newUser(page);
    const c = client('client_secret_basic');
    const verifier = oauth.generateRandomCodeVerifier();
    const state = oauth.generateRandomState();
    const pushed = await oauth.processPushedAuthorizationResponse(as, c.client,
      await oauth.pushedAuthorizationRequest(as, c.client, c.auth, {
        response_type: 'code', redirect_uri: app.callback, scope: 'openid', state,
        code_challenge: await oauth.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
      }, options));
    assert.match(pushed.request_uri, /^urn:ietf:params:oauth:request_uri:/);
    const url = new URL(as.authorization_endpoint);
    url.searchParams.set('client_id', c.client.client_id);
    url.searchParams.set('request_uri', pushed.request_uri);
    const landed = await authorizeInBrowser(page, url, email);
    const params = oauth.validateAuthResponse(as, c.client, landed, state);
    const tokens = await oauth.processAuthorizationCodeResponse(as, c.client,
      await oauth.authorizationCodeGrantRequest(as, c.client, c.auth, params, app.callback, verifier, options),
      { expectNoNonce: true });
    assert.ok(oauth.getValidatedIdTokenClaims(tokens).sub);
  }));

test('dynamic registration, then RFC 7592 read, update and delete', async () => {
  const f = options[oauth.customFetch];
  const json = { 'content-type': 'application/json' };
  const metadata = {
    client_name: 'Registered by the driver', redirect_uris: ['https://rp.example/cb'],
    grant_types: ['authorization_code'], scope: 'openid', token_endpoint_auth_method: 'client_secret_basic',
  };
  // Registration through the library (RFC 7591): refused without the initial access token,
  // with the Bearer challenge the library reads; accepted with it.
  await assert.rejects(
    oauth.processDynamicClientRegistrationResponse(
      await oauth.dynamicClientRegistrationRequest(as, metadata, options),
    ),
    (err) => err instanceof oauth.WWWAuthenticateChallengeError && err.status === 401
      && err.cause[0].scheme === 'bearer',
    'closed registration needs an initial access token',
  );
  const registration = await oauth.processDynamicClientRegistrationResponse(
    await oauth.dynamicClientRegistrationRequest(as, metadata, {
      ...options, initialAccessToken: INITIAL_ACCESS_TOKEN,
    }),
  );
  assert.equal(registration.client_name, metadata.client_name);
  assert.ok(registration.client_secret, 'a confidential client gets its secret once');
  // RFC 7592 is not in the library: read, update and delete by hand.
  const manage = registration.registration_client_uri;
  const bearer = { authorization: `Bearer ${registration.registration_access_token}` };
  assert.ok(manage.startsWith(server.issuer));

  const read = await (await f(manage, { headers: bearer })).json();
  assert.equal(read.client_name, metadata.client_name);
  const updated = await f(manage, {
    method: 'PUT', headers: { ...json, ...bearer },
    body: JSON.stringify({ ...metadata, client_id: registration.client_id, client_name: 'Renamed' }),
  });
  assert.equal(updated.status, 200);
  assert.equal((await updated.json()).client_name, 'Renamed');
  assert.equal((await f(manage, { method: 'DELETE', headers: bearer })).status, 204);
  assert.equal((await f(manage, { headers: bearer })).status, 401, 'deleted: its token is gone too');
});
