#!/usr/bin/env python3
"""The seed's FtpServer (seed 001, the socketserver version), made testable.

Wire behaviour kept: read 4 bytes, struct.unpack('i'), read the JSON header,
dispatch on "cmd"; put() receives exactly "filesize" bytes into server_dir and
sends nothing back. Changes for testing only: it binds the address given on
the command line (port 0 allowed), prints "listening on HOST:PORT" first,
reads exact byte counts, keeps names inside server_dir, and prints
"stored NAME SIZE" after each complete file.
"""
import json
import os
import socketserver
import struct
import sys


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(min(65536, n - len(buf)))
        if not chunk:
            return None
        buf += chunk
    return buf


class FtpServer(socketserver.BaseRequestHandler):
    coding = "utf-8"
    server_dir = None

    def handle(self):
        while True:
            data = recv_exact(self.request, 4)
            if data is None:
                break
            data_len = struct.unpack("i", data)[0]
            head_dic = json.loads(recv_exact(self.request, data_len).decode(self.coding))
            cmd = head_dic["cmd"]
            if hasattr(self, cmd):
                getattr(self, cmd)(head_dic)

    def put(self, args):
        name = os.path.basename(args["filename"])
        file_path = os.path.join(self.server_dir, name)
        filesize = args["filesize"]
        recv_size = 0
        with open(file_path, "wb") as f:
            while recv_size < filesize:
                recv_data = self.request.recv(min(1024, filesize - recv_size))
                if not recv_data:
                    return
                f.write(recv_data)
                recv_size += len(recv_data)
        print("stored %s %d" % (name, recv_size), flush=True)

    def get(self, args):
        """Not in the seed (it only uploads): the mirror of put in the seed's
        style, a {"filesize": N} header then the bytes. Used as the Python
        baseline for downloads in scripts/bench-files.sh."""
        file_path = os.path.join(self.server_dir, os.path.basename(args["filename"]))
        filesize = os.path.getsize(file_path)
        head = json.dumps({"filesize": filesize}).encode(self.coding)
        self.request.sendall(struct.pack("i", len(head)) + head)
        with open(file_path, "rb") as f:
            while True:
                chunk = f.read(65536)
                if not chunk:
                    break
                self.request.sendall(chunk)


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    FtpServer.server_dir = sys.argv[2]
    server = socketserver.ThreadingTCPServer((host, int(port)), FtpServer)
    print("listening on %s:%d" % server.server_address, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
