// The bare peer: one `ws` server process (the benchmark starts one per core, each holding
// half of the subscribers). The upgrade is refused without a valid Bearer token; a subscriber
// joins a room; a published message gets the room's next offset and is serialized once and
// sent to every member.
import { createServer } from "node:https";
import { WebSocketServer } from "ws";
import { verify, tls } from "./auth.mjs";

const port = Number(process.env.PORT);
const rooms = new Map();
const offsets = new Map();
const server = createServer(tls);
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 65536 });

server.on("upgrade", (request, socket, head) => {
  const auth = request.headers.authorization ?? "";
  const claims = auth.startsWith("Bearer ") ? verify(auth.slice(7)) : null;
  if (!claims) {
    socket.end("HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n");
    return;
  }
  wss.handleUpgrade(request, socket, head, (ws) => {
    ws.subject = claims.sub;
    wss.emit("connection", ws);
  });
});

wss.on("connection", (ws) => {
  ws.on("message", (raw) => {
    let frame;
    try {
      frame = JSON.parse(raw);
    } catch {
      ws.send(JSON.stringify({ type: "error", code: "malformed" }));
      return;
    }
    if (frame.type === "subscribe" && typeof frame.channel === "string") {
      if (!rooms.has(frame.channel)) rooms.set(frame.channel, new Set());
      rooms.get(frame.channel).add(ws);
      ws.send(JSON.stringify({ type: "subscribed", channel: frame.channel }));
    } else if (frame.type === "publish" && rooms.has(frame.channel)) {
      const offset = (offsets.get(frame.channel) ?? 0) + 1;
      offsets.set(frame.channel, offset);
      const out = JSON.stringify({ type: "message", channel: frame.channel, offset, data: frame.data });
      for (const member of rooms.get(frame.channel)) member.send(out);
    }
  });
  ws.on("close", () => {
    for (const members of rooms.values()) members.delete(ws);
  });
});

server.listen(port, "127.0.0.1", () => console.log(`listening ${port}`));
