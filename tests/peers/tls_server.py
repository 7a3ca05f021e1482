#!/usr/bin/python3
"""TLS server peer for the tlsshim end-to-end tests.

Built on Python's ssl module (run it with Debian's /usr/bin/python3). One
thread per connection. Modes: echo (send back what is received), sink (read
to EOF), reply (read one line, send --reply TEXT, then close). Every
plaintext byte received can be appended to --record; one JSON line per
connection (TLS parameters, SNI, ALPN, resumption, client certificate,
bytes, how it ended, or why the handshake failed) to --info. Prints READY
once listening. Handshake failures are recorded, never fatal.

Fields of an --info line: conn (1-based accept order), peer, handshake
("ok" or "failed"), error (text or null), version, cipher, sni, alpn,
session_reused, peer_cert (client certificate subject such as
"O=tlsshim tests,CN=client.test", or null), bytes_in, bytes_out, end
("close_notify", "eof" (TCP FIN without close_notify), "reset", "timeout",
"error: TEXT", "handshake" when the handshake failed, "replied" in reply
mode), server_end (how this server ended the connection: --end, or "close"
after a failed handshake).
"""

import argparse
import json
import socket
import ssl
import struct
import sys
import threading

VERSIONS = {
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1_1": ssl.TLSVersion.TLSv1_1,
    "TLSv1_2": ssl.TLSVersion.TLSv1_2,
    "TLSv1_3": ssl.TLSVersion.TLSv1_3,
}
VERSIONS.update({k.replace("_", "."): v for k, v in list(VERSIONS.items())})

VERIFY = {
    "none": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "require": ssl.CERT_REQUIRED,
}

SHORT_NAMES = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "localityName": "L",
    "stateOrProvinceName": "ST",
}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--cert", required=True, help="PEM certificate (chain allowed)")
    p.add_argument("--key", required=True)
    p.add_argument("--ca", help="CAs trusted for client certificates")
    p.add_argument("--verify", choices=sorted(VERIFY), default="none")
    p.add_argument("--alpn", help="comma-separated protocols accepted")
    p.add_argument("--min-version", choices=sorted(VERSIONS))
    p.add_argument("--max-version", choices=sorted(VERSIONS))
    p.add_argument("--ciphers", help="OpenSSL cipher string for TLS <= 1.2")
    p.add_argument("--mode", choices=("echo", "sink", "reply"), default="echo")
    p.add_argument("--reply", default="", help="text sent in reply mode")
    p.add_argument("--record", help="append received plaintext to this file")
    p.add_argument("--info", help="append one JSON line per connection")
    p.add_argument("--count", type=int, default=0,
                   help="exit after N connections (default: serve forever)")
    p.add_argument("--tickets", type=int, default=2,
                   help="TLS 1.3 session tickets sent per handshake")
    p.add_argument("--end", choices=("close_notify", "eof", "reset"),
                   default="close_notify",
                   help="how the server ends a connection it is done with")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="seconds a connection may stay idle")
    args = p.parse_args()
    if args.verify != "none" and not args.ca:
        p.error("--verify %s needs --ca" % args.verify)
    return args


def make_context(args):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    # Report an EOF without close_notify as such rather than hiding it.
    ctx.options &= ~getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
    if args.min_version:
        ctx.minimum_version = VERSIONS[args.min_version]
    if args.max_version:
        ctx.maximum_version = VERSIONS[args.max_version]
    if args.ciphers:
        ctx.set_ciphers(args.ciphers)
    if args.ca:
        ctx.load_verify_locations(cafile=args.ca)
    ctx.verify_mode = VERIFY[args.verify]
    if args.alpn:
        ctx.set_alpn_protocols([a for a in args.alpn.split(",") if a])
    ctx.num_tickets = args.tickets
    ctx.sni_callback = remember_sni
    return ctx


# SNI seen per connection, keyed by the id of the SSL socket object.
sni_lock = threading.Lock()
sni_seen = {}


def remember_sni(sslobj, server_name, _ctx):
    with sni_lock:
        sni_seen[id(sslobj)] = server_name
    return None


class Output:
    """Append-only files shared by the connection threads."""

    def __init__(self, path):
        self.lock = threading.Lock()
        self.f = open(path, "ab", buffering=0) if path else None

    def write(self, data):
        if self.f is None:
            return
        with self.lock:
            self.f.write(data)


def subject_text(cert):
    if not cert or "subject" not in cert:
        return None
    parts = []
    for rdn in cert["subject"]:
        for key, value in rdn:
            parts.append("%s=%s" % (SHORT_NAMES.get(key, key), value))
    return ",".join(parts)


class PeerEOF(Exception):
    """The peer's TCP side ended (FIN) without a close_notify."""


class TLSConn:
    """A server-side TLS connection over a blocking TCP socket.

    OpenSSL works on memory BIOs and this class moves the bytes, so it
    knows exactly how the peer ended: a close_notify, a TCP FIN without
    one, or a reset (Python's socket-level SSL errors blur the last two).
    """

    def __init__(self, raw, ctx, timeout):
        self.raw = raw
        self.raw.settimeout(timeout)
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.incoming, self.outgoing, server_side=True)
        self.tcp_eof = False

    def flush(self):
        data = self.outgoing.read()
        if data:
            self.raw.sendall(data)

    def _fill(self):
        if self.tcp_eof:
            raise PeerEOF()
        data = self.raw.recv(65536)
        if data:
            self.incoming.write(data)
        else:
            self.tcp_eof = True
            self.incoming.write_eof()

    def _run(self, op, *args):
        while True:
            try:
                result = op(*args)
            except ssl.SSLWantReadError:
                self.flush()
                self._fill()
                continue
            except ssl.SSLZeroReturnError:
                self.flush()
                raise
            except ssl.SSLError:
                # Send the alert that says why, then report the error;
                # after a FIN, OpenSSL's complaint is the missing notify.
                try:
                    self.flush()
                except OSError:
                    pass
                if self.tcp_eof:
                    raise PeerEOF()
                raise
            self.flush()
            return result

    def handshake(self):
        self._run(self.obj.do_handshake)

    def recv(self):
        """Plaintext, or b"" after the peer's close_notify."""
        try:
            return self._run(self.obj.read, 65536)
        except ssl.SSLZeroReturnError:
            return b""

    def sendall(self, data):
        self._run(self.obj.write, data)

    def end(self, how):
        """End the connection the way --end says; never raises."""
        raw = self.raw
        try:
            if how == "reset":
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                               struct.pack("ii", 1, 0))
                return
            if how == "close_notify":
                # Send ours without waiting for the peer's.
                try:
                    self.obj.unwrap()
                except ssl.SSLError:
                    pass
                self.flush()
            raw.settimeout(2.0)
            raw.shutdown(socket.SHUT_WR)
            # Drain until the peer closes, so that bytes we did not read do
            # not turn our close into a reset that destroys data in flight.
            while raw.recv(65536):
                pass
        except (OSError, ValueError):
            pass
        finally:
            raw.close()


def serve(conn_no, raw, peer, ctx, args, record, info):
    result = {
        "conn": conn_no,
        "peer": "%s:%d" % (peer[0], peer[1]),
        "handshake": "failed",
        "error": None,
        "version": None,
        "cipher": None,
        "sni": None,
        "alpn": None,
        "session_reused": None,
        "peer_cert": None,
        "bytes_in": 0,
        "bytes_out": 0,
        "end": None,
        "server_end": None,
    }
    conn = None
    try:
        conn = TLSConn(raw, ctx, args.timeout)
        try:
            conn.handshake()
        except (ssl.SSLError, OSError, PeerEOF) as e:
            if isinstance(e, PeerEOF):
                result["error"] = "peer closed during the handshake"
            else:
                result["error"] = str(e) or type(e).__name__
            result["end"] = "handshake"
            result["server_end"] = "close"
            raw.close()
            return
        result["handshake"] = "ok"
        result["version"] = conn.obj.version()
        result["cipher"] = conn.obj.cipher()[0]
        result["alpn"] = conn.obj.selected_alpn_protocol()
        result["session_reused"] = conn.obj.session_reused
        result["peer_cert"] = subject_text(conn.obj.getpeercert())
        result["end"] = pump(conn, args, record, result)
        result["server_end"] = args.end
        conn.end(args.end)
    except Exception as e:  # never let one connection kill the server
        result["error"] = "%s: %s" % (type(e).__name__, e)
        result["end"] = result["end"] or "error: %s" % e
        raw.close()
    finally:
        if conn is not None:
            with sni_lock:
                result["sni"] = sni_seen.pop(id(conn.obj), None)
        info.write((json.dumps(result) + "\n").encode())


def pump(conn, args, record, result):
    """Serve the mode; return how the client's side ended."""
    line = b""
    while True:
        try:
            data = conn.recv()
        except PeerEOF:
            return "eof"
        except ConnectionResetError:
            return "reset"
        except socket.timeout:
            return "timeout"
        except (ssl.SSLError, OSError) as e:
            return "error: %s" % e
        if not data:
            return "close_notify"
        record.write(data)
        result["bytes_in"] += len(data)
        if args.mode == "echo":
            conn.sendall(data)
            result["bytes_out"] += len(data)
        elif args.mode == "reply":
            line += data
            if b"\n" in line:
                reply = args.reply.encode()
                conn.sendall(reply)
                result["bytes_out"] += len(reply)
                return "replied"


def main():
    args = parse_args()
    ctx = make_context(args)
    record = Output(args.record)
    info = Output(args.info)

    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    ls = socket.socket(family, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        ls.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    ls.bind((args.host, args.port))
    ls.listen(64)
    print("READY", flush=True)

    threads = []
    accepted = 0
    while args.count == 0 or accepted < args.count:
        raw, peer = ls.accept()
        accepted += 1
        t = threading.Thread(target=serve, daemon=True,
                             args=(accepted, raw, peer, ctx, args, record, info))
        t.start()
        threads = [x for x in threads if x.is_alive()] + [t]
    ls.close()
    for t in threads:
        t.join(args.timeout + 5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
