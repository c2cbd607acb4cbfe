"""A named pipe in the served folder, asked for by every protocol that
serves files: each refuses it at once, and the server keeps serving."""
import os
import socket
import struct
import threading
import time

from hostile import DOWNLOAD, FILES, ROOT, TFTP, addr, code, connect, honest_round_trip, request

os.mkfifo(os.path.join(ROOT, "pipe"))
started = time.monotonic()

# The file service, from many connections at once (more than a blocking
# pool would have threads, had any request blocked in open(2)).
results = []


def get_pipe(i):
    s = connect(FILES, source=f"127.3.{i // 200}.{i % 200 + 1}")
    results.append(code(request(s, {"cmd": "get", "filename": "pipe"})))
    s.close()


threads = [threading.Thread(target=get_pipe, args=(i,)) for i in range(300)]
for t in threads:
    t.start()
for t in threads:
    t.join(30)
assert results.count("permission_denied") == 300, results[:5]

# The one-shot download service: nothing sent, connection closed.
s = connect(DOWNLOAD)
s.sendall(b"pipe")
s.settimeout(10)
assert s.recv(100) == b"", "the download service sent bytes for a pipe"

# TFTP: an ERROR (access violation), at once.
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(10)
u.sendto(b"\x00\x01pipe\x00octet\x00", addr(TFTP))
data, _ = u.recvfrom(1000)
assert struct.unpack("!HH", data[:4]) == (5, 2), data

assert time.monotonic() - started < 30, "refusals were slow"
honest_round_trip()
