#!/usr/bin/env python3
"""Benchmark baseline: socketserver.ThreadingTCPServer echo, as in the seeds."""
import socket
import socketserver
import sys


class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            data = self.request.recv(65536)
            if not data:
                break
            self.request.sendall(data)


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024


host, port = sys.argv[1].rsplit(":", 1)
server = Server((host, int(port)), Echo)
print("listening on %s:%d" % server.server_address, flush=True)
server.serve_forever()
