#!/usr/bin/python3
"""STARTTLS server peer for the tlsshim end-to-end tests.

Speaks the upgrade dialogue of one protocol (smtp, imap, pop3, ftp, nntp,
ldap, xmpp, postgres, mysql), then TLS with the given certificate, then answers
the few commands a simple client sends (tests/peers/proto_client.py, curl
for smtp, imap and pop3). One thread per connection; prints READY once
listening.

Modes: normal (offer STARTTLS and accept it), nostarttls (do not offer it:
the capability lists lack it and the request is answered as unknown),
refuse (offer it but refuse the request), inject (accept, and send a fake
answer or command in the same segment as the go-ahead: the STARTTLS
injection of CVE-2011-0411 and its kin), inject_late (the same bytes in
a segment of their own, 200 ms after the go-ahead), stall (greet, then
answer nothing).

--record FILE gets one JSON line per connection: conn (accept order),
pre (every byte received in plaintext, as latin-1 text), post (every byte
received over TLS), tls (whether the handshake succeeded), version, sni,
error (text or null), and for SMTP data_sha256, the SHA-256 of each
message body received (the bytes between DATA's 354 and the final
"\\r\\n.\\r\\n", its first CRLF included, dots unstuffed).

MySQL (a MariaDB-like server): the greeting offers CLIENT_SSL (not in
nostarttls and refuse modes); an SSLRequest starts TLS; the login is
answered with an auth switch and a second scramble, and each auth answer
must be the SHA-1 of the scramble it answers (proving the client saw the
greeting's), else an access-denied error.  Every packet's sequence id is
checked as a real server checks it (out of order: error 1156 and the
connection is closed).  A query is answered with one row holding the
SHA-256 of its text.  The record adds mysql: the sequence ids received,
the capability flags of the SSLRequest and of the login, the user, the
database, and whether the login succeeded.  inject: an OK packet follows
the greeting in its segment.  odd_greeting: the greeting's filler and
reserved bytes are not zero and bytes follow its plugin name (a valid
greeting otherwise, offering SSL).
"""

import argparse
import hashlib
import json
import socket
import ssl
import struct
import sys
import threading
import time

LDAP_OID = b"1.3.6.1.4.1.1466.20037"
XMPP_TLS_NS = "urn:ietf:params:xml:ns:xmpp-tls"
STREAM_NS = "http://etherx.jabber.org/streams"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--proto", required=True,
                   choices=("smtp", "imap", "pop3", "ftp", "nntp", "ldap",
                            "xmpp", "postgres", "mysql"))
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--cert", required=True, help="PEM certificate (chain)")
    p.add_argument("--key", required=True)
    p.add_argument("--mode", default="normal",
                   choices=("normal", "nostarttls", "refuse", "inject",
                            "inject_late", "stall", "odd_greeting"))
    p.add_argument("--record", help="append one JSON line per connection")
    p.add_argument("--count", type=int, default=0,
                   help="exit after N connections (default: serve forever)")
    p.add_argument("--timeout", type=float, default=20.0)
    return p.parse_args()


class Closed(Exception):
    """The client went away."""


class Conn:
    """A line- and byte-oriented connection that becomes TLS on demand and
    records everything it receives, per phase."""

    def __init__(self, sock, ctx, timeout):
        self.sock = sock
        self.ctx = ctx
        self.sock.settimeout(timeout)
        self.buf = b""
        self.pre = bytearray()
        self.post = bytearray()
        self.tls = False
        self.version = None
        self.sni = None
        self.bodies = []
        self.mysql = None

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise Closed()
        (self.post if self.tls else self.pre).extend(data)
        self.buf += data

    def readline(self):
        while b"\n" not in self.buf:
            self._fill()
        line, _, self.buf = self.buf.partition(b"\n")
        return line.rstrip(b"\r")

    def read_exact(self, n, exact=False):
        """n bytes; exact: receive no more than that, when what follows
        them may be the client's TLS handshake (MySQL's client sends its
        ClientHello right after the SSLRequest, unanswered)."""
        while len(self.buf) < n:
            if exact:
                data = self.sock.recv(n - len(self.buf))
                if not data:
                    raise Closed()
                (self.post if self.tls else self.pre).extend(data)
                self.buf += data
            else:
                self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_until(self, marker):
        while marker not in self.buf:
            self._fill()
        i = self.buf.index(marker) + len(marker)
        data, self.buf = self.buf[:i], self.buf[i:]
        return data

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def starttls(self):
        if self.buf:
            raise RuntimeError("client sent %d bytes before the handshake"
                               % len(self.buf))
        self.sock = self.ctx.wrap_socket(self.sock, server_side=True)
        self.tls = True
        self.version = self.sock.version()
        with sni_lock:
            self.sni = sni_seen.pop(id(self.sock), None)


# SNI seen per connection, keyed by the id of the SSL socket object.
sni_lock = threading.Lock()
sni_seen = {}


def remember_sni(sslobj, server_name, _ctx):
    with sni_lock:
        sni_seen[id(sslobj)] = server_name


def go_ahead(conn, mode, text, injected):
    """Send the go-ahead (with the injected bytes in the same segment in
    inject mode, in a later one in inject_late mode) and run the
    handshake."""
    conn.send(text + (injected if mode == "inject" else b""))
    if mode == "inject_late":
        time.sleep(0.2)
        conn.send(injected)
    conn.starttls()


# --- SMTP --------------------------------------------------------------------

def smtp(conn, mode):
    conn.send("220 real.server ESMTP FakeMail\r\n")
    while True:
        line = conn.readline()
        if mode == "stall":
            continue
        verb = line.split(b" ", 1)[0].upper()
        if verb in (b"EHLO", b"HELO") and not conn.tls:
            conn.send("250-real.server\r\n250-PIPELINING\r\n" +
                      ("" if mode == "nostarttls" else "250-STARTTLS\r\n") +
                      "250 SIZE 1000000\r\n")
        elif verb == b"EHLO":
            conn.send("250-real.server greets %s over TLS\r\n250 SIZE "
                      "1000000\r\n" % line[5:].decode("latin-1"))
        elif verb == b"STARTTLS" and not conn.tls and mode == "refuse":
            conn.send("454 4.7.0 TLS not available\r\n")
        elif verb == b"STARTTLS" and not conn.tls and mode != "nostarttls":
            go_ahead(conn, mode, b"220 2.0.0 Ready to start TLS\r\n",
                     b"250-INJECTED\r\n250 AUTH PLAIN\r\n")
        elif verb in (b"MAIL", b"RCPT", b"RSET", b"NOOP"):
            conn.send("250 2.0.0 OK\r\n")
        elif verb == b"DATA":
            conn.send("354 end with <CRLF>.<CRLF>\r\n")
            raw = conn.read_until(b"\r\n.\r\n")[:-3]
            body = b"\r\n".join(l[1:] if l.startswith(b".") else l
                                for l in raw.split(b"\r\n"))
            conn.bodies.append(hashlib.sha256(body).hexdigest())
            conn.send("250 2.0.0 queued sha256=%s\r\n" % conn.bodies[-1])
        elif verb == b"QUIT":
            conn.send("221 2.0.0 bye\r\n")
            return
        else:
            conn.send("502 5.5.2 unknown command\r\n")


# --- IMAP --------------------------------------------------------------------

def imap(conn, mode):
    offer = "" if mode == "nostarttls" else " STARTTLS"
    conn.send("* OK [CAPABILITY IMAP4rev1%s] real.server IMAP ready\r\n"
              % offer)
    while True:
        line = conn.readline().decode("latin-1")
        if mode == "stall":
            continue
        tag, _, rest = line.partition(" ")
        verb = rest.split(" ", 1)[0].upper()
        if verb == "CAPABILITY":
            caps = "IMAP4rev1" if conn.tls else \
                "IMAP4rev1%s LOGINDISABLED" % offer
            conn.send("* CAPABILITY %s\r\n%s OK CAPABILITY done\r\n"
                      % (caps, tag))
        elif verb == "STARTTLS" and not conn.tls and mode == "refuse":
            conn.send("%s NO STARTTLS not now\r\n" % tag)
        elif verb == "STARTTLS" and not conn.tls and mode != "nostarttls":
            go_ahead(conn, mode, ("%s OK begin TLS\r\n" % tag).encode(),
                     b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] INJECTED\r\n")
        elif verb == "LOGIN":
            conn.send("%s OK LOGIN done\r\n" % tag)
        elif verb in ("LIST", "LSUB"):
            conn.send('* %s (\\HasNoChildren) "/" INBOX\r\n%s OK %s done\r\n'
                      % (verb, tag, verb))
        elif verb in ("SELECT", "EXAMINE"):
            conn.send("* 0 EXISTS\r\n%s OK [READ-WRITE] SELECT done\r\n"
                      % tag)
        elif verb == "NOOP":
            conn.send("%s OK NOOP done\r\n" % tag)
        elif verb == "LOGOUT":
            conn.send("* BYE real.server\r\n%s OK LOGOUT done\r\n" % tag)
            return
        else:
            conn.send("%s BAD unknown command\r\n" % tag)


# --- POP3 --------------------------------------------------------------------

def pop3(conn, mode):
    conn.send("+OK real.server POP3 ready <1896.697170952@real.server>\r\n")
    while True:
        line = conn.readline().decode("latin-1")
        if mode == "stall":
            continue
        verb = line.split(" ", 1)[0].upper()
        if verb == "CAPA":
            stls = "" if conn.tls or mode == "nostarttls" else "STLS\r\n"
            conn.send("+OK capabilities\r\nUSER\r\n%s.\r\n" % stls)
        elif verb == "STLS" and not conn.tls and mode == "refuse":
            conn.send("-ERR not now\r\n")
        elif verb == "STLS" and not conn.tls and mode != "nostarttls":
            go_ahead(conn, mode, b"+OK begin TLS\r\n", b"+OK INJECTED\r\n")
        elif verb in ("USER", "PASS", "NOOP"):
            conn.send("+OK\r\n")
        elif verb == "STAT":
            conn.send("+OK 1 7\r\n")
        elif verb == "LIST":
            conn.send("+OK 1 messages\r\n1 7\r\n.\r\n")
        elif verb == "RETR":
            conn.send("+OK 7 octets\r\nhello\r\n.\r\n")
        elif verb == "QUIT":
            conn.send("+OK bye\r\n")
            return
        else:
            conn.send("-ERR unknown command\r\n")


# --- FTP (control connection) ------------------------------------------------

def ftp(conn, mode):
    conn.send("220-real.server FTP\r\n220 ready\r\n")
    while True:
        line = conn.readline().decode("latin-1")
        if mode == "stall":
            continue
        verb = line.split(" ", 1)[0].upper()
        if verb == "AUTH" and not conn.tls and mode == "refuse":
            conn.send("534 not now\r\n")
        elif verb == "AUTH" and not conn.tls and mode != "nostarttls":
            go_ahead(conn, mode, b"234 AUTH TLS ok\r\n", b"230 INJECTED\r\n")
        elif verb == "PBSZ" and conn.tls:
            conn.send("200 PBSZ=0\r\n")
        elif verb == "PROT" and conn.tls:
            conn.send("200 Protection level set to %s\r\n" % line[5:])
        elif verb == "USER":
            conn.send("331 password please\r\n")
        elif verb == "PASS":
            conn.send("230 logged in\r\n")
        elif verb == "SYST":
            conn.send("215 UNIX Type: L8\r\n")
        elif verb == "PWD":
            conn.send('257 "/" is the current directory\r\n')
        elif verb == "QUIT":
            conn.send("221 bye\r\n")
            return
        else:
            conn.send("500 unknown command\r\n")


# --- NNTP --------------------------------------------------------------------

def nntp(conn, mode):
    conn.send("200 real.server NNTP ready\r\n")
    while True:
        line = conn.readline().decode("latin-1")
        if mode == "stall":
            continue
        verb = line.split(" ", 1)[0].upper()
        if verb == "CAPABILITIES":
            stls = "" if conn.tls or mode == "nostarttls" else "STARTTLS\r\n"
            conn.send("101 Capability list:\r\nVERSION 2\r\nREADER\r\n%s.\r\n"
                      % stls)
        elif verb == "STARTTLS" and not conn.tls and mode == "refuse":
            conn.send("580 Can not initiate TLS negotiation\r\n")
        elif verb == "STARTTLS" and not conn.tls and mode != "nostarttls":
            go_ahead(conn, mode, b"382 Continue with TLS negotiation\r\n",
                     b"281 INJECTED\r\n")
        elif verb == "DATE":
            conn.send("111 20240101000000\r\n")
        elif verb == "QUIT":
            conn.send("205 bye\r\n")
            return
        else:
            conn.send("500 unknown command\r\n")


# --- LDAP --------------------------------------------------------------------

def ber_length(n):
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def ber(tag, content):
    return bytes([tag]) + ber_length(len(content)) + content


def ldap_result(msgid, op, code, diag=b"", extra=b""):
    res = ber(0x0A, bytes([code])) + ber(0x04, b"") + ber(0x04, diag) + extra
    return ber(0x30, ber(0x02, bytes([msgid])) + ber(op, res))


def ldap_read(conn):
    """One LDAPMessage: (message id, protocolOp tag, its content)."""
    head = conn.read_exact(2)
    if head[0] != 0x30:
        raise RuntimeError("not an LDAP message")
    n = head[1]
    if n & 0x80:
        n = int.from_bytes(conn.read_exact(n & 0x7F), "big")
    body = conn.read_exact(n)
    idlen = body[1]
    msgid = int.from_bytes(body[2:2 + idlen], "big")
    rest = body[2 + idlen:]
    return msgid, rest[0], rest


def ldap(conn, mode):
    while True:
        msgid, op, rest = ldap_read(conn)
        if mode == "stall":
            continue
        if op == 0x77 and not conn.tls:           # ExtendedRequest
            if LDAP_OID not in rest or mode in ("nostarttls", "refuse"):
                conn.send(ldap_result(msgid, 0x78, 2,
                                      b"unsupported extended operation"))
                continue
            ok = ldap_result(msgid, 0x78, 0, b"", ber(0x8A, LDAP_OID))
            conn.send(ok + (ldap_result(2, 0x61, 0) if mode == "inject"
                            else b""))
            conn.starttls()
        elif op == 0x60:                          # BindRequest
            conn.send(ldap_result(msgid, 0x61, 0))
        elif op == 0x42:                          # UnbindRequest
            return
        else:
            conn.send(ldap_result(msgid, 0x78, 2, b"unsupported"))


# --- XMPP --------------------------------------------------------------------

def xmpp_header(conn):
    """Read the client's stream header; answer with ours."""
    conn.read_until(b"<stream:stream")
    conn.read_until(b">")
    conn.send("<?xml version='1.0'?><stream:stream from='real.server' "
              "id='s%d' version='1.0' xmlns='jabber:client' "
              "xmlns:stream='%s'>" % (int(time.time()), STREAM_NS))


def xmpp(conn, mode):
    xmpp_header(conn)
    if mode == "stall":
        conn.read_until(b"never")
    starttls = "" if mode == "nostarttls" else \
        "<starttls xmlns='%s'><required/></starttls>" % XMPP_TLS_NS
    conn.send("<stream:features>%s<mechanisms xmlns='urn:ietf:params:xml:ns:"
              "xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms>"
              "</stream:features>" % starttls)
    if mode != "nostarttls":
        conn.read_until(b"<starttls")
        conn.read_until(b">")
        if mode == "refuse":
            conn.send("<failure xmlns='%s'/></stream:stream>" % XMPP_TLS_NS)
            return
        go_ahead(conn, mode, ("<proceed xmlns='%s'/>" % XMPP_TLS_NS).encode(),
                 b"<message from='admin@real.server'><body>INJECTED</body>"
                 b"</message>")
        xmpp_header(conn)
        conn.send("<stream:features><mechanisms xmlns='urn:ietf:params:xml:"
                  "ns:xmpp-sasl'><mechanism>SCRAM-SHA-1</mechanism>"
                  "<mechanism>PLAIN</mechanism></mechanisms>"
                  "</stream:features>")
    conn.read_until(b"</stream:stream>")
    conn.send("</stream:stream>")


# --- PostgreSQL --------------------------------------------------------------

def pg_message(kind, payload):
    return kind + struct.pack("!I", len(payload) + 4) + payload


def postgres(conn, mode):
    while True:
        n = struct.unpack("!I", conn.read_exact(4))[0]
        body = conn.read_exact(n - 4)
        code = struct.unpack("!I", body[:4])[0]
        if mode == "stall":
            conn.read_until(b"never")
        if code == 80877103 and not conn.tls:        # SSLRequest
            if mode in ("nostarttls", "refuse"):
                conn.send(b"N")
                continue
            go_ahead(conn, mode, b"S", pg_message(b"R", struct.pack("!I", 0)))
            continue
        if code == 196608:                           # StartupMessage
            break
        raise RuntimeError("unexpected startup code %d" % code)
    conn.send(pg_message(b"R", struct.pack("!I", 0)) +
              pg_message(b"S", b"server_version\x0016.0\x00") +
              pg_message(b"Z", b"I"))
    while True:
        kind = conn.read_exact(1)
        n = struct.unpack("!I", conn.read_exact(4))[0]
        payload = conn.read_exact(n - 4)
        if kind == b"X":
            return
        if kind == b"Q":
            conn.send(pg_message(b"T", struct.pack("!H", 1) + b"x\x00" +
                                 struct.pack("!IhIhih", 0, 0, 23, 4, -1, 0)) +
                      pg_message(b"D", struct.pack("!HI", 1, 1) + b"1") +
                      pg_message(b"C", b"SELECT 1\x00") +
                      pg_message(b"Z", b"I"))
        else:
            raise RuntimeError("unexpected message %r (%r)" % (kind, payload))


# --- MySQL / MariaDB ---------------------------------------------------------

MY_PROTOCOL_41 = 0x200
MY_SSL = 0x800
MY_CONNECT_WITH_DB = 0x8
MY_SECURE_CONNECTION = 0x8000
MY_PLUGIN_AUTH = 0x80000
MY_VERSION = b"5.5.5-10.11.0-MariaDB-fake"


class OutOfOrder(Exception):
    """A packet with the wrong sequence id (the server answers 1156)."""


def my_packet(seq, payload):
    return struct.pack("<I", len(payload))[:3] + bytes([seq & 0xFF]) + payload


class MyConn:
    """Packets of one MySQL connection, sequence ids checked as a server
    checks them: each packet continues the sequence, a command starts it
    again at 0."""

    def __init__(self, conn):
        self.conn = conn
        self.seq = 0
        self.rec = {"seqs": [], "ssl_caps": None, "login_caps": None,
                    "user": None, "db": None, "logged_in": False}
        conn.mysql = self.rec

    def send(self, payload, segment_tail=b""):
        self.conn.send(my_packet(self.seq, payload) + segment_tail)
        self.seq += 1

    def read(self, command=False):
        head = self.conn.read_exact(4, exact=True)
        n = head[0] | head[1] << 8 | head[2] << 16
        seq = head[3]
        self.rec["seqs"].append(seq)
        want = 0 if command else self.seq
        if seq != want:
            self.seq = seq + 1
            raise OutOfOrder("packet %d, want %d" % (seq, want))
        self.seq = seq + 1
        return self.conn.read_exact(n, exact=True)

    def error(self, code, text):
        self.send(struct.pack("<BH", 0xFF, code) + b"#28000" + text)

    def ok(self):
        self.send(b"\x00\x00\x00\x02\x00\x00\x00")

    def eof(self):
        self.send(b"\xfe\x00\x00\x02\x00")


def my_greeting(scramble, ssl, odd=False):
    caps = 0x81FFF7FE | (MY_SSL if ssl else 0)
    return (b"\x0a" + MY_VERSION + b"\x00" + struct.pack("<I", 7) +
            scramble[:8] + (b"\x7f" if odd else b"\x00") +
            struct.pack("<H", caps & 0xFFFF) +
            b"\x21" + struct.pack("<H", 2) + struct.pack("<H", caps >> 16) +
            bytes([21]) + (b"ODDODD" if odd else b"\x00" * 6) +
            struct.pack("<I", 0) + scramble[8:] + b"\x00" +
            b"mysql_native_password\x00" + (b"TRAILING" if odd else b""))


def my_cstring(data, pos):
    end = data.index(b"\x00", pos)
    return data[pos:end], end + 1


def mysql(conn, mode):
    my = MyConn(conn)
    scramble = bytes(range(0x41, 0x41 + 20))
    offer = mode not in ("nostarttls", "refuse")
    injected = my_packet(2, b"\x00\x00\x00\x02\x00\x00\x00")
    my.send(my_greeting(scramble, offer, mode == "odd_greeting"),
            injected if mode == "inject" else b"")
    if mode == "inject_late":
        time.sleep(0.2)
        conn.send(injected)
    try:
        login = my.read()
        caps = struct.unpack("<I", login[:4])[0]
        if caps & MY_SSL and len(login) == 32:
            my.rec["ssl_caps"] = caps
            if not offer:
                raise RuntimeError("an SSLRequest to a server without SSL")
            if mode == "stall":
                conn.read_until(b"never")
            conn.starttls()
            login = my.read()
            caps = struct.unpack("<I", login[:4])[0]
        my.rec["login_caps"] = caps
        if not caps & MY_PROTOCOL_41 or not caps & MY_SECURE_CONNECTION:
            raise RuntimeError("not a protocol 4.1 login")
        user, pos = my_cstring(login, 32)
        answer = login[pos + 1:pos + 1 + login[pos]]
        pos += 1 + login[pos]
        if caps & MY_CONNECT_WITH_DB:
            my.rec["db"], pos = my_cstring(login, pos)
            my.rec["db"] = my.rec["db"].decode()
        my.rec["user"] = user.decode()
        if answer != hashlib.sha1(scramble).digest():
            my.error(1045, b"Access denied: not the greeting's scramble")
            return
        # switch to a second scramble: one more round of the connection
        # phase, whose ids the client numbers on
        second = bytes(range(0x61, 0x61 + 20))
        my.send(b"\xfe" + b"mysql_native_password\x00" + second + b"\x00")
        if my.read() != hashlib.sha1(second).digest():
            my.error(1045, b"Access denied: not the switch's scramble")
            return
        my.ok()
        my.rec["logged_in"] = True
        while True:
            cmd = my.read(command=True)
            if cmd[:1] == b"\x01":                     # COM_QUIT
                return
            if cmd[:1] != b"\x03":                     # COM_QUERY
                my.error(1047, b"Unknown command")
                continue
            value = hashlib.sha256(cmd[1:]).hexdigest().encode()
            my.send(b"\x01")                           # column count
            my.send(b"\x03def\x00\x00\x00\x01v\x00\x0c\x21\x00\x40\x00\x00"
                    b"\x00\xfd\x00\x00\x00\x00\x00")
            my.eof()
            my.send(bytes([len(value)]) + value)
            my.eof()
    except OutOfOrder as e:
        my.error(1156, b"Got packets out of order")
        raise RuntimeError("packets out of order: %s" % e)


HANDLERS = {
    "smtp": smtp, "imap": imap, "pop3": pop3, "ftp": ftp, "nntp": nntp,
    "ldap": ldap, "xmpp": xmpp, "postgres": postgres, "mysql": mysql,
}


def serve(sock, number, args, ctx, out, out_lock):
    conn = Conn(sock, ctx, args.timeout)
    error = None
    try:
        HANDLERS[args.proto](conn, args.mode)
    except Closed:
        pass
    except (OSError, ssl.SSLError, RuntimeError, ValueError) as e:
        error = "%s: %s" % (type(e).__name__, e)
    finally:
        try:
            conn.sock.close()
        except OSError:
            pass
    rec = {
        "conn": number,
        "pre": conn.pre.decode("latin-1"),
        "post": conn.post.decode("latin-1"),
        "tls": conn.tls,
        "version": conn.version,
        "sni": conn.sni,
        "error": error,
    }
    if args.proto == "smtp":
        rec["data_sha256"] = conn.bodies
    if args.proto == "mysql":
        rec["mysql"] = conn.mysql
    if out is not None:
        with out_lock:
            out.write((json.dumps(rec) + "\n").encode())


def main():
    args = parse_args()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    ctx.sni_callback = remember_sni
    out = open(args.record, "ab", buffering=0) if args.record else None
    out_lock = threading.Lock()
    lsock = socket.socket(socket.AF_INET6 if ":" in args.host
                          else socket.AF_INET)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((args.host, args.port))
    lsock.listen(16)
    print("READY", flush=True)
    threads = []
    number = 0
    while args.count == 0 or number < args.count:
        sock, _ = lsock.accept()
        number += 1
        t = threading.Thread(target=serve,
                             args=(sock, number, args, ctx, out, out_lock))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
