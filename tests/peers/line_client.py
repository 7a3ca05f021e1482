#!/usr/bin/python3
"""Scripted line-protocol client for the server-side STARTTLS tests: it
does exactly what its steps say, so tests can send what no ordinary
client would (commands before STARTTLS, bytes injected after it).

Steps, one argument each, run in order:
  >TEXT    send TEXT (\\r, \\n and \\\\ escapes understood) in one send()
  <        read one reply: a line, or an SMTP multi-line reply ("NNN-"
           lines up to the "NNN " one)
  <.       read lines up to one that is "." (a POP3 multi-line answer)
  <TAG     read lines up to one that begins with "TAG " (IMAP)
  tls      the TLS handshake, verifying the server's certificate for
           --name against --cafile
  eof      expect the server to close (reads until EOF)

Every line received is printed as "S: LINE", and after tls "TLS VERSION".
Exit 0 when all steps ran, 1 when the server closed or timed out early.
"""

import argparse
import socket
import ssl
import sys


def unescape(s):
    return (s.replace("\\r", "\r").replace("\\n", "\n")
            .replace("\\\\", "\\"))


class Client:
    def __init__(self, args):
        self.sock = socket.create_connection((args.host, args.port),
                                             timeout=args.timeout)
        self.buf = b""
        self.args = args

    def line(self):
        while b"\n" not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                raise EOFError("server closed")
            self.buf += d
        i = self.buf.index(b"\n") + 1
        l, self.buf = self.buf[:i], self.buf[i:]
        text = l.decode("latin-1").rstrip("\r\n")
        print("S: " + text, flush=True)
        return text

    def step(self, s):
        if s.startswith(">"):
            self.sock.sendall(unescape(s[1:]).encode("latin-1"))
        elif s == "<":
            l = self.line()
            while len(l) >= 4 and l[:3].isdigit() and l[3] == "-":
                l = self.line()
        elif s == "<.":
            while self.line() != ".":
                pass
        elif s.startswith("<"):
            tag = s[1:] + " "
            while not self.line().startswith(tag):
                pass
        elif s == "tls":
            if self.buf:
                raise EOFError("%d bytes came before the handshake"
                               % len(self.buf))
            ctx = ssl.create_default_context(cafile=self.args.cafile)
            self.sock = ctx.wrap_socket(self.sock,
                                        server_hostname=self.args.name)
            print("TLS " + self.sock.version(), flush=True)
        elif s == "eof":
            while True:
                self.line()
        else:
            raise ValueError("unknown step %r" % s)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cafile")
    p.add_argument("--name", default="localhost")
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("steps", nargs="+")
    args = p.parse_args()
    c = Client(args)
    for s in args.steps:
        try:
            c.step(s)
        except EOFError as e:
            if s == "eof":
                print("EOF", flush=True)
                continue
            print("ERROR %s at step %r" % (e, s), flush=True)
            return 1
        except (OSError, ssl.SSLError) as e:
            print("ERROR %s at step %r" % (e, s), flush=True)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
