// Headless-browser test of the account's conversation page over the real-time gateway (RTM-1,
// RTM-3, RTM-4, SOC-3): two people in two browser contexts, signed in by their session cookies;
// Alice's message appears on Bob's page live, and again after Bob's network drops and returns
// (the browser client reconnects and resumes from its last offset: nothing missed, nothing
// twice). Screenshots go to target/screenshots/.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startServer } from './server.mjs';
import {
  makeScreenshotDir, launchChromium, closeAll, newContextAndPage, collectProblems, submit,
  screenshot, text, signUp, signIn, assertAccountPage,
} from './helpers.mjs';

let server;
let browser;

before(async () => {
  await makeScreenshotDir();
  server = await startServer();
  browser = await launchChromium();
});

after(() => closeAll(browser, server));

/** A new account signed in, in a context of its own on the server's public origin. */
async function person(name) {
  // The public URL (localhost), which the gateway's Origin allow-list names.
  const { context, page } = await newContextAndPage(browser, server.issuer);
  const problems = [];
  // While the network is away, the client's reconnect attempts fail: expected, and the proof
  // that there was a gap to resume over.
  collectProblems(page, problems, (message) => message.text().includes('ERR_INTERNET_DISCONNECTED'));
  const email = `${name}-${randomUUID()}@example.com`;
  await signUp(page, email);
  await signIn(page, email);
  await assertAccountPage(page, email);
  return { context, page, problems };
}

async function live(page) {
  const status = page.getByRole('status');
  await status.getByText('live', { exact: true }).waitFor({ timeout: 10_000 }).catch(async (e) => {
    throw new Error(`not live: ${await status.textContent()}`, { cause: e });
  });
}

/** Sends a message from the page's form (which stays on the page). */
async function send(page, body) {
  await page.getByLabel('Message').fill(body);
  await page.getByRole('button', { name: 'Send', exact: true }).click();
}

/** The messages shown, as `[offset, text]`, once `count` of them are. */
async function shown(page, count) {
  const items = page.locator('#messages li');
  await items.nth(count - 1).waitFor({ timeout: 10_000 });
  return items.evaluateAll((lis) => lis.map((li) => [Number(li.dataset.offset), li.textContent]));
}

test('a message appears live on the other page, and again after the network returns', async () => {
  const alice = await person('alice');
  const bob = await person('bob');
  await bob.page.goto('/account/messages');
  const bobId = await text(bob.page.locator('#account-id'));
  await alice.page.goto('/account/messages');
  const aliceId = await text(alice.page.locator('#account-id'));
  await alice.page.getByLabel('Start a conversation with (account id)').fill(bobId);
  await submit(alice.page, 'Start');
  const conversation = new URL(alice.page.url()).pathname;
  assert.match(conversation, /^\/account\/messages\/[0-9a-f-]+$/);
  await live(alice.page);
  await bob.page.goto(conversation);
  await live(bob.page);

  await send(alice.page, 'Hello Bob');
  assert.deepEqual(await shown(bob.page, 1), [[1, `${aliceId}: Hello Bob`]]);
  assert.deepEqual(await shown(alice.page, 1), [[1, 'you: Hello Bob']]);
  await screenshot(bob.page, 'realtime-live');

  // Bob's network goes away, and his connection with it; Alice writes meanwhile.
  await bob.context.setOffline(true);
  await bob.page.evaluate(() => window.palisadeRealtime.socket.close(4999, 'network gone'));
  await bob.page.getByRole('status').getByText(/reconnecting/).waitFor({ timeout: 10_000 });
  await send(alice.page, 'Are you there?');
  await send(alice.page, 'Call me back');
  await shown(alice.page, 3);
  await bob.context.setOffline(false);
  await live(bob.page);
  assert.deepEqual(await shown(bob.page, 3), [
    [1, `${aliceId}: Hello Bob`],
    [2, `${aliceId}: Are you there?`],
    [3, `${aliceId}: Call me back`],
  ], 'exactly what was missed, in order, once');
  await screenshot(bob.page, 'realtime-resumed');

  await send(bob.page, 'Back online');
  assert.deepEqual((await shown(alice.page, 4))[3], [4, `${bobId}: Back online`]);
  assert.deepEqual([...alice.problems, ...bob.problems], []);
  await alice.context.close();
  await bob.context.close();
});
