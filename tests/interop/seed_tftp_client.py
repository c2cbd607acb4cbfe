"""The TFTP download client of the course notes (seed 004, "tftp-download"),
in Python 3: the request packed with struct ("!H%dsb5sb"), DATA blocks
acknowledged as they come, the block counter wrapped to 0 after 65535, and
the transfer over at the first datagram shorter than 516 bytes.

Two changes only, so it can run in a test: the server's address, port and
the output path come from argv, and a receive timeout ends a hung run.

usage: seed_tftp_client.py HOST PORT NAME OUTPUT
"""
import struct
import sys
from socket import AF_INET, SOCK_DGRAM, socket


def main():
    host, port, name, output = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    udp = socket(AF_INET, SOCK_DGRAM)
    udp.settimeout(30)
    request = struct.pack("!H%dsb5sb" % len(name), 1, name.encode("utf-8"), 0, b"octet", 0)
    udp.sendto(request, (host, port))
    ok = True
    num = 0
    with open(output, "wb") as f:
        while True:
            data, server = udp.recvfrom(1024)
            op = struct.unpack("!H", data[:2])[0]
            block = struct.unpack("!H", data[2:4])[0]
            if op == 3:
                num = num + 1
                if num == 65536:
                    num = 0
                if num == block:
                    f.write(data[4:])
                udp.sendto(struct.pack("!HH", 4, block), server)
            elif op == 5:
                print("error %d: %s" % (block, data[4:-1].decode("utf-8", "replace")))
                ok = False
            if len(data) < 516:
                break
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
