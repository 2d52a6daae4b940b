// node-oidc-provider set up as Palisade is for bench/oauth_vs_oidc_provider.sh: HTTPS with the
// same certificate, one confidential client (client_secret_basic) allowed client_credentials,
// RFC 9068 JWT access tokens signed with EdDSA (Ed25519) for the `<issuer>/api` resource,
// 10-minute lifetime.
//
//   PORT=… CERT=… KEY=… CLIENT_ID=… CLIENT_SECRET=… node server.mjs
//
// As it would run in production: NODE_ENV=production (set by the benchmark), and one worker
// per core with Node's cluster module (WORKERS overrides) sharing the port — issuing tokens
// needs no shared state, and every worker signs with the same key. It prints "listening N
// workers" once every worker is ready.

import cluster from 'node:cluster';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { availableParallelism } from 'node:os';
import Provider from 'oidc-provider';

const { PORT, CERT, KEY, CLIENT_ID, CLIENT_SECRET } = process.env;

if (cluster.isPrimary) {
  const { privateKey } = generateKeyPairSync('ed25519');
  const jwk = { ...privateKey.export({ format: 'jwk' }), alg: 'EdDSA', use: 'sig', kid: 'bench' };
  const workers = Number(process.env.WORKERS ?? availableParallelism());
  let ready = 0;
  cluster.on('message', (_worker, message) => {
    if (message === 'listening' && ++ready === workers) console.log(`listening ${workers} workers`);
  });
  cluster.on('exit', (_worker, code) => {
    console.error(`a worker exited (${code})`);
    process.exit(1);
  });
  for (let i = 0; i < workers; i += 1) cluster.fork({ BENCH_JWK: JSON.stringify(jwk) });
} else {
  serve(JSON.parse(process.env.BENCH_JWK));
}

function serve(jwk) {
  const issuer = `https://localhost:${PORT}`;
  const api = `${issuer}/api`;

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
    }],
    scopes: ['openid', 'offline_access', 'audit:write'],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => api,
        getResourceServerInfo: (_ctx, resource) => ({
          scope: 'audit:write',
          audience: resource,
          accessTokenTTL: 600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'EdDSA' } },
        }),
      },
    },
  });
  // Quiet: no per-request output, like Palisade's runs with request logs off.
  provider.on('server_error', (_ctx, err) => console.error(err));

  createServer({ cert: readFileSync(CERT), key: readFileSync(KEY) }, provider.callback())
    .listen(Number(PORT), '127.0.0.1', () => process.send('listening'));
}
