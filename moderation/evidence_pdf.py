"""The evidence package as a PDF (reportlab): the same data as the JSON, laid out to print.

It is drawn from the serialized evidence, so the PDF can say nothing the JSON does not.
First page: the facts that identify the file and the outcome, then every face's crop beside
its heatmap; then the whole photo with its boxes, the model and the decision chain. Every
text that came from a person (file names, notes) is escaped: reportlab reads markup.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    Flowable,
    Image,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from detection.models import Submission

_WIDTH = A4[0] - 36 * mm
_STYLES = getSampleStyleSheet()
_BODY = ParagraphStyle("body", parent=_STYLES["BodyText"], fontSize=9, leading=11.5)
# Hashes and ids have no spaces: let them break anywhere instead of running off the page.
_CODE = ParagraphStyle("code", parent=_BODY, fontName="Courier", fontSize=8, wordWrap="CJK")
_SMALL = ParagraphStyle("small", parent=_BODY, fontSize=8, textColor=colors.grey)
_GRID = TableStyle(
    [
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("GRID", (0, 0), (-1, -1), 0.25, colors.lightgrey),
        ("BACKGROUND", (0, 0), (0, -1), colors.whitesmoke),
        ("FONTSIZE", (0, 0), (-1, -1), 9),
    ]
)
_VERDICTS = dict(Submission.Verdict.choices)
NOT_RECORDED = "not recorded"


def evidence_pdf(evidence: Mapping[str, Any]) -> bytes:
    buffer = io.BytesIO()
    submission = evidence["submission"]
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=16 * mm,
        bottomMargin=16 * mm,
        title=f"Evidence package {submission['id']}",
        author="Faceproof",
        subject=f"Submission {submission['id']}",
    )

    def footer(canvas: Canvas, doc: Any) -> None:
        canvas.setFont("Helvetica", 7.5)
        canvas.setFillColor(colors.grey)
        canvas.drawString(
            18 * mm,
            9 * mm,
            f"Faceproof evidence package · submission {submission['id']} · "
            f"generated {_when(evidence['generated_at'])} by {evidence['generated_by']}",
        )
        canvas.drawRightString(A4[0] - 18 * mm, 9 * mm, f"page {doc.page}")

    document.build(_story(evidence), onFirstPage=footer, onLaterPages=footer)
    return buffer.getvalue()


def _story(evidence: Mapping[str, Any]) -> list[Flowable]:
    submission, file = evidence["submission"], evidence["file"]
    moderation = evidence["moderation"]
    story: list[Flowable] = [
        Paragraph("Faceproof evidence package", _STYLES["Title"]),
        Paragraph(
            _text(
                f"Generated {_when(evidence['generated_at'])} by {evidence['generated_by']} "
                f"from {evidence['site']} (format {evidence['format']})."
            ),
            _SMALL,
        ),
        Spacer(1, 3 * mm),
        _facts(
            [
                ("Submission", _code(submission["id"])),
                ("File name", _text(submission["original_filename"])),
                ("Uploader", _text(submission["uploader"])),
                ("Uploaded", _text(_when(submission["uploaded_at"]))),
                ("Analysed", _text(_when(submission["analysed_at"]))),
                ("Status", _text(submission["status"])),
                ("Model verdict", _text(_verdict(submission["verdict"]))),
                ("P(fake)", _text(_probability(submission["fake_probability"]))),
                ("Moderation", _text(_moderation_line(moderation))),
                ("sha256 as uploaded", _code(file["upload_sha256"])),
                ("sha256 as stored", _code(file["stored_sha256"] or NOT_RECORDED)),
                ("PDQ", _code(file["pdq"] or NOT_RECORDED)),
                (
                    "Image",
                    _text(
                        f"{file['width']} x {file['height']} {file['format']}, "
                        f"{file['byte_size']:,} bytes as uploaded"
                    ),
                ),
            ]
        ),
        Spacer(1, 4 * mm),
        Paragraph(f"Faces ({len(evidence['faces'])})", _STYLES["Heading2"]),
    ]
    if not evidence["faces"]:
        story.append(Paragraph("No face is stored for this submission.", _BODY))
    story.extend(_face(face) for face in evidence["faces"])
    if evidence["overlay"]:
        story += [
            Paragraph("The photo with every face boxed and scored", _STYLES["Heading2"]),
            _picture(evidence["overlay"], _WIDTH, 110 * mm),
        ]
    story += _model(evidence["model"])
    story += [
        Paragraph("Provenance", _STYLES["Heading2"]),
        Paragraph(_text(_provenance_line(evidence["provenance"])), _BODY),
    ]
    story += _decision_chain(evidence["decision_chain"])
    return story


def _face(face: Mapping[str, Any]) -> Flowable:
    size = 42 * mm
    pictures = [
        _picture(face["crop"], size, size) if face["crop"] else Paragraph("(no crop)", _SMALL),
        _picture(face["heatmap"], size, size)
        if face["heatmap"]
        else Paragraph("(no heatmap)", _SMALL),
    ]
    x1, y1, x2, y2 = (round(value) for value in face["box"])
    reasons = ", ".join(face["quality_reasons"]) or "none"
    scores = Paragraph(
        _text(
            f"P(fake) {face['fake_probability']:.4f} · P(real) {face['real_probability']:.4f}\n"
            f"Detection {face['detection_probability']:.4f}\n"
            f"Box {x1},{y1} to {x2},{y2} ({face['size_px']} px)\n"
            f"Quality {face['quality']} (reasons: {reasons})\n"
            f"Sharpness {face['sharpness']:.1f} · yaw {face['yaw']:.2f}"
        ),
        _BODY,
    )
    hashes = Paragraph(
        _text(
            f"crop sha256 {face['crop']['sha256'] if face['crop'] else NOT_RECORDED}\n"
            f"heatmap sha256 {face['heatmap']['sha256'] if face['heatmap'] else NOT_RECORDED}"
        ),
        _CODE,
    )
    table = Table(
        [
            [Paragraph(f"Face #{face['index']}", _STYLES["Heading4"]), "", ""],
            [*pictures, scores],
            [Paragraph("Crop", _SMALL), Paragraph("Grad-CAM heatmap", _SMALL), hashes],
        ],
        colWidths=[size + 4 * mm, size + 4 * mm, _WIDTH - 2 * (size + 4 * mm)],
    )
    table.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("SPAN", (0, 0), (-1, 0))]))
    return KeepTogether([table, Spacer(1, 3 * mm)])


def _model(model: Mapping[str, Any]) -> list[Flowable]:
    thresholds, calibration = model["thresholds"], model["calibration"]
    quality = model["quality_thresholds"]
    rows = [
        ("Name", _text(model["name"] or NOT_RECORDED)),
        ("Version", _code(model["version"] or NOT_RECORDED)),
        ("Checkpoint sha256", _code(model["checkpoint_sha256"] or NOT_RECORDED)),
        (
            "Trained",
            _text(
                {True: "yes", False: "no (demonstration weights)"}.get(
                    model["trained"], NOT_RECORDED
                )
            ),
        ),
        ("Input size", _text(f"{model['input_size']} px" if model["input_size"] else NOT_RECORDED)),
        (
            "Scoring",
            _text(
                {
                    True: "each face averaged with its mirror image",
                    False: "each face alone",
                }.get(model["mirror_average"], NOT_RECORDED)
            ),
        ),
        (
            "Thresholds",
            _text(
                f"likely manipulated at P(fake) >= {thresholds['fake']}, uncertain at >= "
                f"{thresholds['uncertain']} (from the {thresholds['set_by']}"
                + (f"; {thresholds['selection']}" if thresholds["selection"] else "")
                + ")"
                if thresholds["fake"] is not None
                else NOT_RECORDED
            ),
        ),
        (
            "Calibration",
            _text(
                f"temperature {calibration['temperature']}"
                + (f", bias {calibration['bias']:+.3f}" if calibration["bias"] else "")
                + (f" ({calibration['method']})" if calibration["method"] else "")
                if calibration["temperature"] is not None
                else NOT_RECORDED
            ),
        ),
        (
            "Face quality limits",
            _text(
                ", ".join(f"{key} {value:g}" for key, value in quality.items())
                if quality
                else NOT_RECORDED
            ),
        ),
    ]
    return [Paragraph("Model", _STYLES["Heading2"]), _facts(rows)]


def _decision_chain(events: list[Mapping[str, Any]]) -> list[Flowable]:
    story: list[Flowable] = [Paragraph("Decision chain", _STYLES["Heading2"])]
    if not events:
        story.append(Paragraph("No review case: the model did not flag this image.", _BODY))
        return story
    header = [Paragraph(f"<b>{title}</b>", _BODY) for title in ("When", "What", "Who", "Note")]
    rows = [
        [
            Paragraph(_text(_when(event["at"])), _SMALL),
            Paragraph(_text(event["description"]), _BODY),
            Paragraph(_text(event["actor"] or "system"), _BODY),
            Paragraph(_text(event["note"] or "-"), _BODY),
        ]
        for event in events
    ]
    table = Table(
        [header, *rows],
        colWidths=[34 * mm, 30 * mm, 28 * mm, _WIDTH - 92 * mm],
        repeatRows=1,
    )
    table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("GRID", (0, 0), (-1, -1), 0.25, colors.lightgrey),
                ("BACKGROUND", (0, 0), (-1, 0), colors.whitesmoke),
            ]
        )
    )
    story.append(table)
    return story


def _facts(rows: list[tuple[str, str]]) -> Table:
    table = Table(
        [[Paragraph(label, _BODY), Paragraph(value, _BODY)] for label, value in rows],
        colWidths=[40 * mm, _WIDTH - 40 * mm],
    )
    table.setStyle(_GRID)
    return table


def _picture(image: Mapping[str, Any], width: float, height: float) -> Image:
    """The image scaled to fit the box, keeping its proportions."""
    data = base64.b64decode(image["base64"])
    natural_width, natural_height = ImageReader(io.BytesIO(data)).getSize()
    scale = min(width / natural_width, height / natural_height)
    return Image(io.BytesIO(data), width=natural_width * scale, height=natural_height * scale)


def _text(value: object) -> str:
    """Escaped for reportlab's markup, line breaks kept."""
    return escape(str(value)).replace("\n", "<br/>")


def _code(value: object) -> str:
    return f'<font face="Courier" size="8">{escape(str(value))}</font>'


def _when(moment: str | None) -> str:
    """An ISO time from the JSON, as people read it, in UTC."""
    if not moment:
        return "-"
    parsed = datetime.fromisoformat(moment).astimezone(UTC)
    return f"{parsed:%Y-%m-%d %H:%M:%S} UTC"


def _verdict(verdict: str | None) -> str:
    return _VERDICTS.get(verdict or "", "none")


def _probability(value: float | None) -> str:
    return f"{value:.4f} (most suspicious judged face)" if value is not None else "none"


def _moderation_line(moderation: Mapping[str, Any] | None) -> str:
    if moderation is None:
        return "not flagged for review"
    line = moderation["state_label"]
    if moderation["decided_by"]:
        line += f" by {moderation['decided_by']} at {_when(moderation['decided_at'])}"
    inherited = moderation["inherited_from"]
    if inherited:
        line += (
            f", inherited from the decision on near-copy {inherited['submission_id']} "
            f"(PDQ distance {inherited['pdq_distance']}); the decision chain is that case's"
        )
    return line


def _provenance_line(provenance: Mapping[str, Any] | None) -> str:
    if not provenance:
        return "Not recorded: no summary of the file's own metadata was kept for this upload."
    parts = [
        _exif_line(provenance.get("exif")),
        _xmp_line(provenance.get("xmp")),
        _c2pa_line(provenance.get("c2pa")),
    ]
    if provenance.get("unreadable"):
        parts.append(f"Present but unreadable: {', '.join(provenance['unreadable'])}.")
    return " ".join(parts) + " All of it is what the file claims; its uploader controls it."


def _exif_line(exif: Mapping[str, Any] | None) -> str:
    if not exif:
        return "Camera data (EXIF): none."
    camera = " ".join(filter(None, (exif.get("camera_make"), exif.get("camera_model"))))
    facts = [
        f"camera {camera}" if camera else "",
        f"software {exif['software']}" if exif.get("software") else "",
        f"taken {exif['captured_at']}" if exif.get("captured_at") else "",
        "a GPS position was recorded (not kept)" if exif.get("gps_present") else "",
    ]
    return f"Camera data (EXIF): {', '.join(filter(None, facts))}."


def _xmp_line(xmp: Mapping[str, Any] | None) -> str:
    if not xmp:
        return "Edit history (XMP): none."
    facts = [
        f"made with {xmp['creator_tool']}" if xmp.get("creator_tool") else "",
        f"{len(xmp.get('history') or [])} recorded edits",
        "declares AI-generated content" if xmp.get("ai_generated") else "",
    ]
    return f"Edit history (XMP): {', '.join(filter(None, facts))}."


def _c2pa_line(c2pa: Mapping[str, Any] | None) -> str:
    if not c2pa:
        return "Content credentials (C2PA): none."
    actions = ", ".join(action["action"] for action in c2pa.get("actions") or [])
    facts = [
        f"manifest {c2pa.get('validation_state') or 'of unknown validity'}",
        f"claimed by {c2pa['claim_generator']}" if c2pa.get("claim_generator") else "",
        f"signed by {c2pa['signed_by']}" if c2pa.get("signed_by") else "",
        f"actions: {actions}" if actions else "",
        "declares AI-generated content" if c2pa.get("ai_generated") else "",
    ]
    return f"Content credentials (C2PA): {', '.join(filter(None, facts))}."
