#!/usr/bin/python3
"""Tiny HTTPS server for the tlsshim end-to-end tests.

Answers every GET (and HEAD) with 200 and the bytes of --body-file, as
HTTP/1.1 with Content-Length and "Connection: close". Each connection is
handled, handshake included, in its own thread; a failed handshake is
logged to stderr and does not stop the server. With --log, appends one
line per request: "METHOD PATH HOST-HEADER". Prints READY once listening.
"""

import argparse
import http.server
import socket
import ssl
import sys
import threading


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--cert", required=True, help="PEM certificate (chain allowed)")
    p.add_argument("--key", required=True)
    p.add_argument("--body-file", required=True)
    p.add_argument("--log", help="append one line per request")
    return p.parse_args()


def main():
    args = parse_args()
    with open(args.body_file, "rb") as f:
        body = f.read()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    ctx.set_alpn_protocols(["http/1.1"])
    log_lock = threading.Lock()
    log = open(args.log, "a", buffering=1) if args.log else None

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 30

        def do_GET(self):
            self.answer(True)

        def do_HEAD(self):
            self.answer(False)

        def answer(self, with_body):
            if log is not None:
                with log_lock:
                    log.write("%s %s %s\n" % (self.command, self.path,
                                              self.headers.get("Host", "-")))
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if with_body:
                self.wfile.write(body)
            self.wfile.flush()
            self.close_connection = True

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True
        address_family = socket.AF_INET6 if ":" in args.host else socket.AF_INET

        def finish_request(self, request, client_address):
            # Handshake in the connection's thread, not in accept().
            try:
                request.settimeout(30)
                tls = ctx.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as e:
                sys.stderr.write("handshake failed from %s: %s\n"
                                 % (client_address[0], e))
                sys.stderr.flush()
                return
            try:
                super().finish_request(tls, client_address)
            finally:
                try:
                    tls.unwrap()
                except (ssl.SSLError, OSError, ValueError):
                    pass

    srv = Server((args.host, args.port), Handler)
    print("READY", flush=True)
    srv.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
