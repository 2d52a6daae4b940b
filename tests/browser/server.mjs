// Starts a Palisade server for the browser tests and stops it again.
//
// The binary comes from $PALISADE_TEST_BIN. Each server gets a fresh temporary
// directory (its cwd, with the data directory inside) and listens on
// ephemeral loopback ports; the HTTPS port is read from the JSON log line
// whose fields.message is "palisade listening". With
// PALISADE_TEST_BROWSER_BACKEND=postgres, each server gets a fresh database on
// the PostgreSQL server at $PALISADE_TEST_POSTGRES_URL (created with the psql of
// $PALISADE_TEST_PG_BIN) instead of SQLite in its data directory.

import { randomBytes } from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const START_DEADLINE_MS = 30_000;

/** The database settings of a new server: none for SQLite, a fresh PostgreSQL database otherwise. */
function databaseSettings() {
  if (process.env.PALISADE_TEST_BROWSER_BACKEND !== 'postgres') return {};
  const admin = process.env.PALISADE_TEST_POSTGRES_URL;
  if (!admin) throw new Error('PALISADE_TEST_BROWSER_BACKEND=postgres needs PALISADE_TEST_POSTGRES_URL');
  const name = `palisade_browser_${randomBytes(6).toString('hex')}`;
  const psql = join(process.env.PALISADE_TEST_PG_BIN ?? '/usr/bin', 'psql');
  const made = spawnSync(psql, [admin, '-qc', `CREATE DATABASE ${name}`]);
  if (made.status !== 0) throw new Error(`could not create ${name}: ${made.stderr}`);
  const url = new URL(admin);
  url.pathname = `/${name}`;
  return { PALISADE_DATABASE__URL: url.toString() };
}
const STOP_DEADLINE_MS = 15_000;

/**
 * Spawns `$PALISADE_TEST_BIN serve` and resolves once it is listening. `settings` are extra
 * PALISADE_* variables for the server.
 * @returns {Promise<{baseURL: string, issuer: string, dir: string, logs: string[], stop: () => Promise<number|null>}>}
 */
export async function startServer(settings = {}) {
  const bin = process.env.PALISADE_TEST_BIN;
  if (!bin) {
    throw new Error(
      'PALISADE_TEST_BIN is not set: point it at a built server binary, e.g. ' +
        'PALISADE_TEST_BIN=target/debug/palisade node --test tests/browser/',
    );
  }

  // The server reads PALISADE_* variables as configuration; the tests pin their
  // own settings, so none from the caller's shell may reach it.
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !key.toUpperCase().startsWith('PALISADE_')),
  );

  const dir = await mkdtemp(join(tmpdir(), 'palisade-browser-'));
  const database = databaseSettings();
  const child = spawn(bin, ['serve'], {
    cwd: dir,
    env: {
      ...env,
      PALISADE_DATA_DIR: join(dir, 'data'),
      PALISADE_SERVER__HTTPS_LISTEN: '127.0.0.1:0',
      PALISADE_SERVER__HTTP_LISTEN: '127.0.0.1:0',
      PALISADE_SERVER__ADMIN_LISTEN: '127.0.0.1:0',
      ...database,
      ...settings,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });

  // Kept for failure messages: the last lines the server printed.
  const logs = [];
  const remember = (line) => {
    logs.push(line);
    if (logs.length > 200) logs.shift();
  };
  createInterface({ input: child.stderr }).on('line', (line) => remember(`[stderr] ${line}`));

  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });

  let timer;
  const https = await new Promise((resolve, reject) => {
    timer = setTimeout(() => {
      reject(new Error(`palisade did not log "palisade listening" within ${START_DEADLINE_MS} ms\n${logs.join('\n')}`));
    }, START_DEADLINE_MS);
    child.once('error', (err) => reject(new Error(`could not start ${bin}: ${err.message}`)));
    exited.then(({ code, signal }) =>
      reject(new Error(`palisade exited before listening (code ${code}, signal ${signal})\n${logs.join('\n')}`)),
    );
    createInterface({ input: child.stdout }).on('line', (line) => {
      remember(line);
      let entry;
      try {
        entry = JSON.parse(line);
      } catch {
        return;
      }
      if (entry?.fields?.message === 'palisade listening' && typeof entry.fields.https === 'string') {
        resolve(entry.fields.https);
      }
    });
  }).catch(async (err) => {
    child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
    throw err;
  }).finally(() => clearTimeout(timer));

  const baseURL = `https://${https}`;
  // The OAuth issuer: the development certificate's name on the same port.
  const issuer = `https://localhost:${new URL(baseURL).port}`;

  async function stop() {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    let killTimer;
    const result = await Promise.race([
      exited,
      new Promise((resolve) => {
        killTimer = setTimeout(() => resolve(null), STOP_DEADLINE_MS);
      }),
    ]);
    clearTimeout(killTimer);
    if (result === null) {
      child.kill('SIGKILL');
      await exited;
      await rm(dir, { recursive: true, force: true });
      throw new Error(`palisade did not exit within ${STOP_DEADLINE_MS} ms of SIGTERM\n${logs.join('\n')}`);
    }
    await rm(dir, { recursive: true, force: true });
    if (result.code !== 0) {
      throw new Error(`palisade exited with code ${result.code} (signal ${result.signal}) after SIGTERM\n${logs.join('\n')}`);
    }
    return result.code;
  }

  return { baseURL, issuer, dir, database, logs, stop };
}
