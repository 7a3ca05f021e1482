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


def end_connection(s, how):
    """End the connection the way --end says; never raises."""
    try:
        if how == "reset":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                         struct.pack("ii", 1, 0))
            return
        if how == "close_notify" and isinstance(s, ssl.SSLSocket) \
                and s._sslobj is not None:
            # Send close_notify without waiting for the peer's: on a
            # non-blocking socket the second SSL_shutdown() returns
            # WANT_READ once ours is out.
            s.settimeout(0)
            try:
                s.unwrap()
            except (ssl.SSLError, OSError, ValueError):
                pass
        s.settimeout(2.0)
        # SSLSocket.shutdown() drops the TLS layer: what follows is TCP.
        s.shutdown(socket.SHUT_WR)
        # Drain until the peer closes so that unread bytes do not turn our
        # close into a reset that could destroy data still in flight.
        while s.recv(65536):
            pass
    except (OSError, ValueError):
        pass
    finally:
        try:
            s.close()
        except OSError:
            pass


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
    s = raw
    try:
        raw.settimeout(args.timeout)
        s = ctx.wrap_socket(raw, server_side=True,
                            do_handshake_on_connect=False,
                            suppress_ragged_eofs=False)
        try:
            s.do_handshake()
        except (ssl.SSLError, OSError) as e:
            result["error"] = str(e) or type(e).__name__
            result["end"] = "handshake"
            with sni_lock:
                result["sni"] = sni_seen.pop(id(s), None)
            result["server_end"] = "close"
            s.close()
            return
        with sni_lock:
            result["sni"] = sni_seen.pop(id(s), None)
        result["handshake"] = "ok"
        result["version"] = s.version()
        result["cipher"] = s.cipher()[0]
        result["alpn"] = s.selected_alpn_protocol()
        result["session_reused"] = s.session_reused
        result["peer_cert"] = subject_text(s.getpeercert())
        result["end"] = pump(s, args, record, result)
        result["server_end"] = args.end
        end_connection(s, args.end)
    except Exception as e:  # never let one connection kill the server
        result["error"] = "%s: %s" % (type(e).__name__, e)
        result["end"] = result["end"] or "error: %s" % e
        try:
            s.close()
        except OSError:
            pass
    finally:
        info.write((json.dumps(result) + "\n").encode())


def pump(s, args, record, result):
    """Serve the mode; return how the client's side ended."""
    line = b""
    replied = False
    while True:
        try:
            data = s.recv(65536)
        except ssl.SSLEOFError:
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
            s.sendall(data)
            result["bytes_out"] += len(data)
        elif args.mode == "reply" and not replied:
            line += data
            if b"\n" in line:
                reply = args.reply.encode()
                s.sendall(reply)
                result["bytes_out"] += len(reply)
                replied = True
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
