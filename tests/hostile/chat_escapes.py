"""Escape sequences sent to a chat room are refused, never relayed to the
other members' terminals; tabs are fine."""
from hostile import CHAT, connect

a = connect(CHAT, source="127.8.0.1")
b = connect(CHAT, source="127.8.0.2")
fa, fb = a.makefile("rb"), b.makefile("rb")
assert fa.readline().startswith(b"*** welcome")
assert fb.readline().startswith(b"*** welcome")
a.sendall(b"/nick attacker\n")
a.sendall(b"\x1b]0;owned\x07\x1b[2Jcleared\n")
a.sendall(b"tab\tok\n")
while True:
    line = fb.readline()
    assert b"\x1b" not in line, line
    if b"tab\tok" in line:
        break
while True:
    line = fa.readline()
    if b"control character" in line:
        break
