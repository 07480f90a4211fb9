"""Ingestion by document type on a generated 500-page mixed corpus, and the OCR's character error rate.

    python bench/ingest_formats.py [--pages 500] [--keep DIR]

The corpus (written to a temporary folder, or --keep DIR): text PDFs (64% of the pages), image-only scanned PDF pages
(8%), Word documents (12%, a page = 500 words) and Excel workbooks (16%, a page = a sheet of 50 rows). Each type is
ingested into its own fresh store in its own process: pages per minute and that process's peak memory (RSS). Then
the whole corpus into one store, and again unchanged: the re-ingest's time as a share of the first's. Finally the
OCR of the sample KB's scanned endorsement against its true text (data/ocr/): character error rate.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def sentences() -> list[str]:
    """Sentences of the sample KB's Markdown, to fill the generated pages with insurance text."""
    import re

    out = []
    for f in sorted((ROOT / "data" / "sample_kb").rglob("*.md")):
        out += [s.strip() for s in re.split(r"(?<=[.!?])\s+", f.read_text()) if 40 < len(s.strip()) < 240
                and not s.lstrip().startswith(("#", "|", "-", "---"))]
    return out


def build(folder: Path, pages: int, seed: int = 500) -> dict[str, int]:
    from fpdf import FPDF
    from PIL import Image, ImageDraw, ImageFont

    import docx
    import openpyxl

    rng, pool = random.Random(seed), sentences()
    para = lambda n: " ".join(rng.choice(pool) for _ in range(n))  # noqa: E731
    counts = {"pdf": round(pages * 0.64), "scanned": round(pages * 0.08), "docx": round(pages * 0.12)}
    counts["xlsx"] = pages - sum(counts.values())
    for kind in counts:
        (folder / kind).mkdir(parents=True, exist_ok=True)
    for i in range(0, counts["pdf"], 8):  # 8-page wordings
        pdf = FPDF(format="A4")
        pdf.set_font("Helvetica", size=10)
        for _ in range(min(8, counts["pdf"] - i)):
            pdf.add_page()
            pdf.multi_cell(0, 5, para(14).encode("latin-1", "replace").decode("latin-1"))
        pdf.output(str(folder / "pdf" / f"wording-{i // 8:03d}.pdf"))
    font = ImageFont.truetype(FONT, 26)
    for i in range(counts["scanned"]):  # one image-only page each
        img = Image.new("L", (1654, 2339), 250)
        draw, y = ImageDraw.Draw(img), 150
        words = para(10).split()
        line = ""
        for w in words:
            if len(line) + len(w) > 90:
                draw.text((140, y), line, fill=20, font=font)
                y, line = y + 36, ""
            line += w + " "
        draw.text((140, y), line, fill=20, font=font)
        pdf = FPDF(format="A4")
        pdf.add_page()
        pdf.image(img, x=0, y=0, w=210, h=297)
        pdf.output(str(folder / "scanned" / f"scan-{i:03d}.pdf"))
    for i in range(0, counts["docx"], 3):  # 3-page procedures with a table
        d = docx.Document()
        d.add_heading(f"Procedure {i // 3}", level=1)
        for k in range(min(3, counts["docx"] - i)):
            d.add_heading(f"Part {k + 1}", level=2)
            for _ in range(4):
                d.add_paragraph(para(5))
            t = d.add_table(rows=1, cols=3)
            for cell, text in zip(t.rows[0].cells, ("Step", "Owner", "Deadline")):
                cell.text = text
            for s in range(5):
                for cell, text in zip(t.add_row().cells, (f"Step {s + 1}", rng.choice(["Claims", "Sales"]),
                                                           f"{rng.randint(1, 30)} days")):
                    cell.text = text
        d.save(folder / "docx" / f"procedure-{i // 3:03d}.docx")
    for i in range(0, counts["xlsx"], 4):  # workbooks of 4 sheets x 50 rows
        wb = openpyxl.Workbook()
        for k in range(min(4, counts["xlsx"] - i)):
            ws = wb.active if k == 0 else wb.create_sheet()
            ws.title = f"Rates {k + 1}"
            ws.append(["Age band", "Plan", "Region", "Premium (EUR/year)"])
            for r in range(50):
                ws.append([f"{18 + r}-{19 + r}", rng.choice(["Essential", "Plus", "Premier"]),
                           rng.choice(["North", "South", "Islands"]), rng.randint(80, 900)])
        wb.save(folder / "xlsx" / f"rates-{i // 4:03d}.xlsx")
    return counts


def ingest_once(folder: str, store: str) -> dict:
    """Run in a child process: one ingest into a fresh store, its time and this process's peak RSS."""
    from assistant.embeddings import get_embedder
    from assistant.settings import get_settings
    from assistant.store import KnowledgeStore
    from ingest.pipeline import Ingestor

    settings = get_settings()
    embedder = get_embedder(settings.embedding_model_path)
    embedder.embed(["warm-up"])
    ks = KnowledgeStore(Path(store), settings.collection)
    out = {}
    for name in ("first", "again"):
        summary = Ingestor(ks, settings, embedder, progress=False).ingest([Path(folder)])
        assert summary.ok, summary.failed
        out[name] = {"seconds": summary.seconds, "chunks": summary.chunks_embedded}
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def child(folder: Path, store: Path) -> dict:
    code = (f"import json, sys; sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / 'bench')!r}]; "
            "from ingest_formats import ingest_once; "
            f"print(json.dumps(ingest_once({str(folder)!r}, {str(store)!r})))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pages", type=int, default=500)
    p.add_argument("--keep", type=Path)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp) / "corpus"
        t0 = time.perf_counter()
        counts = build(folder, args.pages)
        print(f"corpus: {counts} pages ({sum(counts.values())}), built in {time.perf_counter() - t0:.0f}s")
        print(f"{'type':<10}{'pages':>6}{'seconds':>9}{'pages/min':>11}{'chunks':>8}{'peak RSS MB':>13}")
        for kind, n in counts.items():
            r = child(folder / kind, Path(tmp) / f"store-{kind}")
            s = r["first"]["seconds"]
            print(f"{kind:<10}{n:>6}{s:>9.1f}{n / s * 60:>11.0f}{r['first']['chunks']:>8}{r['peak_rss_mb']:>13.0f}")
        r = child(folder, Path(tmp) / "store-all")
        first, again = r["first"]["seconds"], r["again"]["seconds"]
        print(f"whole corpus: first ingest {first:.1f}s, unchanged re-ingest {again:.2f}s = {again / first:.1%} "
              f"of the first (target <= 5%); peak RSS {r['peak_rss_mb']:.0f} MB")
    from assistant.settings import get_settings
    from ingest.loaders import load_file
    from ingest.ocr import character_error_rate

    scan = ROOT / "data" / "sample_kb" / "policies" / "home-emergency-endorsement-scan.pdf"
    truth = (ROOT / "data" / "ocr" / "home-emergency-endorsement.txt").read_text()
    doc = load_file(scan, get_settings())[0]
    text = "\n".join(s.text for s in doc.sections)
    conf = doc.sections[0].meta.get("ocr_confidence")
    print(f"OCR of {scan.name}: character error rate {character_error_rate(truth, text):.2%} (target <= 3%), "
          f"Tesseract confidence {conf}")


if __name__ == "__main__":
    main()
