#!/usr/bin/env python3
"""Screenshots of the web page for README: files, an upload in progress,
the chat room and the dashboard, taken in headless Chromium through
chromedriver (WebDriver over plain HTTP), against a server on 127.0.0.1
with sample data. Usage: scripts/screenshots.sh [OUT_DIR]."""

import base64
import shutil
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

SOCKIT = sys.argv[1]
OUT = os.path.abspath(sys.argv[2])
PATIENCE = 60


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Driver:
    """Just enough WebDriver: a session, navigation, elements, keys, shots."""

    def __init__(self):
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["chromedriver", f"--port={self.port}"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        for line in self.proc.stdout:
            if "started successfully" in line:
                break
        caps = {
            "capabilities": {
                "alwaysMatch": {
                    "goog:chromeOptions": {
                        "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,760",
                                 "--force-device-scale-factor=1", "--lang=en-US"]
                    }
                }
            }
        }
        self.session = self.call("POST", "/session", caps)["sessionId"]

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=data, method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=PATIENCE) as r:
            return json.loads(r.read())["value"]

    def s(self, method, path, body=None):
        return self.call(method, f"/session/{self.session}{path}", body)

    def go(self, url):
        self.s("POST", "/url", {"url": url})

    def find(self, css):
        deadline = time.time() + PATIENCE
        while True:
            try:
                found = self.s("POST", "/element", {"using": "css selector", "value": css})
                return list(found.values())[0]
            except urllib.error.HTTPError:
                if time.time() > deadline:
                    raise SystemExit(f"no {css} on the page")
                time.sleep(0.1)

    def keys(self, css, text):
        self.s("POST", f"/element/{self.find(css)}/value", {"text": text})

    def click(self, css):
        self.s("POST", f"/element/{self.find(css)}/click", {})

    def text(self, css):
        return self.s("GET", f"/element/{self.find(css)}/text")

    def select(self, css, value):
        self.click(f'{css} option[value="{value}"]')

    def shot(self, name):
        png = base64.b64decode(self.s("GET", "/screenshot"))
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(png)
        print(f"wrote {os.path.join(OUT, name)}")

    def quit(self):
        try:
            self.s("DELETE", "")
        finally:
            self.proc.terminate()
            self.proc.wait()


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def chat_member(addr, lines, nick):
    host, port = addr.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)))
    sock.sendall(f"/nick {nick}\n".encode())
    for line in lines:
        time.sleep(0.2)
        sock.sendall((line + "\n").encode())
    return sock


def slow_relay(upstream, rate):
    """A one-connection relay that passes the client's bytes at `rate`/s."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def run():
        client, _ = listener.accept()
        host, port = upstream.rsplit(":", 1)
        server = socket.create_connection((host, int(port)))
        threading.Thread(target=lambda: pump(server, client, None), daemon=True).start()
        pump(client, server, rate)

    def pump(src, dst, rate):
        while True:
            data = src.recv(rate // 20 if rate else 65536)
            if not data:
                break
            dst.sendall(data)
            if rate:
                time.sleep(0.05)

    threading.Thread(target=run, daemon=True).start()
    return f"127.0.0.1:{listener.getsockname()[1]}"


def main():
    os.makedirs(OUT, exist_ok=True)
    work = tempfile.mkdtemp(prefix="sockit-shots-")
    env = dict(os.environ, XDG_CONFIG_HOME=os.path.join(work, "config"), HOME=work, SOCKIT_LOG="warn")
    root = os.path.join(work, "sockit-data")
    for name, size in [("photos/2026/lake.jpg", 2_400_000), ("photos/2026/harbour.jpg", 3_100_000),
                       ("photos/cat.png", 820_000), ("docs/report-2026.pdf", 1_250_000),
                       ("docs/报告.txt", 4_096), ("video.mp4", 48_000_000), ("notes.md", 2_300),
                       ("firmware/router-v2.bin", 16_777_216)]:
        write(os.path.join(root, name), os.urandom(min(size, 1 << 16)) * (size // (1 << 16) or 1))
    with open(os.path.join(work, "sockit.toml"), "w") as f:
        f.write(f'[[service]]\nkind = "files"\nlisten = "127.0.0.1:0"\nroot = "{root}"\n\n'
                f'[[service]]\nkind = "chat"\nlisten = "127.0.0.1:0"\ninsecure_no_auth = true\n\n'
                f'[[service]]\nkind = "web"\nlisten = "127.0.0.1:0"\nroot = "{root}"\nassistant = true\n')
    write(os.path.join(work, "config", "sockit", "assistant.toml"),
          b'[[send]]\nname = "read-reg"\nhex = "01 03 00 10 00 01"\nappend = ["crc16-modbus"]\n'
          b'[[send]]\nname = "status"\ntext = "STATUS?\\n"\n'
          b'[[send]]\nname = "ping"\ntext = "PING {{seq}}\\n"\n')
    serve = subprocess.Popen([SOCKIT, "serve", "--config", "sockit.toml"], cwd=work, env=env,
                             stdout=subprocess.PIPE, text=True)
    lines = [serve.stdout.readline().strip() for _ in range(4)]
    files_addr = lines[0].split(" ")[3]
    chat_addr = lines[1].split(" ")[3]
    url = lines[3].removeprefix("web: ")
    driver = Driver()
    members = []
    put = None
    try:
        driver.go(url)
        driver.find('#entries tr[data-name="photos"]')
        time.sleep(0.3)
        driver.shot("files.png")

        big = os.path.join(work, "pick", "holiday-2026.mov")
        os.makedirs(os.path.dirname(big), exist_ok=True)
        with open(big, "wb") as f:
            f.truncate(3 << 30)
        small = os.path.join(work, "pick", "slides.pdf")
        write(small, os.urandom(1 << 20))
        driver.keys("#pick-files", f"{big}\n{small}")
        driver.find('#transfer-list li[data-state="running"]')
        time.sleep(1.5)
        driver.shot("upload.png")
        driver.go(url.split("#")[0] + "#/")

        members.append(chat_member(chat_addr, ["anyone tried the new TFTP remap rules?",
                                               "yes: the PXE ROM asks for PXELINUX.0 in capitals"], "alice"))
        members.append(chat_member(chat_addr, ["/me waves", "I'll push the firmware at 14:00 (固件 v2)"], "bob"))
        time.sleep(1.0)
        driver.click("#nav-chat")
        driver.find("#chat-lines li:nth-child(4)")
        driver.keys("#chat-input", "/nick carol\n")
        time.sleep(0.3)
        driver.keys("#chat-input", "thanks, I'll watch it on the dashboard\n")
        time.sleep(0.5)
        driver.shot("chat.png")

        write(os.path.join(work, "iso", "debian-13.iso"), b"\0" * (256 << 20))
        relay = slow_relay(files_addr, 6 << 20)
        put = subprocess.Popen([SOCKIT, "put", relay, "iso/debian-13.iso", "isos/"], cwd=work, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        driver.click("#nav-dashboard")
        driver.find('#live-transfers li[data-kind="put"]')
        time.sleep(2.5)
        driver.shot("dashboard.png")

        driver.click("#nav-assistant")
        driver.select("#as-kind", "tcp-server")
        driver.keys("#as-bind", "127.0.0.1:0")
        driver.click("#as-open button[type=submit]")
        while "local 127.0.0.1:" not in driver.text("#as-state"):
            time.sleep(0.1)
        port = int(driver.text("#as-state").rsplit(":", 1)[1])
        driver.click("#as-rules-box summary")
        driver.keys("#as-rules", "[[rule]]\nregex = '^PING (\\d+)$'\nreply = \"PONG {{1}} at {{time:%H:%M:%S}}\"\n")
        driver.click("#as-rules-on")
        driver.click("#as-rules-apply")
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
        time.sleep(0.5)
        clients[0].sendall("PING 1\nhello from the sensor, 温度 21.5°C\n".encode())
        clients[1].sendall(b"\x01\x03\x02\x00\x10\xb9\x88")
        time.sleep(0.4)
        driver.keys("#as-text", "SET RATE 10\n")
        driver.click("#as-send-button")
        time.sleep(0.3)
        clients[0].sendall(b"PING 2\nOK rate=10\n")
        time.sleep(0.8)
        driver.s("POST", "/execute/sync", {"script": "window.scrollTo(0, 0)", "args": []})
        time.sleep(0.2)
        driver.shot("assistant.png")
        for c in clients:
            c.close()
    finally:
        if put:
            put.kill()
        for m in members:
            m.close()
        driver.quit()
        serve.terminate()
        serve.wait()
        shutil.rmtree(work, ignore_errors=True)


main()
