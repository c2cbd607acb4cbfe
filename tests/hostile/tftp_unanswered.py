"""Read requests nobody acknowledges, as a forger sends them: 256 with
blksize 8 (each would cut a file into tens of thousands of packets) cost
the server almost no memory."""
import os
import socket

from hostile import ROOT, TFTP, addr, rss

with open(os.path.join(ROOT, "f.bin"), "wb") as f:
    f.write(os.urandom(256 * 1024))
before = rss()
socks = []
for i in range(256):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind((f"127.5.{i // 16}.{i % 16 + 1}", 0))  # 16 addresses per /24
    u.settimeout(10)
    u.sendto(b"\x00\x01f.bin\x00octet\x00blksize\x008\x00", addr(TFTP))
    socks.append(u)
answered = 0
for u in socks:
    try:
        u.recvfrom(2048)
        answered += 1
    except OSError:
        pass
assert answered == 256, f"only {answered} of 256 requests were answered"
grew = rss() - before
assert grew < 64 * 1024 * 1024, f"256 unanswered transfers took {grew >> 20} MiB"
