#!/usr/bin/python3
"""Scriptable hostile TLS peer for the tlsshim fault-injection tests.

Runs Python's ssl module over memory BIOs (ssl.SSLObject), so that it
decides byte by byte what reaches the socket, and appends every raw byte it
receives to --record (flushed at once): tests assert that no byte of the
program's payload ever reached the wire.

As a server (default) it listens on --host:--port; as a client (--connect)
it connects there once.  --fault says what it does wrong, --at when:

  none       an honest echo peer (with --cert it may still be the wrong
             certificate: the wire is recorded all the same)
  rst        abort with a TCP reset (SO_LINGER 0) at --at
  fin        send a FIN (shutdown SHUT_WR) at --at, then keep reading and
             recording until the other side closes or --hold expires
  stall      send nothing more from --at on; keep reading and recording
             until --hold expires (a handshake that never finishes)
  noread     finish the handshake, then read nothing for --hold seconds
             (small receive buffer: write back-pressure), then drain
  oversized  at --at, send a record whose length field is above the
             16384+256 bytes TLS allows, then keep reading and recording
  garbage    (client) at clienthello, bytes that are no TLS record
             instead of the ClientHello; at finished, an application data
             record of random bytes (its MAC cannot verify); then keep
             reading and recording until the other side closes or --hold
             expires
  fragment   an honest echo peer whose plaintext handshake messages go
             out one byte per record, and whose echo goes out one byte of
             application data per record
  keyupdate  (server) `openssl s_server -tls1_3` behind a recording relay
             sends --updates KeyUpdate messages (update_requested, its 'K'
             command), the line "data-N" after every --every of them, then
             "end-of-storm"
  renegotiate (server) `openssl s_server -tls1_2` behind a recording relay
             sends a HelloRequest (its 'R' command), then the line
             "after-renegotiation"; s_server's error lines go to --info

--at is one of: clienthello (server: once the ClientHello arrived; client:
once it was sent), serverhello (server only: after sending the
ServerHello record alone), certificate (server only: the flight cut in the
middle of the record carrying the Certificate), finished (once the
handshake is complete).

With --info, one JSON line per connection: conn, fault, at, version,
bytes_in (raw bytes received), handshake ("ok", "failed: TEXT", "cut"),
end; and for a client that finished the handshake honestly (--fault none
or fragment), plaintext: what it decrypted (latin-1) until the server
ended or --hold expired.  Prints READY once listening (server) or
connected (client).
"""

import argparse
import json
import os
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time

HANDSHAKE, CCS, ALERT, APPDATA = 22, 20, 21, 23
MAX_CIPHERTEXT = 16384 + 256
VERSIONS = {"TLSv1_2": ssl.TLSVersion.TLSv1_2, "TLSv1_3": ssl.TLSVersion.TLSv1_3}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--connect", action="store_true",
                   help="be the client: connect to --host:--port once")
    p.add_argument("--cert", help="PEM certificate chain (server)")
    p.add_argument("--key", help="its key (server)")
    p.add_argument("--fault", default="none",
                   choices=("none", "rst", "fin", "stall", "noread",
                            "oversized", "garbage", "fragment",
                            "keyupdate", "renegotiate"))
    p.add_argument("--at", default="finished",
                   choices=("clienthello", "serverhello", "certificate",
                            "finished"))
    p.add_argument("--max-version", choices=sorted(VERSIONS))
    p.add_argument("--hold", type=float, default=10.0,
                   help="seconds to keep reading after a fin/stall/noread")
    p.add_argument("--record", required=True,
                   help="append every raw byte received to this file")
    p.add_argument("--info", help="append one JSON line per connection")
    p.add_argument("--send", default="",
                   help="client: plaintext sent once the handshake is done")
    p.add_argument("--count", type=int, default=0,
                   help="server: exit after N connections")
    p.add_argument("--updates", type=int, default=100)
    p.add_argument("--every", type=int, default=0,
                   help="keyupdate: a data line after every N updates")
    p.add_argument("--timeout", type=float, default=20.0,
                   help="seconds a connection may stay idle")
    args = p.parse_args()
    if not args.connect and not (args.cert and args.key):
        p.error("a server needs --cert and --key")
    if not args.connect and args.fault == "garbage":
        p.error("--fault garbage is a client's")
    if args.connect and args.fault in ("keyupdate", "renegotiate"):
        p.error("--fault %s is a server's" % args.fault)
    if args.connect and args.at in ("serverhello", "certificate"):
        p.error("--at %s is a server's step" % args.at)
    return args


class Output:
    def __init__(self, path):
        self.lock = threading.Lock()
        self.f = open(path, "ab", buffering=0) if path else None

    def write(self, data):
        if self.f is not None:
            with self.lock:
                self.f.write(data)


def records(buf):
    """Split buf into complete (type, header+body) records and the rest."""
    out = []
    while len(buf) >= 5:
        n = struct.unpack("!H", buf[3:5])[0]
        if len(buf) < 5 + n:
            break
        out.append((buf[0], buf[:5 + n]))
        buf = buf[5 + n:]
    return out, buf


def one_byte_records(rec):
    """A plaintext record re-sent as records of one byte each."""
    head, body = rec[:3], rec[5:]
    return b"".join(head + b"\x00\x01" + body[i:i + 1] for i in range(len(body)))


def oversized_record(kind):
    n = MAX_CIPHERTEXT + 1024
    return bytes([kind, 3, 3]) + struct.pack("!H", n) + b"\xa5" * n


def garbage_bytes(at):
    if at == "finished":
        body = os.urandom(512)
        return bytes([APPDATA, 3, 3]) + struct.pack("!H", len(body)) + body
    # no record type TLS knows: 0x00, 0x01, ... 0xff, 0x00, ...
    return bytes(range(256)) * 8


class Peer:
    """One connection: a socket, an SSLObject and the record of the wire."""

    def __init__(self, sock, obj, args, record):
        self.s = sock
        self.obj = obj
        self.inc = obj._inc
        self.out = obj._out
        self.args = args
        self.rec = record
        self.bytes_in = 0
        self.ccs_sent = False
        self.s.settimeout(args.timeout)

    def recv(self):
        data = self.s.recv(65536)
        if data:
            self.rec.write(data)
            self.bytes_in += len(data)
        return data

    def drain_out(self):
        return self.out.read()

    def send(self, data):
        self.s.sendall(data)

    def send_fragmented(self, data):
        """Plaintext handshake records one byte each, until the first CCS."""
        recs, rest = records(data)
        wire = b""
        for kind, rec in recs:
            if kind == HANDSHAKE and not self.ccs_sent:
                wire += one_byte_records(rec)
            else:
                if kind == CCS:
                    self.ccs_sent = True
                wire += rec
        self.send(wire + rest)

    def flush(self):
        data = self.drain_out()
        if not data:
            return
        if self.args.fault == "fragment":
            self.send_fragmented(data)
        else:
            self.send(data)

    def read_until_eof(self, seconds):
        """Keep reading and recording for at most seconds; return the end."""
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline:
                self.s.settimeout(max(0.05, deadline - time.monotonic()))
                try:
                    if not self.recv():
                        return "eof"
                except socket.timeout:
                    return "timeout"
            return "timeout"
        except ConnectionResetError:
            return "reset"
        except OSError as e:
            return "error: %s" % e

    def rst(self):
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                          struct.pack("ii", 1, 0))
        self.s.close()
        return "rst"

    def fault(self):
        """Do the fault at this step; return how the connection ended."""
        f = self.args.fault
        if f == "rst":
            return self.rst()
        if f == "fin":
            self.s.shutdown(socket.SHUT_WR)
            return "fin, then " + self.read_until_eof(self.args.hold)
        if f == "stall":
            return "stall, then " + self.read_until_eof(self.args.hold)
        if f == "oversized":
            self.send(oversized_record(APPDATA if self.args.at == "finished"
                                       else HANDSHAKE))
            return "oversized, then " + self.read_until_eof(self.args.hold)
        if f == "garbage":
            self.send(garbage_bytes(self.args.at))
            return "garbage, then " + self.read_until_eof(self.args.hold)
        raise AssertionError(f)

    def handshake_step(self):
        """Advance the handshake; True once it is complete."""
        try:
            self.obj.do_handshake()
            return True
        except ssl.SSLWantReadError:
            return False

    def read_record_data(self):
        """Feed the socket to the SSL object until it has plaintext or EOF."""
        while True:
            try:
                return self.obj.read(65536)
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLZeroReturnError:
                return b""
            self.flush()
            data = self.recv()
            if not data:
                return None
            self.inc.write(data)

    def echo(self):
        """Echo plaintext until the other side ends; return the end."""
        try:
            while True:
                data = self.read_record_data()
                if data is None:
                    return "eof"
                if data == b"":
                    return "close_notify"
                if self.args.fault == "fragment":
                    for i in range(len(data)):
                        self.obj.write(data[i:i + 1])
                else:
                    self.obj.write(data)
                self.send(self.drain_out())
        except ConnectionResetError:
            return "reset"
        except ssl.SSLError as e:
            return "ssl error: %s" % e.reason
        except OSError as e:
            return "error: %s" % e

    def noread(self):
        time.sleep(self.args.hold)
        return "noread, then " + self.read_until_eof(self.args.timeout)


def make_context(args, server_side):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server_side
                         else ssl.PROTOCOL_TLS_CLIENT)
    if args.max_version:
        ctx.maximum_version = VERSIONS[args.max_version]
    if server_side:
        ctx.load_cert_chain(args.cert, args.key)
        ctx.num_tickets = 0
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def new_peer(ctx, sock, args, record, server_side):
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_side=server_side)
    obj._inc, obj._out = inc, out
    return Peer(sock, obj, args, record)


def serve_one(peer):
    """The server's side of one connection; returns (handshake, end)."""
    a = peer.args
    buf = b""
    # The ClientHello: whole records first, so the step is exact.
    while True:
        recs, _ = records(buf)
        if recs:
            break
        data = peer.recv()
        if not data:
            return "cut", "eof before ClientHello"
        buf += data
    if a.at == "clienthello" and a.fault in ("rst", "fin", "stall",
                                             "oversized"):
        return "cut", peer.fault()
    peer.inc.write(buf)
    done = peer.handshake_step()
    flight = peer.drain_out()
    if a.at in ("serverhello", "certificate") and a.fault in (
            "rst", "fin", "stall", "oversized"):
        recs, _ = records(flight)
        if a.at == "serverhello":
            peer.send(recs[0][1])
        else:
            # TLS 1.2: the plaintext record of handshake type 11; TLS 1.3:
            # the largest encrypted record, which carries the Certificate.
            idx = None
            for i, (kind, rec) in enumerate(recs):
                if kind == HANDSHAKE and len(rec) > 5 and rec[5] == 11:
                    idx = i
            if idx is None:
                sizes = [len(r) if k == APPDATA else 0 for k, r in recs]
                idx = sizes.index(max(sizes))
            cut = b"".join(r for _, r in recs[:idx])
            cut += recs[idx][1][:len(recs[idx][1]) // 2]
            peer.send(cut)
        return "cut", peer.fault()
    if a.fault == "fragment":
        peer.send_fragmented(flight)
    else:
        peer.send(flight)
    try:
        while not done:
            data = peer.recv()
            if not data:
                return "failed: eof", "eof"
            peer.inc.write(data)
            done = peer.handshake_step()
            peer.flush()
    except ssl.SSLError as e:
        peer.flush()
        return "failed: %s" % e.reason, peer.read_until_eof(2)
    peer.flush()
    if a.fault in ("rst", "fin", "stall", "oversized"):
        return "ok", peer.fault()
    if a.fault == "noread":
        return "ok", peer.noread()
    return "ok", peer.echo()


def client_one(peer):
    """The client's side: returns (handshake, end)."""
    a = peer.args
    try:
        peer.handshake_step()
    except ssl.SSLError as e:
        return "failed: %s" % e.reason, "error"
    hello = peer.drain_out()
    if a.at == "clienthello" and a.fault == "garbage":
        return "cut", peer.fault()
    if a.at == "clienthello" and a.fault == "oversized":
        peer.send(oversized_record(HANDSHAKE))
        return "cut", "oversized, then " + peer.read_until_eof(a.hold)
    if a.fault == "fragment":
        peer.send_fragmented(hello)
    else:
        peer.send(hello)
    if a.at == "clienthello" and a.fault in ("rst", "fin", "stall"):
        return "cut", peer.fault()
    try:
        done = False
        while not done:
            data = peer.recv()
            if not data:
                return "failed: eof", "eof"
            peer.inc.write(data)
            done = peer.handshake_step()
            peer.flush()
    except ssl.SSLError as e:
        peer.flush()
        return "failed: %s" % e.reason, peer.read_until_eof(2)
    except ConnectionResetError:
        return "failed: reset", "reset"
    if a.send:
        data = a.send.encode()
        if a.fault == "fragment":
            # application data one byte per record too
            for i in range(len(data)):
                peer.obj.write(data[i:i + 1])
        else:
            peer.obj.write(data)
        peer.flush()
    if a.fault in ("rst", "fin", "stall", "oversized", "garbage"):
        return "ok", peer.fault()
    if a.fault == "noread":
        return "ok", peer.noread()
    # Read and decrypt what the server says until it ends (--hold at most).
    peer.plaintext = b""
    peer.s.settimeout(a.hold)
    try:
        while True:
            data = peer.read_record_data()
            if data is None:
                return "ok", "eof"
            if data == b"":
                return "ok", "close_notify"
            peer.plaintext += data
    except socket.timeout:
        return "ok", "timeout"
    except ConnectionResetError:
        return "ok", "reset"
    except ssl.SSLError as e:
        return "ok", "ssl error: %s" % e.reason


def report(info, conn_no, args, peer, handshake, end):
    version = None
    try:
        version = peer.obj.version()
    except (ValueError, ssl.SSLError):
        pass
    line = {
        "conn": conn_no, "fault": args.fault, "at": args.at,
        "version": version, "bytes_in": peer.bytes_in,
        "handshake": handshake, "end": end}
    if getattr(peer, "plaintext", None) is not None:
        line["plaintext"] = peer.plaintext.decode("latin-1")
    info.write((json.dumps(line) + "\n").encode())


def handle(conn_no, sock, args, ctx, record, info):
    peer = new_peer(ctx, sock, args, record, True)
    try:
        handshake, end = serve_one(peer)
    except (ConnectionResetError, BrokenPipeError):
        handshake, end = "failed: reset", "reset"
    except socket.timeout:
        handshake, end = "failed: timeout", "timeout"
    except ssl.SSLError as e:
        handshake, end = "failed: %s" % e.reason, "error"
    except OSError as e:
        handshake, end = "failed: %s" % e, "error"
    finally:
        try:
            sock.close()
        except OSError:
            pass
    report(info, conn_no, args, peer, handshake, end)


def pump(src, dst, record=None):
    """Copy src to dst until EOF, recording what passes; then half-close."""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if record is not None:
                record.write(data)
            dst.sendall(data)
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def openssl_server(args, ls, record, info):
    """One connection to `openssl s_server`, driven through its stdin."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    inner = probe.getsockname()[1]
    probe.close()
    version = "-tls1_3" if args.fault == "keyupdate" else "-tls1_2"
    proc = subprocess.Popen(
        ["openssl", "s_server", "-accept", "127.0.0.1:%d" % inner,
         "-cert", args.cert, "-cert_chain", args.cert, "-key", args.key,
         version, "-naccept", "1"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)
    lines = []

    def collect():
        for line in proc.stdout:
            lines.append(line.decode(errors="replace").rstrip())
    threading.Thread(target=collect, daemon=True).start()

    def wait_for(text, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if any(text in line for line in lines):
                return True
            time.sleep(0.02)
        return False

    ok = wait_for("ACCEPT", 10)
    print("READY", flush=True)
    c, _ = ls.accept()
    sent = 0
    end = "done"
    try:
        if not ok:
            raise OSError("s_server did not start: %s" % lines)
        s = socket.create_connection(("127.0.0.1", inner))
        up = threading.Thread(target=pump, args=(c, s, record), daemon=True)
        down = threading.Thread(target=pump, args=(s, c), daemon=True)
        up.start()
        down.start()
        if not wait_for("CIPHER is", args.timeout):
            raise OSError("no handshake")
        if args.fault == "keyupdate":
            cmds = []
            for i in range(args.updates):
                cmds.append("K")
                if args.every and (i + 1) % args.every == 0:
                    cmds.append("data-%d" % (i + 1))
            cmds.append("end-of-storm")
        else:
            cmds = ["R", "sleep", "after-renegotiation"]
        for cmd in cmds:
            if cmd == "sleep":
                time.sleep(0.5)
                continue
            # one command per line and per read of s_server's stdin
            proc.stdin.write((cmd + "\n").encode())
            proc.stdin.flush()
            sent += cmd == "K"
            time.sleep(0.005 if cmd == "K" else 0.05)
        up.join(args.hold)
        end = "eof" if not up.is_alive() else "timeout"
    except OSError as e:
        end = "error: %s" % e
    finally:
        proc.kill()
        proc.wait()
        c.close()
    info.write((json.dumps({
        "conn": 1, "fault": args.fault, "updates_sent": sent, "end": end,
        "server_errors": [line for line in lines
                          if "error" in line.lower()
                          or "renegotiat" in line.lower()]}) + "\n").encode())


def main():
    args = parse_args()
    record = Output(args.record)
    info = Output(args.info)
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    if args.connect:
        s = socket.create_connection((args.host, args.port), timeout=10)
        print("READY", flush=True)
        peer = new_peer(make_context(args, False), s, args, record, False)
        try:
            handshake, end = client_one(peer)
        except (ConnectionResetError, BrokenPipeError):
            handshake, end = "failed: reset", "reset"
        except OSError as e:
            handshake, end = "failed: %s" % e, "error"
        try:
            s.close()
        except OSError:
            pass
        report(info, 1, args, peer, handshake, end)
        return 0
    ctx = make_context(args, True)
    ls = socket.socket(family, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if args.fault == "noread":
        # a small window makes the writer feel the back-pressure soon
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    if family == socket.AF_INET6:
        ls.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    ls.bind((args.host, args.port))
    ls.listen(16)
    if args.fault in ("keyupdate", "renegotiate"):
        openssl_server(args, ls, record, info)
        return 0
    print("READY", flush=True)
    threads = []
    accepted = 0
    while args.count == 0 or accepted < args.count:
        s, _ = ls.accept()
        accepted += 1
        t = threading.Thread(target=handle, daemon=True,
                             args=(accepted, s, args, ctx, record, info))
        t.start()
        threads = [x for x in threads if x.is_alive()] + [t]
    ls.close()
    for t in threads:
        t.join(args.timeout + args.hold + 5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
