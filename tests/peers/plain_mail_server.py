#!/usr/bin/python3
"""Plain SMTP, IMAP or POP3 server for the server-side STARTTLS tests: the
program to which tlsshim adds STARTTLS, so it knows nothing of TLS (a
STARTTLS or STLS that reaches it is answered as an unknown command, and
recorded).

Styles: thread (blocking sockets, a thread per connection), async
(asyncio: non-blocking sockets and epoll, as event-loop servers are
written) or pipelining (as thread, but answers are buffered and sent
only when FIONREAD says no more input is waiting, as pipelining SMTP
servers do). Prints READY once listening.

--record FILE gets one JSON line per connection when it ends: conn
(accept order), lines (every command line received, as latin-1 text,
line end included), and for SMTP data_sha256 (the SHA-256 of each
message body: the bytes after DATA's 354 up to the final "\\r\\n.\\r\\n",
its first CRLF included, dots unstuffed). --message FILE is the message
that IMAP FETCH and POP3 RETR return.
"""

import argparse
import asyncio
import fcntl
import hashlib
import json
import socket
import struct
import sys
import termios
import threading

lock = threading.Lock()
counter = [0]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--proto", required=True, choices=("smtp", "imap", "pop3"))
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--style", default="thread", choices=("thread", "async", "pipelining"))
    p.add_argument("--record", help="append one JSON line per connection")
    p.add_argument("--message", help="the message FETCH and RETR return")
    p.add_argument("--ehlo-single", action="store_true",
                   help="answer EHLO with one line (no extensions)")
    return p.parse_args()


class Closed(Exception):
    """The client went away."""


class Session:
    """The protocol, written against async reads and writes so that the
    blocking and the asyncio styles share it."""

    def __init__(self, args, io):
        self.args = args
        self.io = io
        self.lines = []
        self.bodies = []
        self.message = b"Subject: test\r\n\r\nhello\r\n"
        if args.message:
            with open(args.message, "rb") as f:
                self.message = f.read()

    async def line(self):
        l = await self.io.readline()
        if not l:
            raise Closed()
        self.lines.append(l.decode("latin-1"))
        return l

    async def send(self, text):
        await self.io.write(text.encode("latin-1") if isinstance(text, str)
                            else text)

    async def run(self):
        try:
            await getattr(self, self.args.proto)()
        except (Closed, ConnectionError, OSError):
            pass

    async def smtp(self):
        await self.send("220 plain.server ESMTP PlainMail\r\n")
        while True:
            l = (await self.line()).decode("latin-1").rstrip("\r\n")
            verb = l.split(" ", 1)[0].upper()
            if verb == "EHLO":
                if self.args.ehlo_single:
                    await self.send("250 plain.server\r\n")
                else:
                    await self.send("250-plain.server\r\n250-PIPELINING\r\n"
                                    "250-8BITMIME\r\n250 SIZE 10000000\r\n")
            elif verb in ("HELO", "MAIL", "RCPT", "RSET", "NOOP"):
                await self.send("250 2.0.0 ok\r\n")
            elif verb == "AUTH":
                await self.send("235 2.7.0 authenticated\r\n")
            elif verb == "DATA":
                await self.send("354 go ahead\r\n")
                body = bytearray()
                while True:
                    d = await self.io.readline()
                    if not d:
                        raise Closed()
                    if d in (b".\r\n", b".\n"):
                        break
                    body += d[1:] if d.startswith(b"..") else d
                self.bodies.append(hashlib.sha256(bytes(body)).hexdigest())
                await self.send("250 2.0.0 queued\r\n")
            elif verb == "QUIT":
                await self.send("221 2.0.0 bye\r\n")
                return
            else:
                await self.send("502 5.5.1 unknown command\r\n")

    async def imap(self):
        await self.send("* OK [CAPABILITY IMAP4rev1] plain.server "
                        "IMAP ready\r\n")
        while True:
            l = (await self.line()).decode("latin-1").rstrip("\r\n")
            parts = l.split(" ")
            tag, cmd = parts[0], (parts[1].upper() if len(parts) > 1 else "")
            if cmd == "CAPABILITY":
                await self.send("* CAPABILITY IMAP4rev1 ID\r\n"
                                "%s OK done\r\n" % tag)
            elif cmd == "LOGIN":
                await self.send("%s OK [CAPABILITY IMAP4rev1] logged in\r\n"
                                % tag)
            elif cmd in ("NOOP", "ID"):
                await self.send("%s OK done\r\n" % tag)
            elif cmd == "LIST":
                await self.send('* LIST (\\HasNoChildren) "/" INBOX\r\n'
                                "%s OK LIST done\r\n" % tag)
            elif cmd in ("SELECT", "EXAMINE"):
                await self.send("* 1 EXISTS\r\n* FLAGS (\\Seen)\r\n"
                                "* OK [UIDVALIDITY 1] ok\r\n"
                                "%s OK [READ-WRITE] SELECT done\r\n" % tag)
            elif cmd in ("FETCH", "UID"):
                uid = " UID 1" if cmd == "UID" else ""
                await self.send("* 1 FETCH (%sBODY[] {%d}\r\n"
                                % (uid.strip() + " " if uid else "",
                                   len(self.message)))
                await self.send(self.message)
                await self.send(")\r\n%s OK FETCH done\r\n" % tag)
            elif cmd == "LOGOUT":
                await self.send("* BYE bye\r\n%s OK LOGOUT done\r\n" % tag)
                return
            else:
                await self.send("%s BAD unknown command\r\n" % tag)

    async def pop3(self):
        await self.send("+OK plain.server POP3 ready\r\n")
        while True:
            l = (await self.line()).decode("latin-1").rstrip("\r\n")
            verb = l.split(" ", 1)[0].upper()
            if verb == "CAPA":
                await self.send("+OK capabilities\r\nUSER\r\nUIDL\r\n.\r\n")
            elif verb in ("USER", "PASS", "NOOP"):
                await self.send("+OK\r\n")
            elif verb == "STAT":
                await self.send("+OK 1 %d\r\n" % len(self.message))
            elif verb == "LIST":
                await self.send("+OK\r\n1 %d\r\n.\r\n" % len(self.message))
            elif verb == "RETR":
                await self.send("+OK message follows\r\n")
                await self.send(self.message)
                await self.send(".\r\n")
            elif verb == "QUIT":
                await self.send("+OK bye\r\n")
                return
            else:
                await self.send("-ERR unknown command\r\n")


def record(args, session):
    if not args.record:
        return
    with lock:
        counter[0] += 1
        r = {"conn": counter[0], "lines": session.lines}
        if args.proto == "smtp":
            r["data_sha256"] = session.bodies
        with open(args.record, "a") as f:
            f.write(json.dumps(r) + "\n")


class BlockingIO:
    """Blocking socket calls behind the async interface."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    async def readline(self):
        while b"\n" not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                l, self.buf = self.buf, b""
                return l
            self.buf += d
        i = self.buf.index(b"\n") + 1
        l, self.buf = self.buf[:i], self.buf[i:]
        return l

    async def write(self, data):
        self.sock.sendall(data)


class PipeliningIO(BlockingIO):
    """Answers kept until the client has nothing more waiting."""

    def __init__(self, sock):
        super().__init__(sock)
        self.out = b""

    async def readline(self):
        while b"\n" not in self.buf and self.out:
            waiting = struct.unpack("i", fcntl.ioctl(
                self.sock.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]
            if waiting > 0:
                break
            self.sock.sendall(self.out)
            self.out = b""
        return await super().readline()

    async def write(self, data):
        self.out += data

    def flush(self):
        if self.out:
            self.sock.sendall(self.out)
            self.out = b""


class AsyncIO:
    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    async def readline(self):
        return await self.reader.readline()

    async def write(self, data):
        self.writer.write(data)
        await self.writer.drain()


def serve_thread(args, conn):
    io = PipeliningIO(conn) if args.style == "pipelining" else BlockingIO(conn)
    s = Session(args, io)
    try:
        asyncio.run(s.run())
        if args.style == "pipelining":
            io.flush()
    except OSError:
        pass
    finally:
        conn.close()
        record(args, s)


def main_thread(args):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((args.host, args.port))
    srv.listen(16)
    print("READY", flush=True)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve_thread, args=(args, conn),
                         daemon=True).start()


async def main_async(args):
    async def handle(reader, writer):
        s = Session(args, AsyncIO(reader, writer))
        try:
            await s.run()
        finally:
            writer.close()
            record(args, s)

    srv = await asyncio.start_server(handle, args.host, args.port)
    print("READY", flush=True)
    async with srv:
        await srv.serve_forever()


def main():
    args = parse_args()
    if args.style == "async":
        asyncio.run(main_async(args))
    else:
        main_thread(args)


if __name__ == "__main__":
    sys.exit(main())
