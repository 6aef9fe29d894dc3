"""Analyse image files from the command line with the same pipeline the workers run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from detection.management.analyzer import command_analyzer


class Command(BaseCommand):
    help = (
        "Find, score and explain every face in the given images. --json prints one JSON "
        "object per image and line; --heatmaps DIR also writes each face's Grad-CAM picture."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("images", nargs="+", type=Path)
        parser.add_argument("--checkpoint", type=Path, help="default: settings.DEEPFAKE_CHECKPOINT")
        parser.add_argument("--json", action="store_true", help="one JSON object per line")
        parser.add_argument("--heatmaps", type=Path, metavar="DIR", help="write heatmaps here")

    def handle(self, *args: Any, **options: Any) -> None:
        from detection.ml.images import UnreadableImageError

        analyzer = command_analyzer(checkpoint=options["checkpoint"])
        heatmaps: Path | None = options["heatmaps"]
        if heatmaps:
            heatmaps.mkdir(parents=True, exist_ok=True)
        if not options["json"]:
            model = analyzer.model
            trained = "trained" if model.trained else "UNTRAINED: scores mean nothing"
            self.stdout.write(f"model {model.name} ({model.version}, {trained})")

        failures = 0
        for path in options["images"]:
            try:
                result = analyzer.analyze(path)
            except UnreadableImageError as exc:
                failures += 1
                self._report_error(path, str(exc), as_json=options["json"])
                continue
            record = _record(path, result, heatmaps)
            if options["json"]:
                self.stdout.write(json.dumps(record))
            else:
                self._print_table(record)
        if failures:
            raise CommandError(f"{failures} of {len(options['images'])} images could not be read")

    def _report_error(self, path: Path, message: str, *, as_json: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps({"file": str(path), "status": "error", "error": message}))
        else:
            self.stderr.write(f"{path}: error: {message}")

    def _print_table(self, record: dict[str, Any]) -> None:
        if record["status"] == "no_face":
            self.stdout.write(f"{record['file']}: no face ({record['timings_ms']['total']:.0f} ms)")
            return
        self.stdout.write(
            f"{record['file']}: {record['verdict']} "
            f"P(fake) {100 * record['fake_probability']:.1f}% "
            f"({len(record['faces'])} face(s), {record['timings_ms']['total']:.0f} ms)"
        )
        self.stdout.write(f"  {'face':>4}  {'box x1,y1,x2,y2':<24} {'detect':>7} {'P(fake)':>8}")
        for face in record["faces"]:
            box = ",".join(f"{value:.0f}" for value in face["box"])
            self.stdout.write(
                f"  {face['index']:>4}  {box:<24} {face['detection_probability']:>7.3f} "
                f"{100 * face['fake_probability']:>7.1f}%"
                + (f"  {face['heatmap']}" if "heatmap" in face else "")
            )


def _record(path: Path, result: Any, heatmaps: Path | None) -> dict[str, Any]:
    faces = []
    for face in result.faces:
        entry: dict[str, Any] = {
            "index": face.index,
            "box": [round(value, 2) for value in face.box],
            "detection_probability": round(face.detection_probability, 6),
            "fake_probability": round(face.fake_probability, 6),
        }
        if heatmaps:
            heatmap_path = heatmaps / f"{path.stem}-face{face.index}.png"
            face.heatmap.save(heatmap_path)
            entry["heatmap"] = str(heatmap_path)
        faces.append(entry)
    return {
        "file": str(path),
        "status": result.status,
        "verdict": result.verdict,
        "fake_probability": (
            None if result.fake_probability is None else round(result.fake_probability, 6)
        ),
        "model_version": result.model.version,
        "model_trained": result.model.trained,
        "width": result.width,
        "height": result.height,
        "timings_ms": {name: round(ms, 1) for name, ms in result.timings_ms.items()},
        "faces": faces,
    }
