"""E-mail (.eml), read with the standard library's `email` package: the headers a reader needs (subject, date, from,
to), the body (plain text, else the HTML part as text) and every attachment through its own loader, cited as
`message › attachment`."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser
from pathlib import Path

from ingest.clean import normalize_text
from ingest.loaders import LoadError, LoadedDoc, Section, _doc, path_id

HEADERS = ("subject", "date", "from", "to")


def load_eml(path: Path, raw: bytes, settings) -> list[LoadedDoc]:
    from ingest.loaders import SUPPORTED, load_bytes

    try:
        msg = BytesParser(policy=policy.default).parsebytes(raw)
    except Exception as e:  # noqa: BLE001
        raise LoadError(f"not a readable e-mail: {e}") from e
    if not any(msg.get(h) for h in HEADERS) or msg.defects and not msg.get_payload():
        raise LoadError("not an e-mail message (no subject, date, from or to header)")
    head = [f"{h.title()}: {msg.get(h)}" for h in HEADERS if msg.get(h)]
    body_part = msg.get_body(preferencelist=("plain", "html"))
    body = ""
    if body_part is not None:
        body = body_part.get_content()
        if body_part.get_content_subtype() == "html":
            from bs4 import BeautifulSoup

            body = BeautifulSoup(body, "html.parser").get_text("\n")
    subject = str(msg.get("subject") or path.stem)
    docs = [_doc(path, raw, "email", subject, [Section(normalize_text("\n".join(head) + "\n\n" + body))])]
    for part in msg.iter_attachments():
        name = part.get_filename() or "attachment"
        data = part.get_payload(decode=True) or b""
        where = f"{path.name} › {name}"
        # the ingest summary prints a document's "warnings": a skipped attachment is reported there
        warnings = docs[0].extra.setdefault("warnings", [])
        if Path(name).suffix.lower() not in SUPPORTED or Path(name).suffix.lower() == ".eml":
            warnings.append(f"attachment {name}: unsupported type")
            continue
        try:
            for sub in load_bytes(Path(name), data, settings):
                row = sub.doc_id.partition("#")[2]  # a CSV/JSONL attachment's rows keep their ids
                sub.doc_id = f"{path_id(path)}›{name}" + (f"#{row}" if row else "")
                sub.path, sub.source = path_id(path), where
                sub.title = sub.title or name
                docs.append(sub)
        except LoadError as e:  # one bad attachment is reported; the message and the others are kept
            warnings.append(f"attachment {name}: {e}")
    return docs
