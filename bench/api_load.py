"""The HTTP API under load: `python -m assistant serve` on 127.0.0.1, extractive backend, sample knowledge base.

    python bench/api_load.py [--clients 20] [--requests 200] [--workers 1]

1. one client, sequential: the latency baseline;
2. `--clients` concurrent clients sharing `--requests` chat completions: throughput, p50/p95/p99, errors;
3. the same, while one more client uploads and deletes a document in a loop (ingestion is serialized in the
   server; answers must keep coming, and each upload must be answerable at once).
Target (issue 7): 0 errors, p95 under load <= 3x the single-client p95.
With --workers > 1 a Chroma server is started too (workers share one store, as in production).
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KEY = secrets.token_hex(12)
NOTE = b"# Marine cover\nSailing boats are covered up to 12 metres in length. Racing is excluded unless declared."


def questions() -> list[str]:
    """Every request a different text (so the query-embedding cache never helps, as with real customers), about the
    sample KB's public questions (so its sentences are in the sentence cache, as a warm server's are)."""
    cases = [json.loads(line) for line in (ROOT / "data" / "sample_kb" / "eval.jsonl").read_text().splitlines() if line]
    base = [c["question"] for c in cases if c["audience"] == "public"]
    greetings = ["", "Hi, ", "Hello! ", "Quick question: ", "Good morning. ", "Please tell me: "]
    thanks = ["", " Thanks.", " Thank you!", " Cheers.", " Many thanks."]
    return [g + q + t for t in thanks for g in greetings for q in base]


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def summary(name: str, lat: list[float], errors: int, seconds: float) -> dict:
    out = {"run": name, "requests": len(lat) + errors, "errors": errors, "seconds": round(seconds, 1),
           "throughput_rps": round(len(lat) / seconds, 1), "p50_ms": round(1000 * statistics.median(lat)),
           "p95_ms": round(1000 * pct(lat, .95)), "p99_ms": round(1000 * pct(lat, .99))}
    print(f"{name:<34} {out['requests']:>5} req  {out['errors']} errors  {out['throughput_rps']:>5} req/s  "
          f"p50 {out['p50_ms']:>5} ms  p95 {out['p95_ms']:>5} ms  p99 {out['p99_ms']:>5} ms")
    return out


def run(url: str, qs: list[str], total: int, clients: int, ingest: bool = False, offset: int = 0) -> tuple[list[float], int, dict]:
    import httpx

    lat, errors, lock = [], [0], threading.Lock()
    counter = iter(range(offset, offset + total))
    stop = threading.Event()
    ingested = {"uploads": 0, "answerable_next": 0, "errors": 0}

    def asker():
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=120) as c:
            for i in counter:
                t = time.perf_counter()
                try:
                    r = c.post("/v1/chat/completions", json={"model": "assistant-extractive",
                                                             "messages": [{"role": "user", "content": qs[i % len(qs)]}]})
                    ok = r.status_code == 200 and r.json()["choices"][0]["message"]["content"]
                except Exception:
                    ok = False
                with lock:
                    (lat.append(time.perf_counter() - t) if ok else errors.__setitem__(0, errors[0] + 1))

    def ingester():
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=120) as c:
            while not stop.is_set():
                up = c.post("/v1/documents", files={"files": ("marine.md", NOTE, "text/markdown")})
                r = c.post("/v1/chat/completions", json={"model": "assistant-extractive", "messages": [
                    {"role": "user", "content": "How long can a sailing boat be to be covered?"}]})
                gone = c.delete(f"/v1/documents/{up.json()['documents'][0]}") if up.status_code == 200 else up
                ingested["uploads"] += 1
                ingested["answerable_next"] += r.status_code == 200 and "12 metres" in r.json()["choices"][0]["message"]["content"]
                for step, resp in (("upload", up), ("ask", r), ("delete", gone)):
                    if resp.status_code != 200:
                        ingested["errors"] += 1
                        print(f"  ingesting client: {step} -> {resp.status_code} {resp.text[:200]}")

    t0 = time.perf_counter()
    side = threading.Thread(target=ingester) if ingest else None
    if side:
        side.start()
    with ThreadPoolExecutor(clients) as pool:
        for _ in range(clients):
            pool.submit(asker)
    stop.set()
    if side:
        side.join()
    return lat, errors[0], {**ingested, "seconds": time.perf_counter() - t0}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--requests", type=int, default=200, help="chat completions per concurrent run")
    p.add_argument("--baseline", type=int, default=40, help="sequential requests of the single client")
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args()

    from assistant.server.process import api_server, background, free_port

    work = ROOT / ".bench" / "api_load"
    shutil.rmtree(work, ignore_errors=True)
    env = {"ASSISTANT_STORE_DIR": str(work / "store"), "ASSISTANT_API_KEYS": f"{KEY}:staff", "OPENAI_API_KEY": "",
           "ASSISTANT_MODELS_DIR": str(work / "models")}
    chroma = None
    if args.workers > 1:
        port = free_port()
        env |= {"ASSISTANT_CHROMA_HOST": "127.0.0.1", "ASSISTANT_CHROMA_PORT": str(port)}
        chroma = background([str(Path(sys.executable).parent / "chroma"), "run", "--path", str(work / "chroma"),
                             "--host", "127.0.0.1", "--port", str(port)], {}, f"http://127.0.0.1:{port}/api/v2/heartbeat")
        chroma.__enter__()
    import os
    import subprocess

    subprocess.run([sys.executable, "-m", "ingest", str(ROOT / "data" / "sample_kb")], cwd=ROOT, check=True,
                   env={**os.environ, "HF_HUB_OFFLINE": "1", **env}, stdout=subprocess.DEVNULL)
    qs = questions()
    results = []
    try:
        with api_server(env, workers=args.workers, log=work / "server.log") as url:
            n = len(qs) // 6  # warm-up: each base question once (lazy initialisation, the KB's sentences cached)
            run(url, qs, n, 2)
            lat, err, _ = run(url, qs, args.baseline, 1, offset=n)
            results.append(base := summary("1 client, sequential", lat, err, sum(lat)))
            lat, err, info = run(url, qs, args.requests, args.clients, offset=n + args.baseline)
            results.append(load := summary(f"{args.clients} concurrent clients", lat, err, info["seconds"]))
            lat, err, info = run(url, qs, args.requests, args.clients, ingest=True, offset=n + args.baseline + args.requests)
            results.append(mixed := summary(f"{args.clients} clients + 1 ingesting", lat, err, info["seconds"]))
            print(f"  ingesting client: {info['uploads']} upload→ask→delete rounds, answerable in the next request "
                  f"{info['answerable_next']}/{info['uploads']}, errors {info['errors']}")
    finally:
        if chroma:
            chroma.__exit__(None, None, None)
    # Little's law: with N clients always waiting on the server, latency >= N / throughput, whatever the code does.
    print(f"\nLittle's-law floor for {args.clients} clients at {load['throughput_rps']} req/s: "
          f"{1000 * args.clients / max(load['throughput_rps'], 1e-9):.0f} ms per request")
    print(f"p95 under load / single-client p95: {load['p95_ms'] / base['p95_ms']:.2f}x (mixed {mixed['p95_ms'] / base['p95_ms']:.2f}x;"
          f" target <= 3x) · errors {load['errors'] + mixed['errors']} (target 0) · workers {args.workers}")


if __name__ == "__main__":
    main()
