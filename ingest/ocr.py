"""OCR for PDF pages without a text layer (scans): the page rendered by pypdfium2 (PDFium, no poppler needed), read by
Tesseract through pytesseract. The engine is Debian's `tesseract-ocr` (`make ocr` installs it, as `make browser`
installs Chromium); without it the loader says so rather than storing nothing silently.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator


class OcrUnavailable(RuntimeError):
    pass


def engine(settings) -> str:
    cmd = shutil.which(settings.ocr_command)
    if cmd is None:
        raise OcrUnavailable(f"the OCR engine is not installed ({settings.ocr_command!r} not found): "
                             "`make ocr` or `apt-get install tesseract-ocr`")
    return cmd


def read_image(image, settings) -> tuple[str, float]:
    """(text with its line and paragraph breaks, mean word confidence 0-100)."""
    import pytesseract

    pytesseract.pytesseract.tesseract_cmd = engine(settings)
    data = pytesseract.image_to_data(image, lang=settings.ocr_language, output_type=pytesseract.Output.DICT)
    lines: dict[tuple[int, int, int], list[str]] = {}
    confidences = []
    for i, word in enumerate(data["text"]):
        if not word.strip():
            continue
        key = (data["block_num"][i], data["par_num"][i], data["line_num"][i])
        lines.setdefault(key, []).append(word)
        if float(data["conf"][i]) >= 0:
            confidences.append(float(data["conf"][i]))
    out, last_par = [], None
    for (block, par, _), words in lines.items():
        if last_par is not None and (block, par) != last_par:
            out.append("")
        out.append(" ".join(words))
        last_par = (block, par)
    return "\n".join(out), round(sum(confidences) / len(confidences), 1) if confidences else 0.0


def ocr_pages(raw: bytes, pages: list[int], settings) -> Iterator[tuple[int, str, float]]:
    """(page number, text, confidence) for each 1-based page of the PDF in `raw`."""
    import pypdfium2 as pdfium

    engine(settings)
    pdf = pdfium.PdfDocument(raw)
    try:
        for n in pages:
            image = pdf[n - 1].render(scale=settings.ocr_dpi / 72).to_pil()
            text, confidence = read_image(image, settings)
            yield n, text, confidence
    finally:
        pdf.close()


def character_error_rate(reference: str, hypothesis: str) -> float:
    """Levenshtein distance over characters / reference length, on whitespace-normalized text (the bench's CER)."""
    ref, hyp = " ".join(reference.split()), " ".join(hypothesis.split())
    prev = list(range(len(hyp) + 1))
    for i, a in enumerate(ref, start=1):
        cur = [i] + [0] * len(hyp)
        for j, b in enumerate(hyp, start=1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a != b))
        prev = cur
    return prev[-1] / max(1, len(ref))
