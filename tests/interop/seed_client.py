#!/usr/bin/env python3
"""The seed's FTP homework client (seed 001, MYTCPClient.put), made scriptable.

Wire behaviour kept exactly: struct.pack('i', len(header)) + the JSON header
{"cmd": "put", "filename": basename, "filesize": N}, then the file sent line
by line with socket.send. It never reads a reply.

Optional: the seed's connection authentication first (seed 001 section 13):
recv(32), then hmac.new(key, msg).digest() - HMAC-MD5, Python's old default.

After sending it prints "sent" and, like the interactive seed client waiting
at its prompt, keeps the connection open until stdin closes.
"""
import argparse
import hmac
import json
import os
import socket
import struct
import sys


def conn_auth(conn, secret_key):
    msg = conn.recv(32)
    h = hmac.new(secret_key, msg, "md5")
    digest = h.digest()
    conn.sendall(digest)


def put(sock, filename):
    filesize = os.path.getsize(filename)
    head_dic = {"cmd": "put", "filename": os.path.basename(filename), "filesize": filesize}
    head_json_bytes = bytes(json.dumps(head_dic), encoding="utf-8")
    sock.send(struct.pack("i", len(head_json_bytes)))
    sock.send(head_json_bytes)
    with open(filename, "rb") as f:
        for line in f:
            sock.sendall(line)


def get(sock, name, dest):
    """Not in the seed: the download mirror of put, for the benchmark."""
    head = json.dumps({"cmd": "get", "filename": name}).encode("utf-8")
    sock.sendall(struct.pack("i", len(head)) + head)
    header = read_reply(sock)
    remaining = header["filesize"]
    with open(dest, "wb") as f:
        while remaining:
            chunk = sock.recv(min(65536, remaining))
            if not chunk:
                raise SystemExit("server closed early")
            f.write(chunk)
            remaining -= len(chunk)


def read_reply(sock):
    """Not in the seed: used only with --read-replies to check sockit's answer."""
    def exact(n):
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    head = exact(4)
    if head is None:
        return None
    return json.loads(exact(struct.unpack("i", head)[0]).decode("utf-8"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("files", nargs="+")
    ap.add_argument("--hmac-md5-key-file")
    ap.add_argument("--read-replies", action="store_true")
    ap.add_argument("--get-into", metavar="DEST", help="download files[0] to DEST instead")
    args = ap.parse_args()

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.connect((args.host, args.port))
    if args.hmac_md5_key_file:
        with open(args.hmac_md5_key_file, "rb") as f:
            conn_auth(sock, f.read().rstrip())
    if args.get_into:
        get(sock, args.files[0], args.get_into)
        sock.close()
        return
    for name in args.files:
        try:
            put(sock, name)
            reply = read_reply(sock) if args.read_replies else None
        except (ConnectionResetError, BrokenPipeError):
            # The server hung up (a rejected key): report it like an EOF.
            print("closed", flush=True)
            break
        if args.read_replies:
            print(json.dumps(reply) if reply is not None else "closed", flush=True)
    print("sent", flush=True)
    sys.stdin.read()
    sock.close()


if __name__ == "__main__":
    main()
