"""A baseline for `cargo xtask bench`: a plain Python loop echoing length-prefixed frames.

``python raw_socket_echo.py /path/echo.sock`` listens on the Unix socket, serves one
connection (4-byte big-endian length, then that many bytes; each frame is sent back as is)
and exits when the connection closes. It is the floor any Python transport pays.
"""

import os
import socket
import sys


def read_exactly(conn, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def main() -> None:
    path = sys.argv[1]
    if os.path.exists(path):
        os.unlink(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    conn, _ = server.accept()
    with conn:
        while True:
            header = read_exactly(conn, 4)
            if header is None:
                return
            body = read_exactly(conn, int.from_bytes(header, "big"))
            if body is None:
                return
            conn.sendall(header + body)


if __name__ == "__main__":
    main()
