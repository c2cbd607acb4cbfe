"""Shared helpers for the hostile-peer checks in this folder.

Each check is a script run by tests/hostile_peers.rs against a live
`sockit serve --config` (files with exec, echo, chat, TFTP, download) on
127.0.0.1. The harness passes the addresses and the server's PID in the
environment; a check exits 0 when the server held, and anything else (an
assertion, a hang past its own deadline) fails the test. Python's standard
library only: these are the peers a student could write.
"""
import hmac
import json
import os
import socket
import struct
import time

FILES = os.environ.get("SOCKIT_FILES", "")
ECHO_TCP = os.environ.get("SOCKIT_ECHO_TCP", "")
ECHO_UDP = os.environ.get("SOCKIT_ECHO_UDP", "")
CHAT = os.environ.get("SOCKIT_CHAT", "")
TFTP = os.environ.get("SOCKIT_TFTP", "")
DOWNLOAD = os.environ.get("SOCKIT_DOWNLOAD", "")
ROOT = os.environ.get("SOCKIT_ROOT", "")
PID = int(os.environ.get("SOCKIT_PID", "0"))
KEY = open(os.environ["SOCKIT_KEY"], "rb").read().rstrip() if os.environ.get("SOCKIT_KEY") else None

PATIENCE = 20


def addr(text):
    host, port = text.rsplit(":", 1)
    return host, int(port)


def connect(where, source="127.0.0.1", auth=True, timeout=PATIENCE):
    s = socket.socket()
    s.settimeout(timeout)
    s.bind((source, 0))
    s.connect(addr(where))
    if auth and KEY:
        challenge = recv_exact(s, 32)
        s.sendall(hmac.new(KEY, challenge, "sha256").digest())
    return s


def recv_exact(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise EOFError(f"closed after {len(out)} of {n} bytes")
        out += chunk
    return out


def frame(header, body=b""):
    raw = json.dumps(header).encode()
    return struct.pack("<I", len(raw)) + raw + body


def reply(s):
    """One reply header, its body skipped."""
    (n,) = struct.unpack("<I", recv_exact(s, 4))
    h = json.loads(recv_exact(s, n))
    size = h.get("data_size", h.get("filesize", 0)) - h.get("offset", 0)
    if size:
        recv_exact(s, size)
    return h


def code(h):
    return "ok" if h.get("status") == "ok" else h.get("code")


def request(s, header, body=b""):
    s.sendall(frame(header, body))
    return reply(s)


def closed_within(s, seconds):
    """True if the server closed `s` within `seconds`."""
    s.settimeout(seconds)
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            if not s.recv(65536):
                return True
    except (socket.timeout, TimeoutError):
        return False
    except OSError:
        return True
    return False


def rss():
    for line in open(f"/proc/{PID}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def fds():
    return len(os.listdir(f"/proc/{PID}/fd"))


def honest_round_trip(source="127.0.0.9"):
    """The server still serves: an upload and its download, from an
    address no check has used."""
    s = connect(FILES, source=source)
    data = os.urandom(5000)
    assert code(request(s, {"cmd": "put", "filename": "honest.bin", "filesize": len(data)}, data)) == "ok"
    s.sendall(frame({"cmd": "get", "filename": "honest.bin"}))
    (n,) = struct.unpack("<I", recv_exact(s, 4))
    h = json.loads(recv_exact(s, n))
    assert h["status"] == "ok", h
    assert recv_exact(s, h["filesize"]) == data
    s.close()
