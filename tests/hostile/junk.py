"""Random bytes at every port, framed and not, TCP and UDP: every server
refuses or ignores them and goes on serving."""
import os
import random
import socket
import struct

from hostile import CHAT, ECHO_UDP, FILES, TFTP, addr, connect, honest_round_trip

rng = random.Random(7)
for i in range(200):
    target = rng.choice([FILES, CHAT])
    try:
        s = connect(target, source=f"127.9.0.{i % 200 + 1}", timeout=5)
        blob = os.urandom(rng.randrange(1, 4000))
        if rng.random() < 0.5:
            blob = struct.pack("<I", rng.randrange(0, 2**32)) + blob
        s.sendall(blob)
        s.close()
    except OSError:
        pass
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(2000):
    u.sendto(os.urandom(rng.randrange(0, 1500)), addr(rng.choice([TFTP, ECHO_UDP])))
# A fresh socket: the echoes of the junk are still queued on the old one.
# UDP may lose a datagram behind a flood: ask up to five times.
v = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
v.settimeout(2)
for _ in range(5):
    v.sendto(b"still there?", addr(ECHO_UDP))
    try:
        if v.recvfrom(100)[0] == b"still there?":
            break
    except OSError:
        continue
else:
    raise AssertionError("the echo service no longer answers")
honest_round_trip()
