"""A local user's `current -> .` link: through it, no peer reaches the
server's private folder (partial uploads) by any request."""
import os
import time

from hostile import FILES, ROOT, code, connect, frame, honest_round_trip, reply, request

os.symlink(".", os.path.join(ROOT, "current"))
# An interrupted verified upload leaves a partial behind.
s = connect(FILES)
s.sendall(frame({"cmd": "put", "filename": "victim.bin", "filesize": 1000, "verify": "xxh3"}, b"x" * 300))
s.close()
partials = os.path.join(ROOT, ".sockit", "partial")
deadline = time.monotonic() + 20
while not any(n.endswith(".part") for n in os.listdir(partials)):
    assert time.monotonic() < deadline, "no partial was kept"
    time.sleep(0.02)
part = next(n for n in os.listdir(partials) if n.endswith(".part"))

s = connect(FILES)
for req in [
    {"cmd": "ls", "path": "current/.sockit"},
    {"cmd": "get", "filename": f"current/.sockit/partial/{part}"},
    {"cmd": "stat", "path": "current/.sockit/partial"},
    {"cmd": "rm", "path": "current/.sockit", "recursive": True},
    {"cmd": "mkdir", "path": "current/.sockit/planted"},
]:
    assert code(request(s, req)) == "bad_path", req
listing = request(s, {"cmd": "ls", "path": "current", "recursive": True})
assert code(listing) == "ok"
assert os.path.exists(os.path.join(partials, part)), "the partial was touched"
honest_round_trip()
