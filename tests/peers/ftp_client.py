#!/usr/bin/python3
"""Plain FTP client (ftplib, no TLS) for the tlsshim FTP data tests: run
under tlsshim with a starttls = ftp rule, it logs in and then does one
action, printing one result line.

  stor-active FILE   upload FILE in active mode (PORT): "STORED <reply>"
  stor-passive FILE  upload FILE in passive mode: "STORED <reply>"
  pasv-flood N FILE  send PASV N times (their data connections never
                     made), then upload FILE in passive mode: "STORED
                     <reply>" or "ERROR errno"
  pasv-connect       send PASV, then connect to the address of the 227
                     answer itself (a client that honours it, or another
                     thread of the program): "CONNECTED" or "ERROR errno"
"""

import ftplib
import socket
import sys


def main():
    port, action = int(sys.argv[1]), sys.argv[2]
    ftp = ftplib.FTP()
    ftp.connect("127.0.0.1", port, timeout=20)
    ftp.login("anonymous", "test@")
    if action in ("stor-active", "stor-passive"):
        ftp.set_pasv(action == "stor-passive")
        with open(sys.argv[3], "rb") as f:
            print("STORED " + ftp.storbinary("STOR up.bin", f), flush=True)
    elif action == "pasv-flood":
        for _ in range(int(sys.argv[3])):
            ftp.sendcmd("PASV")
        try:
            with open(sys.argv[4], "rb") as f:
                print("STORED " + ftp.storbinary("STOR up.bin", f),
                      flush=True)
        except OSError as e:
            print("ERROR %s" % (socket.errno.errorcode.get(e.errno, e.errno)),
                  flush=True)
    elif action == "pasv-connect":
        host, p = ftplib.parse227(ftp.sendcmd("PASV"))
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.connect((host, p))
            print("CONNECTED", flush=True)
        except OSError as e:
            print("ERROR %s" % (socket.errno.errorcode.get(e.errno, e.errno)),
                  flush=True)
        s.close()
    ftp.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
