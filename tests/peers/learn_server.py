#!/usr/bin/python3
"""Plaintext server peer for the tlsshim --learn tests.

Speaks a small redis (RESP arrays: PING, SET, GET, QUIT) or HTTP/1.0 (GET
answers 200 with the bytes of --body-file) in plaintext. With --tls-cert
and --tls-key it also speaks TLS on the same port: a connection whose first
byte is 0x16 (a TLS handshake record) is wrapped in TLS first, as servers
that accept both on one port do. --dual listens on [::] for IPv4 and IPv6
alike (for clients that look up "localhost"). With --info, appends one JSON
line per connection when it ends: conn (1-based), peer, tls (bool),
requests (the commands or methods received), set_sha256 (SHA-256 of the
last SET value, or null), end ("eof", "error: TEXT"). Prints READY once
listening.
"""

import argparse
import hashlib
import json
import socket
import ssl
import sys
import threading

lock = threading.Lock()
store = {}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--dual", action="store_true",
                   help="listen on [::] for IPv4 and IPv6")
    p.add_argument("--proto", choices=("redis", "http"), required=True)
    p.add_argument("--tls-cert", help="also speak TLS on the same port")
    p.add_argument("--tls-key")
    p.add_argument("--body-file", help="http: the body of every GET")
    p.add_argument("--info", help="append one JSON line per connection")
    return p.parse_args()


class Reader:
    """Buffered reads of lines and counted bytes from a socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        self.buf += data

    def line(self, limit=1 << 16):
        while b"\r\n" not in self.buf:
            if len(self.buf) > limit:
                raise ValueError("line too long")
            self.fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def exactly(self, n):
        while len(self.buf) < n:
            self.fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data


def serve_redis(rd, sock, info):
    while True:
        head = rd.line()
        if not head.startswith(b"*"):
            sock.sendall(b"-ERR protocol error\r\n")
            raise ValueError("not RESP")
        args = []
        for _ in range(int(head[1:])):
            size = rd.line()
            if not size.startswith(b"$"):
                raise ValueError("bad bulk")
            args.append(rd.exactly(int(size[1:]) + 2)[:-2])
        cmd = args[0].upper().decode("ascii", "replace")
        info["requests"].append(cmd)
        if cmd == "PING":
            sock.sendall(b"+PONG\r\n")
        elif cmd == "SET" and len(args) == 3:
            with lock:
                store[args[1]] = args[2]
            info["set_sha256"] = hashlib.sha256(args[2]).hexdigest()
            sock.sendall(b"+OK\r\n")
        elif cmd == "GET" and len(args) == 2:
            with lock:
                value = store.get(args[1])
            if value is None:
                sock.sendall(b"$-1\r\n")
            else:
                sock.sendall(b"$%d\r\n%s\r\n" % (len(value), value))
        elif cmd == "QUIT":
            sock.sendall(b"+OK\r\n")
            return
        else:
            sock.sendall(b"-ERR unknown command\r\n")


def serve_http(rd, sock, info, body):
    request = rd.line()
    while rd.line() != b"":
        pass
    method = request.split(b" ", 1)[0].decode("ascii", "replace")
    info["requests"].append(method)
    if method != "GET":
        sock.sendall(b"HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        return
    sock.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n"
                 b"Connection: close\r\n\r\n" % len(body) + body)


def handle(args, ctx, body, conn_no, sock, peer):
    info = {"conn": conn_no, "peer": "%s:%d" % (peer[0], peer[1]),
            "tls": False, "requests": [], "set_sha256": None, "end": "eof"}
    try:
        sock.settimeout(10)
        first = sock.recv(1, socket.MSG_PEEK)
        if ctx is not None and first == b"\x16":
            sock = ctx.wrap_socket(sock, server_side=True)
            info["tls"] = True
        elif not (first == b"*" or b"A" <= first <= b"Z"):
            # neither RESP nor an HTTP method: answer at once, as
            # servers do, rather than wait for a line that never comes
            sock.sendall(b"-ERR protocol error\r\n" if args.proto == "redis"
                         else b"HTTP/1.0 400 Bad Request\r\n\r\n")
            raise ValueError("not %s" % args.proto)
        rd = Reader(sock)
        if args.proto == "redis":
            serve_redis(rd, sock, info)
        else:
            serve_http(rd, sock, info, body)
    except EOFError:
        pass
    except (OSError, ValueError, ssl.SSLError) as e:
        info["end"] = "error: %s" % e
    finally:
        try:
            sock.close()
        except OSError:
            pass
    if args.info:
        with lock, open(args.info, "a") as f:
            f.write(json.dumps(info) + "\n")


def main():
    args = parse_args()
    ctx = None
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
    body = b""
    if args.body_file:
        with open(args.body_file, "rb") as f:
            body = f.read()
    if args.dual:
        ls = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        ls.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        addr = ("::", args.port)
    else:
        family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
        ls = socket.socket(family, socket.SOCK_STREAM)
        addr = (args.host, args.port)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(addr)
    ls.listen(16)
    print("READY", flush=True)
    conn_no = 0
    while True:
        sock, peer = ls.accept()
        conn_no += 1
        threading.Thread(target=handle,
                         args=(args, ctx, body, conn_no, sock, peer),
                         daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
