"""Remote exec that tries to outlive its limits: a `setsid` child past the
time limit, and a background child left behind. Replies come promptly,
and no process of either is left running."""
import os
import time

from hostile import FILES, connect, frame, recv_exact
import json
import struct


def run(command):
    s = connect(FILES)
    s.sendall(frame({"cmd": "exec", "command": command}))
    (n,) = struct.unpack("<I", recv_exact(s, 4))
    h = json.loads(recv_exact(s, n))
    body = recv_exact(s, h.get("data_size", 0))
    s.close()
    return h, body


def running(cmdline):
    for pid in os.listdir("/proc"):
        try:
            if open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").strip() == cmdline:
                return True
        except OSError:
            pass
    return False


started = time.monotonic()
h, body = run("setsid sleep 77.5; echo done")
assert h["timed_out"], h
assert time.monotonic() - started < 15, "the reply waited for the setsid child"
h, body = run("sleep 88.5 & echo started")
assert body.startswith(b"started"), body
assert time.monotonic() - started < 25
time.sleep(0.5)
assert not running(b"sleep 88.5"), "a background child outlived exec"
assert not running(b"sleep 77.5"), "a setsid child outlived exec"
