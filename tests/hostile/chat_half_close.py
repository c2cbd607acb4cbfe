"""`printf '/who\\n' | nc -N HOST PORT`, twenty times: every member that
half-closes at once still gets its welcome, its answer and the goodbye."""
import socket

from hostile import CHAT, connect

for round_no in range(20):
    s = connect(CHAT, source=f"127.7.0.{round_no + 1}")
    s.sendall(b"/who\n")
    s.shutdown(socket.SHUT_WR)
    got = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    text = got.decode()
    assert text.startswith("*** welcome"), (round_no, text)
    assert "here" in text.split("\n", 1)[1], (round_no, "no /who answer", text)
    assert text.rstrip().endswith("*** bye"), (round_no, text)
