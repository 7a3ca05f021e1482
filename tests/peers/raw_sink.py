#!/usr/bin/python3
"""Plain TCP sink for the tlsshim end-to-end tests.

Listens on --host:--port, appends every raw byte each connection sends to
--record (flushed at once, so a test can look while the connection is
open) and closes the connection at EOF, or after --idle-timeout seconds
without data (so a TLS client waiting for a ServerHello gets an EOF).
Sends nothing. With --info, appends one JSON line per connection (conn,
peer, bytes, end). Prints READY once listening. Used to prove what does,
and what does not, reach the wire.
"""

import argparse
import json
import socket
import sys
import threading


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--record", required=True,
                   help="append every byte received to this file")
    p.add_argument("--info", help="append one JSON line per connection")
    p.add_argument("--idle-timeout", type=float, default=30.0,
                   help="close a connection idle this many seconds")
    p.add_argument("--count", type=int, default=0,
                   help="exit after N connections (default: serve forever)")
    return p.parse_args()


class Output:
    def __init__(self, path):
        self.lock = threading.Lock()
        self.f = open(path, "ab", buffering=0) if path else None

    def write(self, data):
        if self.f is not None:
            with self.lock:
                self.f.write(data)


def serve(conn_no, s, peer, args, record, info):
    total = 0
    end = "eof"
    try:
        s.settimeout(args.idle_timeout)
        while True:
            data = s.recv(65536)
            if not data:
                break
            record.write(data)
            total += len(data)
    except socket.timeout:
        end = "timeout"
    except ConnectionResetError:
        end = "reset"
    except OSError as e:
        end = "error: %s" % e
    finally:
        s.close()
        info.write((json.dumps({"conn": conn_no,
                                "peer": "%s:%d" % (peer[0], peer[1]),
                                "bytes": total, "end": end}) + "\n").encode())


def main():
    args = parse_args()
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
        s, peer = ls.accept()
        accepted += 1
        t = threading.Thread(target=serve, daemon=True,
                             args=(accepted, s, peer, args, record, info))
        t.start()
        threads = [x for x in threads if x.is_alive()] + [t]
    ls.close()
    for t in threads:
        t.join(args.idle_timeout + 5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
