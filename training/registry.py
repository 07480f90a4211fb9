"""Stage 7 — the registry: every training run is a version folder under the models folder, never overwritten.

    <models_dir>/<version>/   config.json, metadata.json, stages.json, data/, tokenizer/, pretrain/ (checkpoints),
                              sft/, align/, eval/, model/ (the served model), report.md/json, loss.png
    <models_dir>/PROMOTED     the version the assistant's `private` backend serves
    <models_dir>/audit.jsonl  who did what, when and why (create, promote, delete)
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

from training.config import ROOT, TrainConfig


class RegistryError(RuntimeError):
    pass


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def file_hash(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.exists() else None


def registry_for(kind: str, folder: Path | str | None = None) -> "Registry":
    """The registry of one kind of model (models | embedders | rerankers | answerability-models), in its settings
    folder unless given one."""
    from assistant.settings import get_settings

    s = get_settings()
    dirs = {"models": s.models_dir, "embedders": s.embedders_dir, "rerankers": s.rerankers_dir,
            "answerability-models": s.answerability_dir}
    return Registry(folder or dirs[kind], kind)


class Registry:
    def __init__(self, models_dir: Path | str, kind: str = "models"):
        self.dir = Path(models_dir)
        self.kind = kind  # models | embedders | rerankers | answerability-models: the CLI command that lists it

    # --- versions ------------------------------------------------------------------------------------------------
    def create(self, cfg: TrainConfig, version: str | None = None) -> Path:
        version = version or f"{cfg.preset}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
        path = self.dir / version
        if path.exists():
            raise RegistryError(f"version {version} already exists: versions are never overwritten "
                                f"(resume it with --version {version}, or start a new one)")
        path.mkdir(parents=True)
        (path / "config.json").write_text(cfg.model_dump_json(indent=2))
        self._write_meta(path, {"version": version, "preset": cfg.preset, "status": "training",
                                "created": _now(), "created_by": _user(), "git_commit": git_commit(),
                                "config_hash": file_hash(path / "config.json")})
        self.audit("create", version, reason=f"training run, preset {cfg.preset}")
        return path

    def path(self, version: str) -> Path:
        path = self.dir / version
        if not (path / "metadata.json").exists():
            raise RegistryError(f"no version {version!r} in {self.dir} (see `python -m training {self.kind} list`)")
        return path

    def config(self, version: str) -> TrainConfig:
        return TrainConfig.model_validate_json((self.path(version) / "config.json").read_text())

    def metadata(self, version: str) -> dict:
        return json.loads((self.path(version) / "metadata.json").read_text())

    def update(self, version: str, **fields) -> None:
        path = self.path(version)
        meta = self.metadata(version)
        meta.update(fields)
        self._write_meta(path, meta)

    def finish(self, version: str, summary: dict) -> None:
        path = self.path(version)
        self.update(version, status="ready", finished=_now(), metrics=summary,
                    data_card_hash=file_hash(path / "data" / "data_card.json"), size_bytes=_size(path))

    def versions(self) -> list[dict]:
        if not self.dir.exists():
            return []
        promoted = self.promoted()
        out = []
        for p in sorted(self.dir.iterdir()):
            if (p / "metadata.json").exists():
                meta = json.loads((p / "metadata.json").read_text())
                meta["promoted"] = meta["version"] == promoted
                out.append(meta)
        return out

    # --- serving pointer ---------------------------------------------------------------------------------------
    def promoted(self) -> str | None:
        f = self.dir / "PROMOTED"
        return f.read_text().strip() if f.exists() else None

    def promote(self, version: str, reason: str = "") -> None:
        meta = self.metadata(version)
        if meta.get("status") != "ready" or not (self.path(version) / "model" / "config.json").exists():
            raise RegistryError(f"version {version} is not finished (status {meta.get('status')}): only a complete "
                                "run can be promoted")
        tmp = self.dir / "PROMOTED.tmp"
        tmp.write_text(version + "\n")
        os.replace(tmp, self.dir / "PROMOTED")  # atomic: a reader sees the old or the new version
        self.audit("promote", version, reason)

    def delete(self, version: str, reason: str, force: bool = False) -> dict:
        if not reason.strip():
            raise RegistryError("say why: deleting a model version needs --reason (it goes to the audit log)")
        path = self.path(version)
        if self.promoted() == version and not force:
            raise RegistryError(f"version {version} is the promoted model; promote another first or pass --force")
        files = [str(p.relative_to(self.dir)) for p in sorted(path.rglob("*")) if p.is_file()]
        size = _size(path)
        shutil.rmtree(path)
        if self.promoted() == version:
            (self.dir / "PROMOTED").unlink()
        entry = self.audit("delete", version, reason, files_removed=len(files), bytes_removed=size,
                           file_list_sha256=hashlib.sha256("\n".join(files).encode()).hexdigest())
        return entry

    # --- audit ---------------------------------------------------------------------------------------------------
    def audit(self, action: str, version: str, reason: str = "", **extra) -> dict:
        self.dir.mkdir(parents=True, exist_ok=True)
        entry = {"time": _now(), "user": _user(), "action": action, "version": version, "reason": reason, **extra}
        with (self.dir / "audit.jsonl").open("a") as f:
            f.write(json.dumps(entry) + "\n")
        return entry

    def audit_log(self) -> list[dict]:
        f = self.dir / "audit.jsonl"
        return [json.loads(ln) for ln in f.read_text().splitlines() if ln.strip()] if f.exists() else []

    @staticmethod
    def _write_meta(path: Path, meta: dict) -> None:
        tmp = path / "metadata.json.tmp"
        tmp.write_text(json.dumps(meta, indent=2))
        os.replace(tmp, path / "metadata.json")


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _user() -> str:
    try:
        return os.environ.get("ASSISTANT_AUDIT_USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
