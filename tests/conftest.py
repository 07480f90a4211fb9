"""Shared fixtures: the real embedding model (loaded once), real Chroma stores in temporary folders."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["ANONYMIZED_TELEMETRY"] = "False"
# Hermetic: a model promoted in this checkout's var/ must not change what the tests see. The `answerability` fixture
# trains one that kb_assistant passes explicitly; servers the tests start use the lexical decision.
os.environ["ASSISTANT_ANSWERABILITY_MODEL"] = "off"
# The open base (smollm2-135m) is converted once per session into a temporary cache, never into the checkout's var/,
# and removed at exit (538 MB a run otherwise left in /tmp).
if "ASSISTANT_BASES_DIR" not in os.environ:
    os.environ["ASSISTANT_BASES_DIR"] = tempfile.mkdtemp(prefix="assistant-bases-")
    atexit.register(shutil.rmtree, os.environ["ASSISTANT_BASES_DIR"], ignore_errors=True)

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_KB = ROOT / "data" / "sample_kb"


def make_settings(store_dir: Path, **overrides):
    from assistant.settings import Settings

    return Settings(_env_file=None, store_dir=store_dir, **overrides)


@pytest.fixture(scope="session")
def embedder():
    from assistant.embeddings import get_embedder
    from assistant.settings import Settings

    return get_embedder(Settings(_env_file=None).embedding_model_path)


@pytest.fixture
def settings(tmp_path):
    return make_settings(tmp_path / "store")


@pytest.fixture
def store(settings):
    from assistant.store import KnowledgeStore

    return KnowledgeStore.from_settings(settings)


@pytest.fixture
def ingestor(store, settings, embedder):
    from ingest.pipeline import Ingestor

    return Ingestor(store, settings, embedder, progress=False)


@pytest.fixture(scope="session")
def kb_store_dir(tmp_path_factory, embedder):
    """The whole sample knowledge base, ingested once per test session."""
    from assistant.store import KnowledgeStore
    from ingest.pipeline import Ingestor

    d = tmp_path_factory.mktemp("kb") / "store"
    s = make_settings(d)
    summary = Ingestor(KnowledgeStore.from_settings(s), s, embedder, progress=False).ingest([SAMPLE_KB])
    assert summary.ok, summary.failed
    return d


HELD_OUT = "roadside-assistance.html"  # the answerability model never sees it before it is ingested


@pytest.fixture(scope="session")
def answerability(tmp_path_factory, embedder):
    """An answerability model trained briefly on the sample KB without HELD_OUT, calibrated on the dev split without
    its questions: the decision the pipeline tests run with (the product's default path), and the model
    tests/test_answerability.py shows deciding about HELD_OUT once it is ingested.
    Returns (settings of its store without HELD_OUT, registry, version)."""
    from assistant.pipeline import Assistant
    from ingest.pipeline import Ingestor
    from training.answerability import AnswerabilityConfig, run
    from training.question_matcher import MatcherConfig
    from training.registry import Registry

    root = tmp_path_factory.mktemp("answerability")
    kb = root / "kb"
    shutil.copytree(SAMPLE_KB, kb, ignore=shutil.ignore_patterns(HELD_OUT))
    settings = make_settings(root / "store", answerability_model="off", answerability_dir=root / "registry",
                             audit_enabled=False)
    assistant = Assistant(settings, embedder=embedder)
    assert Ingestor(assistant.store, settings, embedder, progress=False).ingest([kb]).ok
    dev = root / "dev.jsonl"
    dev.write_text("".join(ln + "\n" for ln in (ROOT / "data/eval/customer_voice.dev.jsonl").read_text().splitlines()
                           if HELD_OUT not in ln))
    registry = Registry(root / "registry", "answerability-models")
    version = run(AnswerabilityConfig(max_steps=140, batch_size=32, matcher=MatcherConfig(max_steps=10)), registry,
                  assistant, dev, progress=False)
    registry.promote(version, "test")
    return settings, registry, version


@pytest.fixture(scope="session")
def kb_assistant(kb_store_dir, embedder, answerability):
    from assistant.pipeline import Assistant

    _, registry, version = answerability
    return Assistant(make_settings(kb_store_dir, answerability_model=str(registry.path(version))), embedder=embedder)


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """One whole `python -m training all --preset cpu-tiny` run into a temporary registry."""
    from training.__main__ import main
    from training.registry import Registry

    models = tmp_path_factory.mktemp("models")
    assert main(["--models-dir", str(models), "all", "--preset", "cpu-tiny"]) == 0
    reg = Registry(models)
    (version,) = [v["version"] for v in reg.versions()]
    return reg, version


@pytest.fixture
def kb_copy(tmp_path, kb_store_dir):
    """A private copy of the ingested sample KB, for tests that change it."""
    d = tmp_path / "kbcopy"
    shutil.copytree(kb_store_dir, d)
    return d


def make_pdf(path: Path, pages: list[str], header: str = "ACME Insurance - Test Wording") -> Path:
    """A real multi-page PDF with a running header and a page footer, as policy wordings have."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_auto_page_break(auto=False)  # short pages; the footer must not spill onto a new page
    for i, text in enumerate(pages, 1):
        pdf.add_page()
        pdf.set_font("Helvetica", "", 11)
        pdf.cell(0, 8, header, new_x="LMARGIN", new_y="NEXT")
        pdf.multi_cell(0, 6, text, new_x="LMARGIN", new_y="NEXT")
        pdf.set_y(-20)
        pdf.cell(0, 8, f"Page {i} of {len(pages)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))
    return path
