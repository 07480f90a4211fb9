"""Start the API (or any local HTTP service) in a subprocess and wait until it answers: used by the tests, the
benchmarks and the UI's browser tests, so that they exercise the real server exactly as `serve` runs it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def background(cmd: list[str], env: dict[str, str], ready_url: str, ready=lambda body: True, timeout: float = 120,
               log: Path | None = None):
    """Run `cmd` until the block ends; enter the block once `ready_url` answers 200 (and `ready(body)` holds)."""
    out = open(log, "w") if log else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1", **env}, stdout=out,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[2:4]} exited with {proc.returncode}" + (f" (log: {log})" if log else ""))
            try:
                with urllib.request.urlopen(ready_url, timeout=2) as r:
                    if r.status == 200 and ready(r.read()):
                        break
            except OSError:
                pass
            if time.time() > deadline:
                raise TimeoutError(f"{ready_url} did not answer within {timeout:.0f}s")
            time.sleep(0.5)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        if log:
            out.close()


@contextmanager
def api_server(env: dict[str, str], workers: int = 1, log: Path | None = None, timeout: float = 180):
    """`python -m assistant serve` on a free local port; yields its base URL once /healthz says ok."""
    port = free_port()
    cmd = [sys.executable, "-m", "assistant", "serve", "--port", str(port), "--workers", str(workers),
           "--log-level", "warning"]
    url = f"http://127.0.0.1:{port}"
    with background(cmd, env, f"{url}/healthz", timeout=timeout, log=log):
        yield url
