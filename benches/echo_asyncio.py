#!/usr/bin/env python3
"""Benchmark baseline: a Python asyncio TCP echo server (streams API)."""
import asyncio
import sys


async def handle(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


async def main():
    host, port = sys.argv[1].rsplit(":", 1)
    server = await asyncio.start_server(handle, host, int(port), backlog=1024)
    print("listening on %s:%d" % server.sockets[0].getsockname()[:2], flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
