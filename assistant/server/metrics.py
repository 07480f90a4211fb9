"""Prometheus metrics (prometheus_client). With several workers, `serve` points PROMETHEUS_MULTIPROC_DIR at a shared
folder and /metrics aggregates every worker's numbers."""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess

REQUESTS = Counter("assistant_http_requests_total", "HTTP requests", ["route", "method", "status"])
LATENCY = Histogram("assistant_http_request_seconds", "HTTP request latency (to the last byte for streams)", ["route"],
                    buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
ANSWERS = Counter("assistant_answers_total", "Answers given", ["backend", "role", "outcome"])  # answered/refused/handoff
TOKENS = Counter("assistant_tokens_total", "Tokens sent to and received from model backends", ["backend", "kind"])
INGESTED = Counter("assistant_documents_ingested_total", "Documents added or updated through the API", ["audience"])


def render() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
