// The socket.io peer: one process per core, sharing rooms through the Redis adapter, as
// socket.io's documentation deploys it. The namespace's middleware refuses a connection
// without a valid token; a published message gets the room's next offset and is emitted to
// the room on every process.
import { createServer } from "node:https";
import { Server } from "socket.io";
import { createAdapter } from "@socket.io/redis-adapter";
import { createClient } from "redis";
import { verify, tls } from "./auth.mjs";

const port = Number(process.env.PORT);
const pub = createClient({ url: process.env.REDIS_URL });
const sub = pub.duplicate();
await Promise.all([pub.connect(), sub.connect()]);

const server = createServer(tls);
const io = new Server(server, {
  transports: ["websocket"],
  perMessageDeflate: false,
  maxHttpBufferSize: 65536,
  adapter: createAdapter(pub, sub),
});
let offset = 0;

io.use((socket, next) => {
  const claims = verify(socket.handshake.auth?.token);
  if (!claims) return next(new Error("unauthorized"));
  socket.data.subject = claims.sub;
  next();
});

io.on("connection", (socket) => {
  socket.on("subscribe", (room) => {
    if (typeof room !== "string") return;
    socket.join(room);
    socket.emit("subscribed", room);
  });
  socket.on("publish", (frame) => {
    if (typeof frame?.channel !== "string") return;
    offset += 1;
    io.to(frame.channel).emit("message", { channel: frame.channel, offset, data: frame.data });
  });
});

server.listen(port, "127.0.0.1", () => console.log(`listening ${port}`));
