"""A distributed password-guessing flood for bench/memory_and_logins.sh: CONCURRENCY clients
post wrong passwords for made-up accounts to /login for SECONDS, each attempt on a new TLS
connection from a new loopback source address (127.x.y.z), so that no per-address or
per-account back-off can stop it and every attempt costs the server a full password hash.
Prints the count of each answer's status as JSON.

    python3 login_flood.py HOST PORT CSRF SECONDS CONCURRENCY
"""

import asyncio
import json
import random
import ssl
import sys
import time


async def attempt(host, port, csrf, ctx, counts):
    source = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(1, 254)}"
    body = (f"csrf={csrf}&email=nobody{random.randrange(10**9)}%40example.com"
            "&password=wrong+password+guess")
    request = (f"POST /login HTTP/1.1\r\nhost: localhost:{port}\r\n"
               f"content-type: application/x-www-form-urlencoded\r\n"
               f"cookie: __Host-palisade-csrf={csrf}\r\norigin: https://localhost:{port}\r\n"
               f"content-length: {len(body)}\r\nconnection: close\r\n\r\n{body}")
    try:
        reader, writer = await asyncio.open_connection(
            host, port, ssl=ctx, server_hostname="localhost", local_addr=(source, 0))
        writer.write(request.encode())
        await writer.drain()
        status = (await reader.readline()).split(b" ")[1].decode()
        writer.close()
    except (OSError, IndexError, ssl.SSLError) as e:
        status = type(e).__name__
    counts[status] = counts.get(status, 0) + 1


async def client(host, port, csrf, ctx, deadline, counts):
    while time.monotonic() < deadline:
        await attempt(host, port, csrf, ctx, counts)


async def main():
    host, port, csrf, seconds, concurrency = sys.argv[1:]
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + float(seconds)
    counts = {}
    await asyncio.gather(*(client(host, int(port), csrf, ctx, deadline, counts)
                           for _ in range(int(concurrency))))
    print(json.dumps(counts, sort_keys=True))


asyncio.run(main())
