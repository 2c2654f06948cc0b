"""Runs moto server on 127.0.0.1 at a free port until its stdin closes.

Prints `PORT <n>` once the server listens. The parent (test harness, `make demo`) keeps our stdin open
and closing it (on exit, even a crash) stops the server: no moto is ever left behind.
"""
import sys

from moto.server import ThreadedMotoServer


def main() -> None:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    print(f"PORT {port}", flush=True)
    try:
        sys.stdin.read()
    except KeyboardInterrupt:
        pass
    server.stop()


if __name__ == "__main__":
    main()
