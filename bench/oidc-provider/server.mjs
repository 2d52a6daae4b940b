// node-oidc-provider set up as Palisade is for bench/oauth_vs_oidc_provider.sh: HTTPS with the
// same certificate, one confidential client (client_secret_basic) allowed client_credentials,
// RFC 9068 JWT access tokens signed with EdDSA (Ed25519) for the `<issuer>/api` resource,
// 10-minute lifetime, introspection on. A second resource, `urn:palisade:bench:opaque`, gets
// opaque tokens: oidc-provider introspects only the tokens it stores.
//
//   PORT=… CERT=… KEY=… CLIENT_ID=… CLIENT_SECRET=… node server.mjs
//
// It prints "listening" once ready. One process: Node runs JavaScript on one core.

import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import Provider from 'oidc-provider';

const { PORT, CERT, KEY, CLIENT_ID, CLIENT_SECRET } = process.env;
const issuer = `https://localhost:${PORT}`;
const api = `${issuer}/api`;
const opaque = 'urn:palisade:bench:opaque';

const { privateKey } = generateKeyPairSync('ed25519');
const jwk = { ...privateKey.export({ format: 'jwk' }), alg: 'EdDSA', use: 'sig', kid: 'bench' };

const provider = new Provider(issuer, {
  jwks: { keys: [jwk] },
  clients: [{
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    scope: 'audit:write',
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'EdDSA',
    introspection_endpoint_auth_method: 'client_secret_basic',
  }],
  scopes: ['openid', 'offline_access', 'audit:write'],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => api,
      getResourceServerInfo: (_ctx, resource) => ({
        scope: 'audit:write',
        audience: resource,
        accessTokenTTL: 600,
        accessTokenFormat: resource === opaque ? 'opaque' : 'jwt',
        jwt: { sign: { alg: 'EdDSA' } },
      }),
    },
  },
});
// Quiet: no per-request output, like Palisade's runs with request logs off.
provider.on('server_error', (_ctx, err) => console.error(err));

createServer({ cert: readFileSync(CERT), key: readFileSync(KEY) }, provider.callback())
  .listen(Number(PORT), '127.0.0.1', () => console.log('listening'));
