"""A real S3-wire-protocol server on 127.0.0.1 for tests and benches: moto's server mode.

`start()` runs `python -m moto.server` on a free loopback port and returns it with the
environment a client needs (fake credentials, the endpoint, no EC2 metadata look-ups, so
nothing but the loopback address is ever contacted); `stop()` ends it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

SECRET = "s3cr3t-test-key-never-printed"
ACCESS_KEY = "AKIATESTNEVERPRINTED"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def client_environment(endpoint: str) -> dict[str, str]:
    """Variables a process needs to use the server (and nothing else) as its S3."""
    return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": endpoint, "AWS_EC2_METADATA_DISABLED": "true"}


def start(timeout_s: float = 60.0) -> tuple[subprocess.Popen, str]:
    """(the server process, its endpoint URL), once it answers."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("moto server did not start")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def make_bucket(endpoint: str, bucket: str) -> None:
    from pyarrow import fs

    saved = {name: os.environ.get(name) for name in client_environment(endpoint)}
    os.environ.update(client_environment(endpoint))
    try:
        fs.S3FileSystem(endpoint_override=endpoint.removeprefix("http://"), scheme="http", region="us-east-1",
                        allow_bucket_creation=True).create_dir(bucket)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
