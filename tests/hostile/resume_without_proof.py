"""Resuming someone else's interrupted upload: without "verify" it is
refused before a byte is appended; with a prefix that is not the kept
partial's it is refused too, and the partial stays for its owner."""
import os
import socket
import time

from hostile import FILES, closed_within, code, connect, frame, request

a = os.urandom(100_000)
b = os.urandom(100_000)
s = connect(FILES)
s.sendall(frame({"cmd": "put", "filename": "mixed.bin", "filesize": len(a), "verify": "xxh3"}, a[:40_000]))
# Cut off mid-body, and wait until the server has noticed (it keeps the
# partial, then closes): a resume asked before would race the upload.
s.shutdown(socket.SHUT_WR)
assert closed_within(s, 20), "the server never closed the cut-off upload"
s = connect(FILES)
deadline = time.monotonic() + 20
while True:
    r = request(s, {"cmd": "resume", "filename": "mixed.bin", "size": 100_000})
    if code(r) == "ok" and r["offset"] == 40_000:
        break
    assert time.monotonic() < deadline, r
    time.sleep(0.02)
r = request(s, {"cmd": "put", "filename": "mixed.bin", "filesize": 100_000, "offset": 40_000}, b[40_000:])
assert code(r) == "bad_request", r
r = request(
    s,
    {"cmd": "put", "filename": "mixed.bin", "filesize": 100_000, "offset": 40_000, "verify": "xxh3",
     "prefix_xxh3": "0" * 32},
    b[40_000:],
)
assert code(r) == "checksum_mismatch", r
s.sendall(frame({"cmd": "commit", "xxh3": "0" * 32}))  # the refused put's trailer, discarded
r = request(s, {"cmd": "resume", "filename": "mixed.bin", "size": 100_000})
assert r["offset"] == 40_000, r
assert code(request(s, {"cmd": "stat", "path": "mixed.bin"})) == "not_found"
