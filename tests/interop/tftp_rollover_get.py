"""A TFTP download client, independent of sockit, that checks what follows
block 65535. It asks for blksize 8 (so a small file crosses the wrap), and
with --ask-rollover N also sends the `rollover` option.

It expects the block after 65535 to be EXPECT (0 or 1), acknowledges every
block, writes the file, and prints `after 65535: N` for what it saw.
Anything out of order fails it (exit 1).

usage: tftp_rollover_get.py HOST PORT NAME OUTPUT EXPECT [--ask-rollover N]
"""
import socket
import struct
import sys


def main():
    host, port, name, output, expect = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
    options = [b"blksize", b"8"]
    if "--ask-rollover" in sys.argv:
        options += [b"rollover", sys.argv[sys.argv.index("--ask-rollover") + 1].encode()]
    request = struct.pack("!H", 1) + name.encode() + b"\0octet\0" + b"".join(o + b"\0" for o in options)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.settimeout(10)
    udp.sendto(request, (host, port))
    data, server = udp.recvfrom(2048)
    if struct.unpack("!H", data[:2])[0] != 6:
        print("no OACK:", data)
        return 1
    udp.sendto(struct.pack("!HH", 4, 0), server)
    expected = 1
    after_wrap = None
    previous = 0
    with open(output, "wb") as f:
        while True:
            data, peer = udp.recvfrom(2048)
            if peer != server:
                continue
            op, block = struct.unpack("!HH", data[:4])
            if op == 5:
                print("ERROR", data[4:])
                return 1
            if block == previous:
                # Our ACK was lost: say it again.
                udp.sendto(struct.pack("!HH", 4, block), server)
                continue
            if block != expected:
                print("block", block, "where", expected, "was expected")
                return 1
            if previous == 65535:
                after_wrap = block
            f.write(data[4:])
            udp.sendto(struct.pack("!HH", 4, block), server)
            previous = block
            expected = block + 1 if block < 65535 else expect
            if len(data) - 4 < 8:
                break
    print("after 65535:", after_wrap)
    return 0


if __name__ == "__main__":
    sys.exit(main())
