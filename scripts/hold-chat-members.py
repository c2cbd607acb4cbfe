#!/usr/bin/env python3
"""Joins N members to a chat room (keyless: --insecure-no-auth), one at a
time, reads everything the room sends them, prints `holding N` once the
room is quiet, and holds them until stdin closes. For measuring what a
member costs the server: read its RSS (VmRSS in /proc/PID/status) before
and after.

    sockit chat serve --listen 127.0.0.1:7950 --insecure-no-auth --max-per-peer 20000 &
    scripts/hold-chat-members.py 127.0.0.1:7950 2000
"""
import resource
import selectors
import socket
import sys
import time


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    count = int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_NOFILE, (count + 100, max(count + 100, resource.getrlimit(resource.RLIMIT_NOFILE)[1])))
    sel = selectors.DefaultSelector()
    members = []

    def drain(seconds):
        end = time.time() + seconds
        while time.time() < end:
            for key, _ in sel.select(timeout=0.2):
                try:
                    if not key.fileobj.recv(1 << 16):
                        sel.unregister(key.fileobj)
                except BlockingIOError:
                    pass

    for i in range(count):
        s = socket.create_connection((host, int(port)), timeout=10)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        members.append(s)
        if i % 200 == 0:
            drain(0.01)
    drain(3)
    print("holding", count, flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
