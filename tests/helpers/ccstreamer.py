#!/usr/bin/env python3
"""ccstreamer.py - a stand-in for CryptoCompare's WebSocket streamer
(wss://streamer.cryptocompare.com/v2), for dp-fetch stream's tests and
benchmark.

Standard library only: the WebSocket server side of RFC 6455 (the upgrade,
text, close, ping and pong frames) is written out below.  Binds 127.0.0.1 on
a free port and writes the port to --port-file (atomically, so a test can
poll for the file).  Plays a scenario (a JSON file):

    {"connections": [CONN, CONN, ...], "expect_key": "KEY"}

The n-th connection plays the n-th CONN; the last one plays for all later
connections.  expect_key (also $CC_EXPECT_KEY) is what "Authorization:
Apikey KEY" must carry for auth_ok in the log.  A CONN is:

    {"http_status": N}        refuse the upgrade with HTTP N
    {"steps": [STEP, ...]}    accept it, then play the steps in order

A STEP is one of:

    {"msg": "FILE:LINE"}      send line LINE (from 1) of fixture FILE as it is
    {"msgs": "FILE"}          send every line of fixture FILE
    {"send": VALUE}           send VALUE as compact JSON
    {"raw": "TEXT"}           send TEXT as it is (malformed messages)
    {"await": "SubAdd"}       read client messages until one with that action
    {"ack": {"refuse": {SUB: INFO, ...}}}
                              answer the last SubAdd: SUBSCRIBECOMPLETE (16)
                              for each sub, or INVALID_SUB (500) with INFO for
                              the refused ones, then LOADCOMPLETE (3), in the
                              documented formats
    {"burst": [STEP, ...]}    play the steps (msg, send, raw, ack) into one
                              send, so the client reads them all at once
    {"sleep": SECONDS}
    {"every": SECONDS, "send": VALUE | "msg": "FILE:LINE", "times": N}
                              send it every SECONDS, N times (default: until
                              the client leaves)
    {"flood": "FILE", "times": N}
                              send all lines of FILE N times, as fast as the
                              socket takes them (frames are built once)
    {"drop": true}            end the TCP connection without a close frame
    {"close": CODE}           send a close frame and end
    {"hold": true}            send nothing more; answer pings and a close
                              (also what happens after the last step)

With --tls-cert FILE --tls-key FILE it speaks TLS (wss://), with that
certificate.

Every connection is logged to --log as JSON lines: {"n", "event": "upgrade",
"path", "query", "auth" (whether an Authorization header came), "auth_scheme",
"auth_ok" (null without expect_key), "ua"}, then {"n", "event": "recv",
"msg": MESSAGE} for each client message, {"n", "event": "close", "code"}
when the client closes, {"n", "event": "eof"} when it just goes away, and
{"n", "event": "end"} when the server is done with it.  The key itself is
never logged.
"""
import base64
import hashlib
import json
import os
import select
import socket
import socketserver
import ssl
import struct
import threading
import time
from urllib.parse import parse_qsl, urlsplit

import serverlib

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"   # RFC 6455 section 1.3


class Gone(Exception):
    """The client went away (EOF, reset, or its close frame)."""


def frame(payload, opcode=1):
    n = len(payload)
    if n < 126:
        hdr = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 65536:
        hdr = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        hdr = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return hdr + payload


class Conn:
    def __init__(self, server, sock, n):
        self.srv = server
        self.sock = sock
        self.n = n
        self.buf = b""
        self.last_subs = []
        self.pending = None     # frames held back for one send (a burst)

    def log(self, **kv):
        self.srv.log(dict(n=self.n, **kv))

    def recv_exact(self, k):
        while len(self.buf) < k:
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, OSError):
                chunk = b""
            if not chunk:
                self.log(event="eof")
                raise Gone()
            self.buf += chunk
        out, self.buf = self.buf[:k], self.buf[k:]
        return out

    def read_frame(self):
        """One client frame: (opcode, payload), answering pings and closes."""
        b0, b1 = self.recv_exact(2)
        op, n = b0 & 0x0F, b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self.recv_exact(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self.recv_exact(8))[0]
        mask = self.recv_exact(4) if b1 & 0x80 else b"\0\0\0\0"
        data = self.recv_exact(n)
        key = int.from_bytes((mask * (n // 4 + 1))[:n], "big") if n else 0
        payload = (int.from_bytes(data, "big") ^ key).to_bytes(n, "big") if n else b""
        if op == 8:
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
            self.log(event="close", code=code)
            self.send_raw(frame(payload[:2], 8))
            raise Gone()
        if op == 9:
            self.send_raw(frame(payload, 10))
        return op, payload

    def read_message(self):
        while True:
            op, payload = self.read_frame()
            if op in (1, 2):
                text = payload.decode("utf-8", "replace")
                try:
                    msg = json.loads(text)
                except ValueError:
                    msg = text
                self.log(event="recv", msg=msg)
                return msg

    def send_raw(self, data):
        if self.pending is not None:
            self.pending += data
            return
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.log(event="eof")
            raise Gone()

    def send_text(self, text):
        self.send_raw(frame(text.encode() if isinstance(text, str) else text))

    def hold(self, until=None):
        """Answer the client until it leaves, or until the time until."""
        while True:
            wait = None if until is None else max(0.0, until - time.monotonic())
            if until is not None and wait == 0.0 and not self.buf:
                return
            if self.buf or select.select([self.sock], [], [], wait)[0]:
                self.read_message()

    def play(self, steps, inner=False):
        for st in steps:
            if "msg" in st and "every" not in st:
                self.send_text(self.srv.line(st["msg"]))
            elif "msgs" in st:
                for line in self.srv.lines(st["msgs"]):
                    self.send_text(line)
            elif "send" in st and "every" not in st:
                self.send_text(json.dumps(st["send"], separators=(",", ":")))
            elif "raw" in st:
                self.send_text(st["raw"])
            elif "await" in st:
                while True:
                    msg = self.read_message()
                    if isinstance(msg, dict) and msg.get("action") == st["await"]:
                        self.last_subs = msg.get("subs", [])
                        break
            elif "ack" in st:
                refuse = st["ack"].get("refuse", {})
                for sub in self.last_subs:
                    if sub in refuse:
                        m = {"TYPE": "500", "MESSAGE": "INVALID_SUB", "PARAMETER": sub,
                             "INFO": refuse[sub]}
                    else:
                        m = {"TYPE": "16", "MESSAGE": "SUBSCRIBECOMPLETE", "SUB": sub}
                    self.send_text(json.dumps(m, separators=(",", ":")))
                self.send_text('{"TYPE":"3","MESSAGE":"LOADCOMPLETE",'
                               '"INFO":"All your valid subs have been loaded."}')
            elif "burst" in st:
                self.pending = b""
                self.play(st["burst"], inner=True)
                data, self.pending = self.pending, None
                self.send_raw(data)
            elif "sleep" in st:
                self.hold(time.monotonic() + float(st["sleep"]))
            elif "every" in st:
                text = (self.srv.line(st["msg"]) if "msg" in st
                        else json.dumps(st["send"], separators=(",", ":")))
                n = int(st.get("times", 0))
                while n == 0 or n > 0:
                    self.send_text(text)
                    self.hold(time.monotonic() + float(st["every"]))
                    if n:
                        n -= 1
                        if n == 0:
                            break
            elif "flood" in st:
                block = b"".join(frame(l.encode()) for l in self.srv.lines(st["flood"]))
                for _ in range(int(st.get("times", 1))):
                    self.send_raw(block)
            elif "drop" in st:
                return "drop"
            elif "close" in st:
                self.send_raw(frame(struct.pack("!H", int(st["close"])), 8))
                self.hold(time.monotonic() + 2)
                return "closed"
            elif "hold" in st:
                break
        if not inner:
            self.hold()


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        srv = self.server
        sock = self.request
        with srv.lock:
            srv.count += 1
            n = srv.count
        conns = srv.spec.get("connections", [{"steps": []}])
        spec = conns[min(n, len(conns)) - 1]
        c = Conn(srv, sock, n)
        try:
            if srv.tls:
                try:
                    sock = c.sock = srv.tls.wrap_socket(sock, server_side=True)
                except (ssl.SSLError, OSError) as e:
                    c.log(event="tls_error", error=str(e))
                    return
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(4096)
                if not chunk:
                    return
                head += chunk
            head, c.buf = head.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            target = lines[0].split(" ")[1] if len(lines[0].split(" ")) > 1 else "/"
            hdrs = {}
            for ln in lines[1:]:
                k, _, v = ln.partition(":")
                hdrs[k.strip().lower()] = v.strip()
            auth = hdrs.get("authorization")
            url = urlsplit(target)
            c.log(event="upgrade", path=url.path,
                  query=dict(parse_qsl(url.query, keep_blank_values=True)),
                  auth=auth is not None,
                  auth_scheme=auth.split(" ", 1)[0] if auth else None,
                  auth_ok=(auth == "Apikey " + srv.expect_key) if srv.expect_key else None,
                  ua=hdrs.get("user-agent"))
            if "http_status" in spec:
                st = int(spec["http_status"])
                body = b'{"Response":"Error"}'
                sock.sendall(b"HTTP/1.1 %d Refused\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                             % (st, len(body), body))
                return
            key = hdrs.get("sec-websocket-key", "").encode()
            accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
            sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
            c.play(spec.get("steps", []))
        except Gone:
            pass
        finally:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.log(event="end")


class Server(serverlib.Quiet, socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, spec, fixtures, log_path):
        super().__init__(addr, Handler)
        self.spec = spec
        self.expect_key = spec.get("expect_key") or os.environ.get("CC_EXPECT_KEY")
        self.fixtures = fixtures
        self.log_path = log_path
        self.lock = threading.Lock()
        self.count = 0
        self.cache = {}

    def lines(self, name):
        with self.lock:
            if name not in self.cache:
                with open(os.path.join(self.fixtures, name), encoding="utf-8") as f:
                    self.cache[name] = [l.rstrip("\n") for l in f if l.strip()]
            return self.cache[name]

    def line(self, ref):
        name, _, num = ref.rpartition(":")
        return self.lines(name)[int(num) - 1]

    def log(self, rec):
        rec["t"] = time.time()
        with self.lock, open(self.log_path, "a") as f:
            f.write(json.dumps(rec) + "\n")


def main():
    a = serverlib.command_line(__doc__, [("--tls-cert", "certificate (PEM): speak TLS"),
                                         ("--tls-key", "its private key (PEM)")])
    spec = serverlib.scenario(a)
    srv = Server(("127.0.0.1", 0), spec, a.fixtures, a.log)
    srv.tls = None
    if a.tls_cert:
        srv.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        srv.tls.load_cert_chain(a.tls_cert, a.tls_key)
    serverlib.announce(a, srv.server_address[1])
    srv.serve_forever()


if __name__ == "__main__":
    main()
