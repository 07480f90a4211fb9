"""What the UI loads once per process (st.cache_resource), not per message: the assistant (embedding model, store,
rails, generators), the registries, the background training job."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parents[1]


def settings():
    from assistant.settings import get_settings

    return get_settings()


@st.cache_resource(show_spinner="Loading the knowledge base and the embedding model…")
def assistant_for(config: str):
    """One Assistant per configuration (`config` is the settings' JSON: a changed setting gets a new one)."""
    from assistant.pipeline import Assistant

    assistant = Assistant(settings())
    assistant.guards.warm_up()  # the first customer should not wait for the rails' anchors to be embedded
    return assistant


def get_assistant():
    from assistant.answerability import AnswerabilityError
    from assistant.rerank import RerankerError

    try:
        return assistant_for(settings().model_dump_json())
    except (RerankerError, AnswerabilityError) as e:  # a configuration mistake: say which setting, not a traceback
        st.error(f"{e.setting}: {e}")
        st.stop()


def registry(kind: str = "models"):
    from training.registry import registry_for

    return registry_for(kind)


@dataclass
class TrainingJob:
    """`python -m training all` in a subprocess: the page polls its log and stages.json, the process outlives reruns."""

    version: str
    preset: str
    log: Path
    proc: subprocess.Popen
    started: float = field(default_factory=time.time)

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.running:
            self.proc.terminate()
            self.proc.wait(timeout=30)

    def tail(self, lines: int = 15) -> str:
        if not self.log.exists():
            return ""
        text = self.log.read_text(errors="replace").replace("\r", "\n")
        return "\n".join([ln for ln in text.splitlines() if ln.strip()][-lines:])


@st.cache_resource
def training_jobs() -> dict[str, TrainingJob]:
    return {}  # one per process: a second start while one runs is refused


def start_training(preset: str, promote: bool) -> TrainingJob:
    jobs = training_jobs()
    current = jobs.get("current")
    if current and current.running:
        raise RuntimeError(f"a training run ({current.version}) is already in progress")
    models = Path(settings().models_dir).resolve()  # the subprocess runs from the repository root
    version = f"{preset}-{time.strftime('%Y%m%d-%H%M%S')}"
    log = models / f"{version}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "training", "--models-dir", str(models), "all", "--preset", preset, "--version", version]
    if not promote:
        cmd.append("--no-promote")
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    jobs["current"] = TrainingJob(version, preset, log, proc)
    return jobs["current"]
