#!/usr/bin/python3
"""TLS client peer for the server-mode tests (Debian's /usr/bin/python3).

Connects, verifies the server against --cafile (and --name), sends --send
(or the file --send-file), reads until as many bytes came back (or
--expect bytes, or EOF), and prints one JSON line: ok, error, version,
cipher, alpn, subject (the server certificate's CN), reply (text, or its
sha256 for --send-file), resumed. Exits 0 when the exchange worked, 1 when
the handshake or the exchange failed (the line says why).
"""

import argparse
import hashlib
import json
import socket
import ssl
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cafile")
    ap.add_argument("--name", default="localhost",
                    help="server name to verify and send as SNI")
    ap.add_argument("--no-verify", action="store_true")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--alpn")
    ap.add_argument("--send", default="hello\n")
    ap.add_argument("--send-file")
    ap.add_argument("--timeout", type=float, default=10)
    ap.add_argument("--again", type=int, default=0,
                    help="connect again N times resuming the session")
    args = ap.parse_args()

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if args.no_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.load_verify_locations(args.cafile)
    if args.cert:
        ctx.load_cert_chain(args.cert, args.key)
    if args.alpn:
        ctx.set_alpn_protocols(args.alpn.split(","))
    data = (open(args.send_file, "rb").read() if args.send_file
            else args.send.encode())
    session = None
    out = {}
    for attempt in range(args.again + 1):
        out = {"ok": False, "error": None}
        try:
            raw = socket.create_connection((args.host, args.port),
                                           timeout=args.timeout)
            s = ctx.wrap_socket(raw, server_hostname=args.name,
                                session=session)
            out.update(version=s.version(), cipher=s.cipher()[0],
                       alpn=s.selected_alpn_protocol(),
                       resumed=s.session_reused)
            cert = s.getpeercert() if not args.no_verify else None
            if cert:
                out["subject"] = dict(x[0] for x in cert["subject"]).get(
                    "commonName")
            s.sendall(data)
            got = b""
            while len(got) < len(data):
                b = s.recv(65536)
                if not b:
                    break
                got += b
            if args.send_file:
                out["reply"] = hashlib.sha256(got).hexdigest()
            else:
                out["reply"] = got.decode(errors="replace")
            out["ok"] = len(got) == len(data)
            if not out["ok"]:
                out["error"] = "short reply (%d of %d bytes)" % (
                    len(got), len(data))
            session = s.session
            s.close()
        except (OSError, ssl.SSLError) as e:
            out["error"] = str(e)
        if not out["ok"]:
            break
    print(json.dumps(out), flush=True)
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
