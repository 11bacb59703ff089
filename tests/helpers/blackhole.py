#!/usr/bin/env python3
"""A TCP server on loopback that accepts connections and never answers.

    tests/helpers/blackhole.py        prints the port, then serves until killed

A Kafka client that connects to it sends requests that never get a reply:
the case of a broker that hangs, which a refused port does not show.
Bytes received are read and dropped so that the client's writes succeed.
"""
import selectors
import socket
import sys

sel = selectors.DefaultSelector()
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0))
srv.listen(64)
srv.setblocking(False)
sel.register(srv, selectors.EVENT_READ)
print(srv.getsockname()[1], flush=True)
sys.stdout.close()

while True:
    for key, _ in sel.select():
        if key.fileobj is srv:
            conn, _ = srv.accept()
            conn.setblocking(False)
            sel.register(conn, selectors.EVENT_READ)
        else:
            try:
                data = key.fileobj.recv(65536)
            except OSError:
                data = b""
            if not data:
                sel.unregister(key.fileobj)
                key.fileobj.close()
