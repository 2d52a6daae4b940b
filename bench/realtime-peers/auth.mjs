// What both peers share: the token check a connection passes before it may subscribe (an
// HS256 JWT signed with BENCH_SECRET, compared in constant time, its expiry enforced) and the
// TLS certificate they serve (BENCH_CERT, BENCH_KEY).
import { createHmac, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";

const secret = process.env.BENCH_SECRET;
if (!secret) throw new Error("BENCH_SECRET is not set");

export function verify(token) {
  const parts = typeof token === "string" ? token.split(".") : [];
  if (parts.length !== 3) return null;
  const expected = createHmac("sha256", secret).update(`${parts[0]}.${parts[1]}`).digest();
  const given = Buffer.from(parts[2], "base64url");
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
  const header = JSON.parse(Buffer.from(parts[0], "base64url"));
  if (header.alg !== "HS256") return null;
  const claims = JSON.parse(Buffer.from(parts[1], "base64url"));
  if (typeof claims.exp !== "number" || claims.exp * 1000 < Date.now()) return null;
  return claims;
}

export const tls = {
  key: readFileSync(process.env.BENCH_KEY),
  cert: readFileSync(process.env.BENCH_CERT),
};
