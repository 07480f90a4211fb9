"""Documents received over the web (the Streamlit Documents page, the HTTP API): kept under
`settings.uploads_path/<audience>/`, ingested, and removed again if unreadable or deleted. One code path for both."""

from __future__ import annotations

import re
from pathlib import Path

from ingest.loaders import SUPPORTED


class UploadRejected(ValueError):
    """The upload was refused before being stored (type, size or audience); the message says why."""


def safe_name(name: str) -> str:
    """A file name that cannot climb out of the uploads folder or surprise a shell."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name or "").name).strip("._") or "document"


def save_upload(settings, name: str, data: bytes, audience: str) -> Path:
    if audience not in ("public", "internal"):
        raise UploadRejected(f"audience must be public or internal, not {audience!r}")
    target_name = safe_name(name)
    if Path(target_name).suffix.lower() not in SUPPORTED:
        raise UploadRejected(f"{name}: unsupported type; accepted: {', '.join(sorted(SUPPORTED))}")
    if len(data) > settings.upload_max_mb * 1024 * 1024:
        raise UploadRejected(f"{name} is larger than {settings.upload_max_mb} MB")
    folder = settings.uploads_path / audience
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / target_name
    target.write_bytes(data)
    return target


def ingest_uploads(ingestor, paths: list[Path], audience: str):
    """Ingest saved uploads; a file that could not be read is not kept (the summary says why)."""
    summary = ingestor.ingest(paths, audience=audience)
    for path, _ in summary.failed:
        Path(path).unlink(missing_ok=True)
    return summary


def forget_upload(settings, path: str) -> None:
    """After a deletion: an uploaded copy goes too; files ingested from elsewhere (source folders) are left alone."""
    file = Path(path).resolve()
    if settings.uploads_path.resolve() in file.parents:
        file.unlink(missing_ok=True)
