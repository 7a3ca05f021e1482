#!/usr/bin/python3
"""Plain TCP server for the server-mode tests: the program that tlsshim
turns into a TLS server, so it must know nothing of TLS.

Modes: echo (send back what is received until EOF), upper (the same in
upper case). Styles: thread (blocking sockets, one thread per connection),
select (one thread, non-blocking sockets and the selectors module, as
event-loop servers are written). Prints READY once listening. One line per
connection to --log: "conn PEER bytes=N end=eof|reset|error:TEXT" when it
ends, so tests see what the program saw (a connection tlsshim refused
before the program saw it has no line at all).
"""

import argparse
import errno
import selectors
import socket
import sys
import threading

lock = threading.Lock()


def log(args, line):
    if args.log:
        with lock, open(args.log, "a") as f:
            f.write(line + "\n")


def transform(args, data):
    return data.upper() if args.mode == "upper" else data


def peer_str(addr):
    host, port = addr[0], addr[1]
    return "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)


def serve_blocking(args, conn, addr):
    total, end = 0, "eof"
    try:
        while True:
            data = conn.recv(65536)
            if not data:
                break
            total += len(data)
            conn.sendall(transform(args, data))
    except ConnectionResetError:
        end = "reset"
    except OSError as e:
        end = "error:%s" % errno.errorcode.get(e.errno, e.errno)
    log(args, "conn %s bytes=%d end=%s" % (peer_str(addr), total, end))
    conn.close()


def run_thread(args, ls):
    while True:
        conn, addr = ls.accept()
        threading.Thread(target=serve_blocking, args=(args, conn, addr),
                         daemon=True).start()


def run_select(args, ls):
    sel = selectors.DefaultSelector()
    ls.setblocking(False)
    sel.register(ls, selectors.EVENT_READ, None)
    state = {}

    def finish(conn, end):
        addr, total, _ = state.pop(conn)
        sel.unregister(conn)
        conn.close()
        log(args, "conn %s bytes=%d end=%s" % (peer_str(addr), total, end))

    while True:
        for key, events in sel.select():
            if key.data is None:
                try:
                    conn, addr = ls.accept()
                except BlockingIOError:
                    continue
                conn.setblocking(False)
                state[conn] = [addr, 0, b""]
                sel.register(conn, selectors.EVENT_READ, "c")
                continue
            conn = key.fileobj
            st = state[conn]
            if events & selectors.EVENT_READ:
                try:
                    data = conn.recv(65536)
                except BlockingIOError:
                    continue
                except ConnectionResetError:
                    finish(conn, "reset")
                    continue
                except OSError as e:
                    finish(conn, "error:%s" %
                           errno.errorcode.get(e.errno, e.errno))
                    continue
                if not data:
                    finish(conn, "eof")
                    continue
                st[1] += len(data)
                st[2] += transform(args, data)
            if st[2]:
                try:
                    n = conn.send(st[2])
                    st[2] = st[2][n:]
                except BlockingIOError:
                    pass
                except OSError as e:
                    finish(conn, "error:%s" %
                           errno.errorcode.get(e.errno, e.errno))
                    continue
            sel.modify(conn, selectors.EVENT_READ |
                       (selectors.EVENT_WRITE if st[2] else 0), "c")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--mode", choices=["echo", "upper"], default="echo")
    ap.add_argument("--style", choices=["thread", "select"],
                    default="thread")
    ap.add_argument("--log")
    args = ap.parse_args()
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    ls = socket.socket(family, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6 and args.host == "::":
        ls.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    ls.bind((args.host, args.port))
    ls.listen(64)
    print("READY", flush=True)
    (run_select if args.style == "select" else run_thread)(args, ls)


if __name__ == "__main__":
    sys.exit(main())
