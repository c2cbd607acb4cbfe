#!/usr/bin/env python3
"""The seeds' small classic clients, made scriptable (one per subcommand).

Each keeps its seed's wire behaviour exactly; only input() became arguments.

  upper HOST PORT KEYFILE TEXT...   seed 001 section 13: HMAC-MD5 auth, then
                                    sendall(text), recv(1024), print
  time HOST PORT [FORMAT]           seed 001 "ntp": UDP sendto(format), recv(1024)
  exec HOST PORT CMD...             seed 001 section 12: send(cmd), recv(4),
                                    struct.unpack('i'), JSON header, data_size bytes
  download HOST PORT NAME DIR       seed 002 section 4.5: send(name), one
                                    recv(1024), write "[接收]"+name if anything came
"""
import hmac
import json
import os
import struct
import sys
from socket import AF_INET, SOCK_DGRAM, SOCK_STREAM, socket


def upper(host, port, keyfile, texts):
    with open(keyfile, "rb") as f:
        secret_key = f.read().rstrip()
    conn = socket(AF_INET, SOCK_STREAM)
    conn.connect((host, int(port)))
    msg = conn.recv(32)
    h = hmac.new(secret_key, msg, "md5")
    conn.sendall(h.digest())
    for data in texts:
        try:
            conn.sendall(data.encode("utf-8"))
            respone = conn.recv(1024)
        except (ConnectionResetError, BrokenPipeError):
            respone = b""
        if not respone:
            print("closed", flush=True)
            return
        print(respone.decode("utf-8"), flush=True)
    conn.close()


def time_client(host, port, fmt):
    client = socket(AF_INET, SOCK_DGRAM)
    client.settimeout(10)
    client.sendto(fmt.encode("utf-8"), (host, int(port)))
    data = client.recv(1024)
    print(data.decode("utf-8"), flush=True)


def exec_client(host, port, cmds):
    client = socket(AF_INET, SOCK_STREAM)
    client.connect((host, int(port)))
    for cmd in cmds:
        client.send(bytes(cmd, encoding="utf-8"))
        head = client.recv(4)
        head_json_len = struct.unpack("i", head)[0]
        head_json = json.loads(client.recv(head_json_len).decode("utf-8"))
        data_len = head_json["data_size"]
        recv_size = 0
        recv_data = b""
        while recv_size < data_len:
            recv_data += client.recv(1024)
            recv_size += len(recv_data)  # the seed's own accounting, kept as is
        print(recv_data.decode("utf-8"), flush=True)
    client.close()


def download(host, port, file_name, into):
    tcp_client_socket = socket(AF_INET, SOCK_STREAM)
    tcp_client_socket.connect((host, int(port)))
    tcp_client_socket.send(file_name.encode("utf-8"))
    recv_data = tcp_client_socket.recv(1024)
    if recv_data:
        with open(os.path.join(into, "[接收]" + file_name), "wb") as f:
            f.write(recv_data)
    tcp_client_socket.close()
    print("received %d" % len(recv_data), flush=True)


def main():
    what, args = sys.argv[1], sys.argv[2:]
    if what == "upper":
        upper(args[0], args[1], args[2], args[3:])
    elif what == "time":
        time_client(args[0], args[1], args[2] if len(args) > 2 else "")
    elif what == "exec":
        exec_client(args[0], args[1], args[2:])
    elif what == "download":
        download(*args)
    else:
        raise SystemExit("unknown client " + what)


if __name__ == "__main__":
    main()
