#!/usr/bin/python3
"""Scripted FTP server with AUTH TLS for the tlsshim FTP data tests.

One control connection on --host:--port: AUTH TLS (then TLS with the
given certificate), PBSZ, PROT, USER, PASS, TYPE, PORT/EPRT, PASV/EPSV,
STOR and QUIT.  Data connections are TLS servers (RFC 4217: the FTP
client is the TLS client in either mode).  Prints READY once listening.

--pasv-ip A: answer PASV with address A (listening there), as a hostile
server that names another host would.  --pasv-pad N: put N characters of
text before the numbers of the 227 answer (a long reply line).
--steal: in active mode, before the data connection, connect to the
address of PORT/EPRT from --steal-from (another loopback address) and
record what that connection receives (port stealing).

--record FILE gets one JSON line: stolen (bytes the stealing connection
received, latin-1), stolen_eof (it was closed), data_sha256 (the STOR
data received over TLS), data_len, error.
"""

import argparse
import hashlib
import json
import socket
import ssl
import sys
import threading
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--pasv-ip", default=None)
    p.add_argument("--pasv-pad", type=int, default=0)
    p.add_argument("--steal", action="store_true")
    p.add_argument("--steal-from", default="127.0.0.2")
    p.add_argument("--record", required=True)
    p.add_argument("--timeout", type=float, default=20.0)
    return p.parse_args()


class Control:
    def __init__(self, sock, ctx):
        self.sock = sock
        self.ctx = ctx
        self.buf = b""

    def readline(self):
        while b"\n" not in self.buf:
            d = self.sock.recv(4096)
            if not d:
                raise EOFError("the client closed")
            self.buf += d
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r").decode("latin-1")

    def send(self, text):
        self.sock.sendall(text.encode("latin-1"))

    def starttls(self):
        self.sock = self.ctx.wrap_socket(self.sock, server_side=True)


def steal(host, port, source, out):
    """Connect to host:port from source and collect what arrives."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((source, 0))
    s.connect((host, port))
    s.settimeout(3)
    got = b""
    out["stolen_eof"] = False
    try:
        while True:
            d = s.recv(65536)
            if not d:
                out["stolen_eof"] = True
                break
            got += d
    except (socket.timeout, ConnectionError):
        pass
    out["stolen"] = got.decode("latin-1")
    s.close()


def receive(sock, ctx, out):
    with ctx.wrap_socket(sock, server_side=True) as t:
        data = b""
        while True:
            d = t.recv(65536)
            if not d:
                break
            data += d
    out["data_len"] = len(data)
    out["data_sha256"] = hashlib.sha256(data).hexdigest()


def session(ctl, args, out):
    ctx = ctl.ctx
    active = None
    listener = None
    ctl.send("220 scripted FTP\r\n")
    while True:
        line = ctl.readline()
        verb = line.split(" ", 1)[0].upper()
        arg = line[len(verb) + 1:]
        if verb == "AUTH":
            ctl.send("234 AUTH TLS ok\r\n")
            ctl.starttls()
        elif verb in ("PBSZ", "PROT", "TYPE"):
            ctl.send("200 ok\r\n")
        elif verb == "USER":
            ctl.send("331 password please\r\n")
        elif verb == "PASS":
            ctl.send("230 logged in\r\n")
        elif verb == "PORT":
            n = [int(x) for x in arg.split(",")]
            active = ("%d.%d.%d.%d" % tuple(n[:4]), n[4] * 256 + n[5])
            ctl.send("200 PORT ok\r\n")
        elif verb == "EPRT":
            f = arg[1:].split(arg[0])
            active = (f[1], int(f[2]))
            ctl.send("200 EPRT ok\r\n")
        elif verb == "PASV":
            ip = args.pasv_ip or args.host
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.bind((ip, 0))
            listener.listen(4)
            p = listener.getsockname()[1]
            ctl.send("227 Entering Passive Mode %s(%s,%d,%d)\r\n" %
                     ("x" * args.pasv_pad, ip.replace(".", ","),
                      p // 256, p % 256))
        elif verb == "STOR":
            if active is not None:
                if args.steal:
                    t = threading.Thread(target=steal, args=(
                        active[0], active[1], args.steal_from, out))
                    t.start()
                    time.sleep(0.3)     # the stranger is first in the queue
                ctl.send("150 opening data connection\r\n")
                d = socket.create_connection(active, timeout=args.timeout)
                receive(d, ctx, out)
                if args.steal:
                    t.join()
            else:
                ctl.send("150 opening data connection\r\n")
                listener.settimeout(args.timeout)
                d, _ = listener.accept()
                receive(d, ctx, out)
            ctl.send("226 transfer complete\r\n")
        elif verb == "QUIT":
            ctl.send("221 bye\r\n")
            return
        else:
            ctl.send("502 not implemented\r\n")


def main():
    args = parse_args()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(args.cert, args.key)
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((args.host, args.port))
    srv.listen(4)
    print("READY", flush=True)
    sock, _ = srv.accept()
    sock.settimeout(args.timeout)
    out = {"stolen": None, "stolen_eof": None, "data_sha256": None,
           "data_len": None, "error": None}
    try:
        session(Control(sock, ctx), args, out)
    except Exception as e:      # recorded: the test reads it
        out["error"] = "%s: %s" % (type(e).__name__, e)
    with open(args.record, "a") as f:
        f.write(json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
