#!/usr/bin/env python3
"""Soak load for sockit: many clients on every service at once, with faults.

Run by scripts/soak.sh, which starts the servers and passes their addresses.
Clients (asyncio tasks, --clients in all) cycle through:
  files   verified uploads (classic header with "md5", checked by the server)
          and downloads compared byte for byte; every upload the server
          acknowledges is recorded and checked on disk at the end
  faulty  uploads cut off mid-body with a reset (SO_LINGER 0), which must
          never leave anything under their names
  echo    TCP (half-close, compare) and UDP round trips
  chat    members that talk and read; some that never read
  tftp    complete RFC 1350 downloads; requests never acknowledged; junk
  ipmsg   SENDMSG with SENDCHECK to a node, answered by RECVMSG; junk
A sampler reads each server's RSS and open fds every few seconds. At the
end: every acknowledged file intact, nothing partial under a final name,
RSS and fds flat (the last samples within bounds of those after warm-up,
and fds back near their start once the load stops).
Exit 0 when every check holds; the report goes to stdout as Markdown.
"""
import argparse
import asyncio
import hashlib
import hmac
import json
import os
import random
import socket
import struct
import sys
import time

OP_TIMEOUT = 30


def frame(header):
    raw = json.dumps(header).encode()
    return struct.pack("<I", len(raw)) + raw


async def read_header(reader):
    (n,) = struct.unpack("<I", await reader.readexactly(4))
    return json.loads(await reader.readexactly(n))


class Stats:
    def __init__(self):
        self.ok = {}
        self.failed = {}
        self.notes = []

    def good(self, kind):
        self.ok[kind] = self.ok.get(kind, 0) + 1

    def bad(self, kind, why):
        self.failed[kind] = self.failed.get(kind, 0) + 1
        if len(self.notes) < 30:
            self.notes.append(f"{kind}: {why}")


class Soak:
    def __init__(self, args):
        self.args = args
        self.key = open(args.key, "rb").read().rstrip() if args.key else None
        self.stats = Stats()
        self.acked = {}  # name -> md5 of the last acknowledged upload
        self.faulty_names = set()
        self.stop_at = time.monotonic() + args.duration
        self.samples = []  # (t, [(rss, fds) per pid])

    def running(self):
        return time.monotonic() < self.stop_at

    @staticmethod
    def source(me):
        """Each client its own loopback address, as separate hosts would be
        (the servers cap connections per address)."""
        return f"127.1.{me // 200}.{me % 200 + 1}"

    async def connect(self, addr, me, auth=True):
        host, port = addr.rsplit(":", 1)
        opened = asyncio.open_connection(host, int(port), local_addr=(self.source(me), 0))
        reader, writer = await asyncio.wait_for(opened, OP_TIMEOUT)
        if auth and self.key:
            challenge = await asyncio.wait_for(reader.readexactly(32), OP_TIMEOUT)
            writer.write(hmac.new(self.key, challenge, "sha256").digest())
        return reader, writer

    # ---- files ----
    async def files(self, rng, me):
        name = f"soak/c{me}-{rng.randrange(8)}.bin"
        data = rng.randbytes(rng.choice([0, 1, 1000, 65536, 300_000, 2_000_000]))
        md5 = hashlib.md5(data).hexdigest()
        reader, writer = await self.connect(self.args.files, me)
        try:
            writer.write(frame({"cmd": "put", "filename": name, "filesize": len(data), "md5": md5}) + data)
            await writer.drain()
            reply = await asyncio.wait_for(read_header(reader), OP_TIMEOUT)
            if reply.get("status") != "ok":
                self.stats.bad("files", f"put refused: {reply}")
                return
            self.acked[name] = md5
            writer.write(frame({"cmd": "get", "filename": name}))
            await writer.drain()
            head = await asyncio.wait_for(read_header(reader), OP_TIMEOUT)
            body = await asyncio.wait_for(reader.readexactly(head["filesize"]), OP_TIMEOUT)
            await asyncio.wait_for(read_header(reader), OP_TIMEOUT)  # the xxh3 trailer
            # Another client of this name may have replaced it meanwhile:
            # only this client writes c{me}-*, so it must match.
            if hashlib.md5(body).hexdigest() != md5:
                self.stats.bad("files", f"{name}: downloaded bytes differ")
            else:
                self.stats.good("files")
        finally:
            writer.close()

    async def faulty(self, rng, me):
        name = f"soak/faulty-c{me}-{rng.randrange(1_000_000)}.bin"
        self.faulty_names.add(name)
        reader, writer = await self.connect(self.args.files, me)
        size = 1_000_000
        writer.write(frame({"cmd": "put", "filename": name, "filesize": size, "verify": "xxh3"}))
        writer.write(rng.randbytes(rng.randrange(1, size)))
        await writer.drain()
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # a reset, mid-body
        self.stats.good("faulty")

    # ---- echo ----
    async def echo(self, rng, me):
        data = rng.randbytes(rng.randrange(1, 100_000))
        reader, writer = await self.connect(self.args.echo_tcp, me)
        writer.write(data)
        await writer.drain()
        writer.write_eof()
        back = await asyncio.wait_for(reader.read(-1), OP_TIMEOUT)
        writer.close()
        if back != data:
            self.stats.bad("echo-tcp", f"{len(back)} of {len(data)} bytes back")
        else:
            self.stats.good("echo-tcp")
        await self.udp_round_trip(self.args.echo_udp, rng.randbytes(rng.randrange(1, 1400)), "echo-udp", me, same=True)

    async def udp_round_trip(self, addr, payload, kind, me, same=False):
        host, port = addr.rsplit(":", 1)
        loop = asyncio.get_running_loop()
        got = loop.create_future()

        class P(asyncio.DatagramProtocol):
            def datagram_received(self, data, _):
                if not got.done():
                    got.set_result(data)

        transport, _ = await loop.create_datagram_endpoint(
            P, local_addr=(self.source(me), 0), remote_addr=(host, int(port))
        )
        try:
            for _ in range(3):  # UDP: a lost datagram is retried, not a failure
                transport.sendto(payload)
                try:
                    data = await asyncio.wait_for(asyncio.shield(got), 2)
                    if same and data != payload:
                        self.stats.bad(kind, "reply differs")
                    else:
                        self.stats.good(kind)
                    return data
                except asyncio.TimeoutError:
                    continue
            self.stats.bad(kind, "no reply to 3 datagrams")
        finally:
            transport.close()

    # ---- chat ----
    async def chat(self, rng, me):
        reader, writer = await self.connect(self.args.chat, me)
        try:
            welcome = await asyncio.wait_for(reader.readline(), OP_TIMEOUT)
            if not welcome.startswith(b"*** welcome"):
                self.stats.bad("chat", f"welcome: {welcome[:60]!r}")
                return
            nick = f"m{me}x{rng.randrange(10**6)}"
            writer.write(f"/nick {nick}\n".encode())
            for i in range(rng.randrange(1, 20)):
                writer.write(f"line {i} from {nick}\n".encode())
            writer.write(b"/who\n")
            await writer.drain()
            deadline = time.monotonic() + OP_TIMEOUT
            while time.monotonic() < deadline:
                line = await asyncio.wait_for(reader.readline(), OP_TIMEOUT)
                if not line:
                    self.stats.bad("chat", "closed before /who answered")
                    return
                if nick.encode() in line and b"here" in line:
                    break
            self.stats.good("chat")
            writer.write(b"/quit\n")
            await writer.drain()
        finally:
            writer.close()

    async def chat_deaf(self, rng, me):
        """A member that never reads: the room drops it, nobody else stalls."""
        reader, writer = await self.connect(self.args.chat, me)
        writer.write(b"/nick deaf%d\n" % rng.randrange(10**6))
        await writer.drain()
        await asyncio.sleep(rng.uniform(1, 5))
        writer.transport.abort()
        self.stats.good("chat-deaf")

    # ---- tftp ----
    async def tftp(self, rng, me):
        host, port = self.args.tftp.rsplit(":", 1)
        loop = asyncio.get_running_loop()
        queue = asyncio.Queue()

        class P(asyncio.DatagramProtocol):
            def datagram_received(self, data, addr):
                queue.put_nowait((data, addr))

        transport, _ = await loop.create_datagram_endpoint(P, local_addr=(self.source(me), 0))
        try:
            kind = rng.random()
            if kind < 0.2:
                transport.sendto(rng.randbytes(rng.randrange(0, 600)), (host, int(port)))
                self.stats.good("tftp-junk")
                return
            transport.sendto(b"\x00\x01soak.bin\x00octet\x00", (host, int(port)))
            if kind < 0.4:
                self.stats.good("tftp-unanswered")  # never acknowledged
                return
            got = bytearray()
            expect = 1
            while True:
                data, peer = await asyncio.wait_for(queue.get(), OP_TIMEOUT)
                op, block = struct.unpack("!HH", data[:4])
                if op == 5:
                    self.stats.bad("tftp", f"error {data[4:].decode(errors='replace')}")
                    return
                if op == 3 and block == expect & 0xFFFF:
                    got += data[4:]
                    transport.sendto(struct.pack("!HH", 4, block), peer)
                    expect += 1
                    if len(data) < 516:
                        break
                elif op == 3:
                    transport.sendto(struct.pack("!HH", 4, block), peer)
            if hashlib.md5(got).hexdigest() != self.args.tftp_md5:
                self.stats.bad("tftp", "file differs")
            else:
                self.stats.good("tftp")
        finally:
            transport.close()

    # ---- ipmsg ----
    async def ipmsg(self, rng, me):
        if rng.random() < 0.25:
            host, port = self.args.ipmsg.rsplit(":", 1)
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.sendto(rng.randbytes(rng.randrange(0, 300)), (host, int(port)))
            s.close()
            self.stats.good("ipmsg-junk")
            return
        packet_no = rng.randrange(10**8, 10**9)
        # SENDMSG (0x20) | SENDCHECKOPT (0x100) | UTF8OPT (0x800000)
        command = 0x20 | 0x100 | 0x800000
        msg = f"1:{packet_no}:soak{me}:soakhost:{command}:hello {me}".encode() + b"\x00"
        reply = await self.udp_round_trip(self.args.ipmsg, msg, "ipmsg", me)
        if reply is not None and str(packet_no).encode() not in reply:
            self.stats.bad("ipmsg", f"unexpected answer {reply[:80]!r}")

    async def client(self, me):
        rng = random.Random(me)
        kinds = [self.files, self.files, self.faulty, self.echo, self.chat, self.chat_deaf, self.tftp, self.ipmsg]
        job = kinds[me % len(kinds)]
        while self.running():
            try:
                await job(rng, me)
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError, KeyError) as e:
                self.stats.bad(job.__name__, repr(e))
            await asyncio.sleep(rng.uniform(0, 0.05))

    def sample(self):
        row = []
        for pid in self.args.pids:
            try:
                rss = next(int(l.split()[1]) for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS:"))
                fds = len(os.listdir(f"/proc/{pid}/fd"))
            except OSError:
                rss, fds = -1, -1
            row.append((rss, fds))
        self.samples.append((time.monotonic(), row))

    async def sampler(self):
        while self.running():
            self.sample()
            await asyncio.sleep(self.args.sample_every)

    async def run(self):
        self.sample()
        tasks = [asyncio.create_task(self.client(i)) for i in range(self.args.clients)]
        tasks.append(asyncio.create_task(self.sampler()))
        await asyncio.gather(*tasks)
        # Load over: connections close, idle members time out.
        await asyncio.sleep(self.args.settle)
        self.sample()


def check_disk(soak, root):
    problems = []
    for name, md5 in soak.acked.items():
        path = os.path.join(root, name)
        try:
            if hashlib.md5(open(path, "rb").read()).hexdigest() != md5:
                problems.append(f"acknowledged {name} differs on disk")
        except OSError:
            problems.append(f"acknowledged {name} is missing")
    for name in soak.faulty_names:
        if os.path.exists(os.path.join(root, name)):
            problems.append(f"cut-off upload {name} is under its final name")
    return problems


def main():
    p = argparse.ArgumentParser()
    for a in ("files", "echo-tcp", "echo-udp", "chat", "tftp", "ipmsg", "root", "key", "tftp-md5"):
        p.add_argument(f"--{a}", required=a != "key")
    p.add_argument("--pids", type=lambda s: [int(x) for x in s.split(",")], required=True)
    p.add_argument("--names", default="")
    p.add_argument("--duration", type=float, default=60)
    p.add_argument("--clients", type=int, default=100)
    p.add_argument("--sample-every", type=float, default=5)
    p.add_argument("--settle", type=float, default=10)
    args = p.parse_args()
    soak = Soak(args)
    started = time.time()
    asyncio.run(soak.run())
    problems = check_disk(soak, args.root)
    names = args.names.split(",") if args.names else [str(p) for p in args.pids]

    print(f"## Soak: {args.clients} clients for {args.duration:.0f} s "
          f"({time.strftime('%Y-%m-%d %H:%M', time.gmtime(started))} UTC)\n")
    print("| client | completed | failed |\n|---|---|---|")
    for kind in sorted(set(soak.stats.ok) | set(soak.stats.failed)):
        print(f"| {kind} | {soak.stats.ok.get(kind, 0)} | {soak.stats.failed.get(kind, 0)} |")
    print(f"\nAcknowledged uploads checked on disk: {len(soak.acked)}; cut-off uploads checked absent: "
          f"{len(soak.faulty_names)}.\n")
    print("| server | RSS start | RSS after warm-up | RSS peak | RSS end | fds start | fds peak | fds end |")
    print("|---|---|---|---|---|---|---|---|")
    warm = min(len(soak.samples) - 1, max(1, len(soak.samples) // 5))
    for i, name in enumerate(names):
        rss = [row[i][0] for _, row in soak.samples]
        fds = [row[i][1] for _, row in soak.samples]
        print(f"| {name} | {rss[0] // 1024} MiB | {rss[warm] // 1024} MiB | {max(rss) // 1024} MiB | "
              f"{rss[-1] // 1024} MiB | {fds[0]} | {max(fds)} | {fds[-1]} |")
        # Flat: no growth past warm-up beyond noise, and descriptors back
        # near their idle count once the load has stopped.
        if rss[-1] > rss[warm] * 1.5 + 32 * 1024:
            problems.append(f"{name}: RSS grew from {rss[warm]} KiB to {rss[-1]} KiB")
        if fds[-1] > fds[0] + 16:
            problems.append(f"{name}: {fds[-1]} fds open after the load, {fds[0]} before")
    unexpected = {k: v for k, v in soak.stats.failed.items() if k not in ("chat-deaf",)}
    if unexpected:
        problems.append(f"failed client operations: {unexpected}")
    if soak.stats.notes:
        print("\nFirst failures:\n")
        for n in soak.stats.notes:
            print(f"- {n}")
    print("\n" + ("**All checks held.**" if not problems else "**Problems:**\n\n" + "\n".join(f"- {x}" for x in problems)))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
