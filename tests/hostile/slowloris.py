"""A slowloris from one address: it gets its share of connection slots and
no more, its trickled headers are cut off at the request deadline, and a
client from another address is served throughout."""
import socket
import struct
import time

from hostile import FILES, code, connect, request

# A 20-byte header: its first byte (0x14) is no text, so the server takes
# the connection for a framed client from the first byte on.
raw = b'{"cmd": "ls"       }'
header = struct.pack("<I", len(raw)) + raw
slow = []
for _ in range(80):
    try:
        s = connect(FILES, source="127.4.0.1")
        s.sendall(header[:1])
        slow.append(s)
    except (OSError, EOFError):
        pass  # closed at once: this address has its share
# Past the per-address cap (64) connections are closed at once.
alive = []
for s in slow:
    s.settimeout(0.2)
    try:
        gone = s.recv(1) == b""
    except OSError as e:
        gone = not isinstance(e, TimeoutError)
    if not gone:
        alive.append(s)
assert len(alive) <= 64, f"{len(alive)} connections held by one address"

honest = connect(FILES, source="127.4.0.2")
assert code(request(honest, {"cmd": "ls"})) == "ok"

# One byte every half second, far under the idle deadline: still cut off
# once the request deadline (2 s in the harness) has passed.
started = time.monotonic()
for step in range(1, 12):
    for s in alive:
        try:
            s.sendall(header[step:step + 1])
        except OSError:
            pass
    time.sleep(0.5)
cut = 0
for s in alive:
    s.settimeout(5)
    try:
        while s.recv(4096):
            pass
        cut += 1
    except (TimeoutError, socket.timeout):
        pass
    except OSError:
        cut += 1
assert cut == len(alive), f"{len(alive) - cut} tricklers survived the request deadline"
assert code(request(honest, {"cmd": "ls"})) == "ok"
