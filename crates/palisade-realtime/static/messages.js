// The account's conversation page: its messages, live, through the browser client, signed in
// by the session cookie. History comes from the channel itself: subscribing from offset 0
// replays what the server keeps, then new messages follow.

import { RealtimeClient } from '/static/realtime.js';

const main = document.querySelector('main[data-conversation]');
const channel = `conversation:${main.dataset.conversation}`;
const list = document.getElementById('messages');
const status = document.getElementById('status');
const form = document.getElementById('send');
const input = document.getElementById('body');

const client = new RealtimeClient({
  url: `wss://${location.host}/ws`,
  onStatus: (text) => {
    status.textContent = text;
  },
});

function show(frame) {
  const item = document.createElement('li');
  item.dataset.offset = String(frame.offset);
  const who = frame.data.sender === main.dataset.me ? 'you' : frame.data.sender;
  item.textContent = `${who}: ${frame.data.body}`;
  list.append(item);
}

client.subscribe(channel, show, { offset: 0, epoch: 'd1' });
client.connect();
// For the page's own diagnostics (and tests that drop its connection).
window.palisadeRealtime = client;

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  const body = input.value;
  input.value = '';
  try {
    await client.publish(channel, { body });
  } catch (error) {
    status.textContent = `not sent: ${error.message}`;
  }
});
