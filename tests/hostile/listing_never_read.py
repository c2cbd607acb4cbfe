"""Clients that ask for a huge recursive listing and never read it: the
listing comes in pages, so each costs the server one page, not the whole
listing (four such clients once took a server to 3.4 GiB)."""
import os

from hostile import FILES, code, connect, frame, honest_round_trip, request, rss

deep = os.path.join(os.environ["SOCKIT_ROOT"], "x" * 200, "y" * 200, "z" * 200)
os.makedirs(deep)
for i in range(4000):
    open(os.path.join(deep, f"{'n' * 200}{i}"), "w").close()
before = rss()
idle = []
for i in range(4):
    s = connect(FILES, source=f"127.6.0.{i + 1}")
    s.setsockopt(__import__("socket").SOL_SOCKET, __import__("socket").SO_RCVBUF, 4096)
    s.sendall(frame({"cmd": "ls", "recursive": True}))
    idle.append(s)
import time

time.sleep(2)
grew = rss() - before
assert grew < 48 * 1024 * 1024, f"four unread listings took {grew >> 20} MiB"
honest = connect(FILES, source="127.6.0.9")
assert code(request(honest, {"cmd": "ls"})) == "ok"
honest_round_trip()
