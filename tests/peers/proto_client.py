#!/usr/bin/python3
"""A naive plaintext client of one protocol, for the STARTTLS tests.

Speaks smtp, imap, pop3, ftp, nntp, ldap, xmpp, postgres or mysql in plaintext,
as a program that knows nothing of TLS would, and prints every answer it
reads as "S: LINE" (server-first greetings included), so the tests see
exactly what the program was shown. With --async it connects and talks
through asyncio (a non-blocking connect and an event loop); otherwise
through a blocking socket. A failed connect prints "error ERRNO_NAME" and
exits 3; a connection that breaks later prints "error TEXT" and exits 4.

mysql: it shows the greeting (sequence id, server version, whether it
offers SSL), logs in without SSL answering each scramble with its SHA-1
(tests/peers/starttls_server.py checks that), follows an auth switch,
runs one query and shows its row.  Every packet's sequence id is checked
as a MySQL client checks it: one out of order is an error (exit 4).
"""

import argparse
import asyncio
import errno
import hashlib
import socket
import struct
import sys


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--proto", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--async", dest="use_async", action="store_true")
    p.add_argument("--payload", help="SMTP: the message body to send")
    p.add_argument("--delay", type=float, default=0.0,
                   help="mysql: seconds to wait before the login")
    p.add_argument("--query", default="SELECT 'tlsshim'",
                   help="mysql: the query to run")
    p.add_argument("--split-login", action="store_true",
                   help="mysql: write the login in three pieces, 0.1 s apart")
    p.add_argument("--greeting-hex", action="store_true",
                   help="mysql: show the greeting's payload in hex too")
    p.add_argument("--read-early", action="store_true",
                   help="mysql: read once more after the greeting, before "
                   "the login (where a server has nothing to say)")
    return p.parse_args()


class Broken(Exception):
    pass


class BlockingStream:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    async def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise Broken("the server closed the connection")
        self.buf += data

    async def read_until(self, marker):
        while marker not in self.buf:
            await self._fill()
        i = self.buf.index(marker) + len(marker)
        data, self.buf = self.buf[:i], self.buf[i:]
        return data

    async def read_exact(self, n):
        while len(self.buf) < n:
            await self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    async def write(self, data):
        self.sock.sendall(data)


class AsyncStream:
    def __init__(self, reader, writer):
        self.reader = reader
        self.writer = writer

    async def read_until(self, marker):
        try:
            return await self.reader.readuntil(marker)
        except asyncio.IncompleteReadError:
            raise Broken("the server closed the connection")

    async def read_exact(self, n):
        try:
            return await self.reader.readexactly(n)
        except asyncio.IncompleteReadError:
            raise Broken("the server closed the connection")

    async def write(self, data):
        self.writer.write(data)
        await self.writer.drain()


def show(data):
    text = data.decode("latin-1") if isinstance(data, bytes) else data
    print("S: " + text.rstrip("\r\n"), flush=True)


async def line(s):
    data = await s.read_until(b"\n")
    show(data)
    return data.rstrip(b"\r\n")


async def reply(s):
    """A numeric reply, multi-line included (SMTP, FTP)."""
    first = await line(s)
    if first[3:4] == b"-":
        while True:
            more = await line(s)
            if more[:3] == first[:3] and more[3:4] in (b" ", b""):
                break
    return first


async def cmd(s, text, read=reply):
    await s.write(text.encode() + b"\r\n")
    return await read(s)


async def smtp(s, args):
    await reply(s)
    await cmd(s, "EHLO program.test")
    await cmd(s, "MAIL FROM:<sender@program.test>")
    await cmd(s, "RCPT TO:<rcpt@real.server>")
    await cmd(s, "DATA")
    body = open(args.payload, "rb").read() if args.payload else b"hi\r\n"
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    body = b"\r\n".join(b"." + l if l.startswith(b".") else l
                        for l in body.split(b"\r\n"))
    await s.write(body + b".\r\n")
    await reply(s)
    await cmd(s, "QUIT")


async def imap_tagged(s, tag):
    while True:
        got = await line(s)
        if got.startswith(tag.encode() + b" "):
            return got


async def imap(s, args):
    await line(s)
    for tag, text in (("a1", "CAPABILITY"), ("a2", "LOGIN user secret"),
                      ("a3", "LOGOUT")):
        await s.write(("%s %s\r\n" % (tag, text)).encode())
        await imap_tagged(s, tag)


async def pop3(s, args):
    await line(s)
    for text in ("USER user", "PASS secret", "STAT", "QUIT"):
        await cmd(s, text, line)


async def ftp(s, args):
    await reply(s)
    for text in ("USER anonymous", "PASS guest", "PWD", "QUIT"):
        await cmd(s, text)


async def nntp(s, args):
    await line(s)
    await cmd(s, "CAPABILITIES", line)
    while (await line(s)) != b".":
        pass
    await cmd(s, "DATE", line)
    await cmd(s, "QUIT", line)


def ber(tag, content):
    return bytes([tag, len(content)]) + content


async def ldap(s, args):
    bind = ber(0x30, ber(0x02, b"\x01") + ber(0x60, ber(0x02, b"\x03") +
                                                 ber(0x04, b"cn=test") +
                                                 ber(0x80, b"secret")))
    await s.write(bind)
    head = await s.read_exact(2)
    body = await s.read_exact(head[1])
    msgid = body[2]
    op = body[3]
    result = body[4 + 1 + 2]      # [op len] ENUMERATED 0a 01 code
    show("ldap message id=%d op=0x%02x result=%d" % (msgid, op, result))
    await s.write(ber(0x30, ber(0x02, b"\x02") + b"\x42\x00"))


async def xmpp(s, args):
    await s.write(b"<?xml version='1.0'?><stream:stream to='localhost' "
                  b"version='1.0' xmlns='jabber:client' "
                  b"xmlns:stream='http://etherx.jabber.org/streams'>")
    show(await s.read_until(b"</stream:features>"))
    await s.write(b"</stream:stream>")
    show(await s.read_until(b"</stream:stream>"))


async def pg_messages(s):
    """Messages up to ReadyForQuery, shown by type."""
    while True:
        kind = await s.read_exact(1)
        n = struct.unpack("!I", await s.read_exact(4))[0]
        payload = await s.read_exact(n - 4)
        if kind == b"D":
            show("D %s" % payload[6:].decode())
        else:
            show(kind.decode("latin-1"))
        if kind == b"Z":
            return


async def postgres(s, args):
    params = b"user\x00test\x00database\x00test\x00\x00"
    await s.write(struct.pack("!II", 8 + len(params), 196608) + params)
    await pg_messages(s)
    query = b"SELECT 1\x00"
    await s.write(b"Q" + struct.pack("!I", 4 + len(query)) + query)
    await pg_messages(s)
    await s.write(b"X" + struct.pack("!I", 4))


MY_CAPS = 0x0008A209   # LONG_PASSWORD CONNECT_WITH_DB PROTOCOL_41
                       # TRANSACTIONS SECURE_CONNECTION PLUGIN_AUTH


class MySeq:
    """Sequence ids as a MySQL client checks them."""

    def __init__(self, s):
        self.s = s
        self.next = 0

    async def read(self):
        head = await self.s.read_exact(4)
        n = head[0] | head[1] << 8 | head[2] << 16
        if head[3] != self.next:
            raise Broken("packets out of order: got %d, want %d"
                         % (head[3], self.next))
        self.next = head[3] + 1
        return await self.s.read_exact(n)

    async def write(self, payload, command=False, pieces=1):
        if command:
            self.next = 0
        data = struct.pack("<I", len(payload))[:3] + bytes([self.next]) + \
            payload
        self.next += 1
        # pieces > 1: two bytes of the header, then the rest in parts
        cuts = [0, 2] + [2 + (len(data) - 2) * k // (pieces - 1)
                         for k in range(1, pieces)] if pieces > 1 else [0]
        cuts.append(len(data))
        for a, b in zip(cuts, cuts[1:]):
            if a > 0:
                await asyncio.sleep(0.1)
            await self.s.write(data[a:b])


def my_check(packet, what):
    if packet[:1] == b"\xff":
        raise Broken("%s: error %d: %s" % (
            what, struct.unpack("<H", packet[1:3])[0],
            packet[3:].decode("latin-1")))


async def mysql(s, args):
    my = MySeq(s)
    g = await my.read()
    version_end = g.index(b"\x00", 1)
    pos = version_end + 1 + 4
    scramble = g[pos:pos + 8]
    caps = struct.unpack("<H", g[pos + 9:pos + 11])[0]
    caps |= struct.unpack("<H", g[pos + 14:pos + 16])[0] << 16
    scramble += g[pos + 27:pos + 27 + 12]
    show("greeting seq=0 version=%s ssl=%s" % (
        g[1:version_end].decode("latin-1"), "yes" if caps & 0x800 else "no"))
    if args.greeting_hex:
        show("greeting hex %s" % g.hex())
    if args.delay:
        await asyncio.sleep(args.delay)
    if args.read_early:
        show("early %r" % await s.read_exact(1))
    login = (struct.pack("<IIB", MY_CAPS, 1 << 24, 0x21) + b"\x00" * 23 +
             b"user\x00" + bytes([20]) + hashlib.sha1(scramble).digest() +
             b"test\x00" + b"mysql_native_password\x00")
    await my.write(login, pieces=3 if args.split_login else 1)
    answer = await my.read()
    my_check(answer, "login")
    if answer[:1] == b"\xfe":
        show("auth switch seq=%d" % (my.next - 1))
        plugin_end = answer.index(b"\x00", 1)
        second = answer[plugin_end + 1:plugin_end + 21]
        await my.write(hashlib.sha1(second).digest())
        answer = await my.read()
        my_check(answer, "auth switch")
    if answer[:1] != b"\x00":
        raise Broken("login: not an OK packet")
    show("ok seq=%d" % (my.next - 1))
    await my.write(b"\x03" + args.query.encode(), command=True)
    columns = await my.read()
    my_check(columns, "query")
    for _ in range(columns[0]):
        await my.read()
    await my.read()                                # EOF
    while True:
        row = await my.read()
        if row[:1] == b"\xfe" and len(row) < 9:     # EOF
            break
        show("row %s" % row[1:1 + row[0]].decode("latin-1"))
    await my.write(b"\x01", command=True)          # COM_QUIT


SCRIPTS = {
    "smtp": smtp, "imap": imap, "pop3": pop3, "ftp": ftp, "nntp": nntp,
    "ldap": ldap, "xmpp": xmpp, "postgres": postgres, "mysql": mysql,
}


def connect_error(e):
    print("error %s" % errno.errorcode.get(e.errno, e.errno), flush=True)
    return 3


async def run_async(args):
    try:
        reader, writer = await asyncio.open_connection(args.host, args.port)
    except OSError as e:
        return connect_error(e)
    try:
        await SCRIPTS[args.proto](AsyncStream(reader, writer), args)
    except (Broken, OSError) as e:
        print("error %s" % e, flush=True)
        return 4
    writer.close()
    return 0


def run_blocking(args):
    try:
        sock = socket.create_connection((args.host, args.port), timeout=None)
    except OSError as e:
        return connect_error(e)
    try:
        asyncio.run(SCRIPTS[args.proto](BlockingStream(sock), args))
    except (Broken, OSError) as e:
        print("error %s" % e, flush=True)
        return 4
    sock.close()
    return 0


def main():
    args = parse_args()
    if args.use_async:
        return asyncio.run(run_async(args))
    return run_blocking(args)


if __name__ == "__main__":
    sys.exit(main())
