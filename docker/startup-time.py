#!/usr/bin/env python3
"""Start-up time of a service binary: from exec to the first `200` on each health path.

    docker/startup-time.py RUNS PORT PATHS BINARY [ARGS...]
    BACKEND=memory docker/startup-time.py 20 18080 /healthz,/readyz target/release/event-source

Starts BINARY RUNS times with LISTEN_ADDR=127.0.0.1:PORT (the rest of the environment as given),
polls each path (comma-separated, in order) every 0.5 ms with a raw HTTP/1.1 GET, stops the
process, and prints the median, minimum and maximum per path. Numbers for the README's image
table; only talks to 127.0.0.1.
"""

import os
import socket
import statistics
import subprocess
import sys
import time

TIMEOUT_S = 60


def answered(port: int, path: str) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def once(command: list[str], port: int, paths: list[str], env: dict[str, str]) -> dict[str, float]:
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    elapsed = {}
    try:
        for path in paths:
            while not answered(port, path):
                if process.poll() is not None:
                    sys.exit(f"{command[0]} exited with {process.returncode} (run it by hand to see why)")
                if time.perf_counter() - start > TIMEOUT_S:
                    sys.exit(f"{path} did not answer 200 within {TIMEOUT_S} s")
                time.sleep(0.0005)
            elapsed[path] = (time.perf_counter() - start) * 1000
    finally:
        process.terminate()
        process.wait(10)
    return elapsed


def main() -> None:
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    runs, port, paths, command = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3].split(","), sys.argv[4:]
    env = dict(os.environ, LISTEN_ADDR=f"127.0.0.1:{port}")
    results = [once(command, port, paths, env) for _ in range(runs)]
    for path in paths:
        ms = [r[path] for r in results]
        print(f"{path}: median {statistics.median(ms):.1f} ms, min {min(ms):.1f}, max {max(ms):.1f} (n={runs})")


if __name__ == "__main__":
    main()
