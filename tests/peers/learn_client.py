#!/usr/bin/python3
"""Plaintext client for the tlsshim --learn tests: the unmodified program.

Knows nothing of TLS. With --http HOST:PORT it GETs /blob over HTTP/1.0 and
prints "http SHA256" of the body; with --smtp HOST:PORT it sends one mail
whose body is --payload in base64 (76-column lines, CRLF) and prints "smtp
SHA256" of that body once the server's 250 answer to it names the same
hash (tests/peers/starttls_server.py answers "queued sha256=HEX"); with
--redis HOST:PORT it SETs the bytes of --payload under a key, GETs them
back and prints "redis SHA256" of what came back. HOST may be a name, looked up as programs do (getaddrinfo).
Exits with --exit (default 0), or 1 when something failed.
"""

import argparse
import base64
import hashlib
import socket
import sys


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--http", action="append", default=[])
    p.add_argument("--smtp", action="append", default=[])
    p.add_argument("--redis", action="append", default=[])
    p.add_argument("--payload",
                   help="redis: the value to SET and GET; smtp: the mail")
    p.add_argument("--exit", type=int, default=0)
    return p.parse_args()


def connect(dest):
    host, port = dest.rsplit(":", 1)
    return socket.create_connection((host.strip("[]"), int(port)), timeout=10)


def recv_all(sock):
    chunks = []
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def http_get(dest):
    with connect(dest) as s:
        s.sendall(b"GET /blob HTTP/1.0\r\nHost: %s\r\n\r\n" % dest.encode())
        reply = recv_all(s)
    head, _, body = reply.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].split(b" ")
    if len(status) < 2 or not status[0].startswith(b"HTTP/1.") \
            or status[1] != b"200":
        raise RuntimeError("http: %r" % head[:40])
    return hashlib.sha256(body).hexdigest()


def smtp_reply(f, want):
    """One SMTP reply (its continuation lines too): the last line's text
    when its code is want, else an error."""
    while True:
        line = f.readline()
        if not line.endswith(b"\r\n") or len(line) < 5:
            raise RuntimeError("smtp: connection closed or bad reply %r"
                               % line[:60])
        if line[3:4] != b"-":
            break
    if line[:3] != b"%d" % want:
        raise RuntimeError("smtp: wanted %d, got %r" % (want, line[:60]))
    return line[4:-2]


def smtp_send(dest, payload):
    body = base64.encodebytes(payload).replace(b"\n", b"\r\n")
    digest = hashlib.sha256(body).hexdigest()
    with connect(dest) as s, s.makefile("rb") as f:
        smtp_reply(f, 220)
        s.sendall(b"EHLO client.test\r\n")
        smtp_reply(f, 250)
        s.sendall(b"MAIL FROM:<learn@client.test>\r\n")
        smtp_reply(f, 250)
        s.sendall(b"RCPT TO:<ops@server.test>\r\n")
        smtp_reply(f, 250)
        s.sendall(b"DATA\r\n")
        smtp_reply(f, 354)
        s.sendall(body + b".\r\n")
        queued = smtp_reply(f, 250)
        if b"sha256=" + digest.encode() not in queued:
            raise RuntimeError("smtp: the server got other bytes: %r"
                               % queued[:120])
        s.sendall(b"QUIT\r\n")
        smtp_reply(f, 221)
    return digest


def command(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def read_line(f):
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise RuntimeError("redis: connection closed")
    return line[:-2]


def redis_roundtrip(dest, payload):
    with connect(dest) as s, s.makefile("rb") as f:
        s.sendall(command(b"SET", b"learn-key", payload))
        if read_line(f) != b"+OK":
            raise RuntimeError("redis: SET failed")
        s.sendall(command(b"GET", b"learn-key"))
        size = read_line(f)
        if not size.startswith(b"$") or int(size[1:]) < 0:
            raise RuntimeError("redis: GET failed: %r" % size)
        value = f.read(int(size[1:]) + 2)[:-2]
        s.sendall(command(b"QUIT"))
        read_line(f)
    return hashlib.sha256(value).hexdigest()


def main():
    args = parse_args()
    payload = b""
    if args.payload:
        with open(args.payload, "rb") as f:
            payload = f.read()
    try:
        for dest in args.http:
            print("http", http_get(dest), flush=True)
        for dest in args.smtp:
            print("smtp", smtp_send(dest, payload), flush=True)
        for dest in args.redis:
            print("redis", redis_roundtrip(dest, payload), flush=True)
    except (OSError, RuntimeError, ValueError) as e:
        print("learn_client: %s" % e, file=sys.stderr)
        return 1
    return args.exit


if __name__ == "__main__":
    sys.exit(main())
