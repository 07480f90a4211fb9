"""Build the sample knowledge base's documents in the formats insurers keep: a Word procedure with a table, an Excel
premium table, an image-only scanned endorsement, a PDF benefit schedule with a table and an e-mail with a PDF
attachment. Their facts extend the product sheets without contradicting them (and without answering any question
the evaluation sets mark as not answerable). Also writes the scanned page's true text beside it
(data/ocr/home-emergency-endorsement.txt) for the OCR character-error-rate bench.

    python scripts/build_sample_office.py [--out DIR]     (default: data/sample_kb)
"""

from __future__ import annotations

import datetime as dt
import io
import random
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KB = ROOT / "data" / "sample_kb"
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
WHEN = dt.datetime(2026, 1, 15, 9, 30, tzinfo=dt.timezone.utc)

CHECKLIST = [
    ("Claim type", "Documents we need", "Tell us within"),
    ("Car accident", "Photos of both vehicles, the other driver's name, registration and insurer, a repair estimate",
     "7 days"),
    ("Car theft", "Police crime reference number, both sets of car keys, the vehicle registration certificate",
     "Police within 24 hours, us within 7 days"),
    ("Home burglary", "Police crime reference number, a list of stolen items with receipts or photos",
     "Police within 24 hours, us within 7 days"),
    ("Escape of water", "Photos of the damage, the plumber's report or invoice naming the cause", "30 days"),
    ("Storm damage", "Photos of the damage, a roofer's or builder's repair estimate", "30 days"),
    ("Travel medical expenses", "Medical reports, original bills, booking confirmations", "30 days of returning home"),
    ("Lost or delayed baggage", "The airline's Property Irregularity Report, receipts for emergency purchases",
     "30 days of returning home"),
]

PREMIUMS = [  # Home Insurance 2026, EUR per year, standard EUR 250 deductible
    ("Rebuild value band", "Buildings only (EUR/year)", "Contents only, EUR 75,000 (EUR/year)",
     "Buildings and contents (EUR/year)"),
    ("Up to EUR 250,000", 168, 96, 239),
    ("EUR 250,001 - 400,000", 214, 96, 281),
    ("EUR 400,001 - 550,000", 262, 96, 326),
    ("EUR 550,001 - 750,000", 318, 96, 379),
]
CONTENTS_LIMITS = [
    ("Contents limit", "Extra premium (EUR/year)"),
    ("EUR 75,000 (standard)", 0), ("EUR 100,000", 24), ("EUR 150,000", 58), ("EUR 200,000", 91),
]
EXTRAS = [
    ("Optional extra", "Premium (EUR/year)", "Limit"),
    ("Accidental damage cover", 60, "Buildings and contents limits"),
    ("Home emergency cover", 85, "EUR 1,000 per call-out"),
    ("Legal expenses cover", 30, "EUR 50,000"),
]

SCHEDULE = [  # Health Insurance benefit schedule 2026
    ("Benefit", "Essential", "Plus", "Premier"),
    ("In-patient and day-patient treatment", "Covered in full", "Covered in full", "Covered in full"),
    ("Out-patient consultations and tests", "EUR 1,500 a year", "EUR 5,000 a year", "Unlimited"),
    ("Hospital cash benefit (per night of free treatment)", "EUR 50", "EUR 75", "EUR 100"),
    ("Ambulance transport", "EUR 500 a year", "EUR 1,000 a year", "EUR 2,500 a year"),
    ("Second medical opinion", "Not included", "Included", "Included"),
    ("Osteopathy and chiropractic", "Not included", "EUR 300 a year", "EUR 750 a year"),
]

ENDORSEMENT = """BRIGHTWATER MUTUAL INSURANCE
Endorsement HE-2019 - Home Emergency Cover

This endorsement forms part of your Home Insurance policy when Home Emergency
Cover (EUR 85 a year, up to EUR 1,000 per call-out) is shown on your schedule.

Response times
Our engineer aims to reach you within 4 hours when you have no heating or
no hot water between 1 November and 31 March, and within 24 hours for every
other emergency.

Boilers
Boilers more than 15 years old are not covered. The boiler must have been
serviced by a qualified engineer in the 12 months before the emergency.

When cover starts
No call-out is covered in the first 14 days after Home Emergency Cover is
added, unless it is added at the renewal of an existing policy.

Signed for Brightwater Mutual Insurance, Claims Department, 2019"""

EMAIL_BODY = """Dear customer,

From 1 March 2026 you can send us more evidence with your claim in My Brightwater.

- Up to 20 files per claim, each up to 25 MB.
- Accepted formats: JPG, PNG, HEIC and PDF.
- Videos (MP4, up to 200 MB) are accepted for escape-of-water and storm claims.

The attached guide shows how to upload your files step by step.

Kind regards,
Brightwater Mutual Claims Team"""

GUIDE = """How to upload evidence in My Brightwater

1. Log in to My Brightwater and open your claim from the Claims tab.
2. Choose Add evidence and select your photos, videos or documents.
3. Give each file a short description, for example kitchen ceiling stain.
4. Press Send. We confirm receipt of every file by e-mail within 1 business day.

Files larger than 25 MB (videos larger than 200 MB) cannot be uploaded. Split a long video into shorter parts, or send a USB stick to
Brightwater Mutual Claims, Postbus 4410, 3006 AK Rotterdam, quoting your claim reference."""


def word_checklist(path: Path) -> None:
    import docx

    d = docx.Document()
    d.core_properties.title = "Claim Documents Checklist"
    d.core_properties.created = WHEN.replace(tzinfo=None)
    d.add_heading("Claim Documents Checklist", level=1)
    d.add_paragraph("This checklist helps you prepare your claim. Sending everything at once is the quickest way "
                    "to a decision.")
    d.add_heading("Documents we need for each type of claim", level=2)
    table = d.add_table(rows=0, cols=3)
    for row in CHECKLIST:
        cells = table.add_row().cells
        for cell, text in zip(cells, row):
            cell.text = text
    d.add_heading("Originals and copies", level=2)
    d.add_paragraph("Keep the originals of receipts and invoices for 12 months after your claim is settled; clear "
                    "photos or scans are enough when you send them to us.")
    d.add_heading("If a document is missing", level=2)
    d.add_paragraph("Tell your claims handler which document you cannot get and why. A bank statement showing the "
                    "purchase can replace a lost receipt for items worth up to EUR 1,000.")
    d.save(path)


def excel_premiums(path: Path) -> None:
    import openpyxl

    wb = openpyxl.Workbook()
    wb.properties.created = wb.properties.modified = WHEN.replace(tzinfo=None)
    wb.properties.title = "Home Insurance Premiums 2026"
    sheets = [("Buildings and contents", PREMIUMS), ("Contents limits", CONTENTS_LIMITS), ("Optional extras", EXTRAS)]
    for i, (name, rows) in enumerate(sheets):
        ws = wb.active if i == 0 else wb.create_sheet()
        ws.title = name
        ws.append([f"Brightwater Mutual Home Insurance premiums 2026 - {name}"])  # a title row above the table
        for row in rows:
            ws.append(list(row))
    wb.save(path)


def _pdf(title: str):
    """An A4 PDF with a fixed creation date (reproducible bytes) and its title, on its first page."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_creation_date(WHEN)
    pdf.set_title(title)
    pdf.add_page()
    return pdf


def benefit_schedule(path: Path) -> None:
    pdf = _pdf("Health Insurance Benefit Schedule 2026")
    pdf.set_font("Helvetica", "B", 14)
    pdf.cell(0, 10, "Health Insurance Benefit Schedule 2026", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    pdf.multi_cell(0, 5, "The limits below apply per insured person and policy year. In-patient treatment needs "
                         "our approval before admission, except in an emergency.")
    pdf.ln(3)
    with pdf.table(col_widths=(70, 40, 40, 40), text_align="LEFT") as table:
        for row in SCHEDULE:
            r = table.row()
            for cell in row:
                r.cell(cell)
    pdf.ln(4)
    pdf.multi_cell(0, 5, "Hospital cash benefit is paid for each night you spend in hospital when the treatment "
                         "is free of charge to you, for example in a public hospital.")
    pdf.output(str(path))


def scanned_endorsement(path: Path, truth: Path) -> None:
    """One A4 page as a 200-dpi greyscale image (slightly rotated, speckled): no text layer at all."""
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    w, h = 1654, 2339  # A4 at 200 dpi
    img = Image.new("L", (w, h), 250)
    draw = ImageDraw.Draw(img)
    font = ImageFont.truetype(FONT, 30)
    y = 160
    for line in ENDORSEMENT.splitlines():
        draw.text((150, y), line, fill=25, font=font)
        y += 48 if line else 34
    rng = random.Random(18)
    for _ in range(2500):  # scanner dust
        x, yy = rng.randrange(w), rng.randrange(h)
        draw.point((x, yy), fill=rng.randrange(120, 200))
    img = img.rotate(0.4, resample=Image.BICUBIC, fillcolor=250).filter(ImageFilter.GaussianBlur(0.6))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    pdf = _pdf("Home Emergency Cover Endorsement HE-2019 (scanned)")
    pdf.image(buf, x=0, y=0, w=210, h=297)
    pdf.output(str(path))
    truth.parent.mkdir(parents=True, exist_ok=True)
    truth.write_text(ENDORSEMENT + "\n")


def email_with_attachment(path: Path) -> None:
    pdf = _pdf("How to upload evidence in My Brightwater")
    pdf.set_font("Helvetica", "", 11)
    pdf.multi_cell(0, 6, GUIDE)
    msg = EmailMessage()
    msg["Subject"] = "More evidence with your claim: new upload limits in My Brightwater"
    msg["From"] = "Brightwater Mutual Claims <claims@brightwater-mutual.example>"
    msg["To"] = "customers@brightwater-mutual.example"
    msg["Date"] = format_datetime(dt.datetime(2026, 2, 10, 8, 0, tzinfo=dt.timezone.utc))
    msg["Message-ID"] = "<upload-limits-2026@brightwater-mutual.example>"
    msg.set_content(EMAIL_BODY)
    msg.add_attachment(bytes(pdf.output()), maintype="application", subtype="pdf", filename="upload-guide.pdf")
    path.write_bytes(msg.as_bytes())


def main() -> None:
    import argparse

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=KB)
    kb = p.parse_args().out
    for sub in ("service", "products", "policies"):
        (kb / sub).mkdir(parents=True, exist_ok=True)
    word_checklist(kb / "service" / "claim-documents-checklist.docx")
    excel_premiums(kb / "products" / "home-insurance-premiums-2026.xlsx")
    benefit_schedule(kb / "policies" / "health-benefit-schedule-2026.pdf")
    scanned_endorsement(kb / "policies" / "home-emergency-endorsement-scan.pdf", ROOT / "data" / "ocr" /
                        "home-emergency-endorsement.txt")
    email_with_attachment(kb / "service" / "upload-limits-announcement.eml")
    print("wrote 5 documents under", kb)


if __name__ == "__main__":
    main()
