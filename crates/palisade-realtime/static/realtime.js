// Palisade's browser client for the palisade.v1 real-time protocol (PROTOCOL.md in
// crates/palisade-realtime-client). It reconnects with jittered exponential back-off, resumes
// every subscription from the last offset it saw (so nothing is missed or shown twice), retries
// unacknowledged publishes with their idempotency key, and refreshes its credential in band
// before it expires.

const SUBPROTOCOL = 'palisade.v1';
// Close codes after which reconnecting with the same credential is pointless.
const FINAL = new Set([4001, 4003, 4400]);

/** The delay before reconnect attempt `attempt`: 250 ms doubling to 30 s, full jitter. */
export function backoff(attempt, random = Math.random()) {
  return Math.min(30000, 250 * 2 ** Math.min(attempt, 16)) * random;
}

export class RealtimeClient {
  #url;
  #credential;
  #onStatus;
  #socket = null;
  #attempt = 0;
  #closed = false;
  #seq = 0;
  #subscriptions = new Map(); // channel -> { onMessage, position }
  #pending = new Map(); // key -> { channel, data, resolve, reject, seq }
  #refresh = null;

  /**
   * `url`: `wss://host/ws`. `credential`: an async function giving `{ ticket }` (from
   * `POST /api/realtime/ticket`) or `null` for the session cookie of Palisade's own pages.
   * `onStatus`: told `connecting`, `live`, `reconnecting in N ms` and `closed: reason`.
   */
  constructor({ url, credential = async () => null, onStatus = () => {} }) {
    this.#url = url;
    this.#credential = credential;
    this.#onStatus = onStatus;
  }

  async connect() {
    this.#onStatus('connecting');
    const protocols = [SUBPROTOCOL];
    try {
      const credential = await this.#credential();
      if (credential?.ticket) protocols.push(`palisade.ticket.${credential.ticket}`);
    } catch (error) {
      return this.#retry(`no credential: ${error}`);
    }
    const socket = new WebSocket(this.#url, protocols);
    this.#socket = socket;
    socket.onmessage = (event) => this.#received(JSON.parse(event.data));
    socket.onclose = (event) => {
      if (this.#socket !== socket) return;
      this.#socket = null;
      clearTimeout(this.#refresh);
      if (this.#closed || FINAL.has(event.code)) {
        this.#onStatus(`closed: ${event.reason || event.code}`);
      } else {
        this.#retry(event.reason || `closed with ${event.code}`);
      }
    };
  }

  /** Receives `channel`'s messages, from `since` (`{ offset, epoch }`) when given. */
  subscribe(channel, onMessage, since = null) {
    this.#subscriptions.set(channel, { onMessage, position: since });
    this.#send({ type: 'subscribe', channel, ...(since ? { since } : {}) });
  }

  /** Publishes `data` to `channel`; resolves with `{ offset, duplicate }` once stored. */
  publish(channel, data) {
    const key = crypto.randomUUID();
    return new Promise((resolve, reject) => {
      const entry = { channel, data, resolve, reject, seq: 0 };
      this.#pending.set(key, entry);
      this.#publish(key, entry);
    });
  }

  /** Closes for good. */
  close() {
    this.#closed = true;
    this.#socket?.close(1000);
  }

  /** The underlying socket, for diagnostics. */
  get socket() {
    return this.#socket;
  }

  #publish(key, entry) {
    entry.seq = ++this.#seq;
    this.#send({ type: 'publish', channel: entry.channel, seq: entry.seq, key, data: entry.data });
  }

  #send(frame) {
    if (this.#socket?.readyState === WebSocket.OPEN) this.#socket.send(JSON.stringify(frame));
  }

  #retry(why) {
    const delay = backoff(this.#attempt++);
    this.#onStatus(`reconnecting in ${Math.round(delay)} ms (${why})`);
    setTimeout(() => this.connect(), delay);
  }

  #received(frame) {
    switch (frame.type) {
      case 'welcome':
        this.#attempt = 0;
        this.#onStatus('live');
        this.#scheduleRefresh(frame.expires_at);
        // Resume every subscription where it stopped, then retry what was not acknowledged
        // (with the same keys: what was stored is acknowledged, not stored again).
        for (const [channel, { position }] of this.#subscriptions) {
          this.#send({ type: 'subscribe', channel, ...(position ? { since: position } : {}) });
        }
        for (const [key, entry] of this.#pending) this.#publish(key, entry);
        break;
      case 'subscribed': {
        const subscription = this.#subscriptions.get(frame.channel);
        if (subscription && (!subscription.position || !frame.recovered)) {
          subscription.position = { offset: frame.offset, epoch: frame.epoch };
        }
        break;
      }
      case 'message': {
        const subscription = this.#subscriptions.get(frame.channel);
        if (!subscription) break;
        if (subscription.position && frame.offset <= subscription.position.offset) break;
        subscription.position = { offset: frame.offset, epoch: frame.epoch };
        subscription.onMessage(frame);
        break;
      }
      case 'published':
      case 'error': {
        const found = [...this.#pending].find(([, entry]) => entry.seq === frame.seq);
        if (!found) break;
        this.#pending.delete(found[0]);
        if (frame.type === 'published') found[1].resolve(frame);
        else found[1].reject(new Error(`${frame.code}: ${frame.message}`));
        break;
      }
      default:
        break;
    }
  }

  #scheduleRefresh(expiresAt) {
    clearTimeout(this.#refresh);
    const inMs = expiresAt * 1000 - Date.now() - 30000;
    this.#refresh = setTimeout(async () => {
      const credential = await this.#credential().catch(() => null);
      if (credential?.ticket) this.#send({ type: 'refresh', ticket: credential.ticket });
    }, Math.max(inMs, 0));
  }
}
