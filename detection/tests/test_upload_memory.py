"""Validating an upload takes about the memory of its decoded pixels, and never more than the
estimate, read from the header, that the decode cap is checked against.

Each measurement runs in a fresh process and reads Linux's peak resident size (VmHWM),
reset just before validating: unlike ru_maxrss it does not start at the size of the
process that spawned it.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import REPO_ROOT
from detection.ml.images import decode_bytes_estimate
from detection.tests.factories import png_blank

PEAK_MEMORY_OF_VALIDATION = """
import sys
from pathlib import Path
from detection.validation import UploadLimits, validate_image_upload

def peak_resident_bytes():
    status = Path("/proc/self/status").read_text()
    return 1024 * int(status.split("VmHWM:")[1].split()[0])

data = Path(sys.argv[1]).read_bytes()
limits = UploadLimits(
    max_bytes=10**8, max_pixels=10**8, max_aspect_ratio=20, max_decode_bytes=10**10
)
Path("/proc/self/clear_refs").write_text("5")
before = peak_resident_bytes()
validate_image_upload(data, limits)
print(peak_resident_bytes() - before)
"""
# Decoder and encoder buffers and the interpreter's own allocations: a few MB whatever the
# image's size, which the per-pixel estimate leaves out.
FIXED_OVERHEAD = 8 * 2**20


def peak_memory_of_validation(path: Path) -> int:
    measured = subprocess.run(
        [sys.executable, "-c", PEAK_MEMORY_OF_VALIDATION, str(path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return int(measured.stdout)


@pytest.mark.parametrize(
    ("data", "bytes_per_pixel"),
    [
        # Pillow holds RGB in four bytes a pixel; the old path copied it twice to re-encode.
        (png_blank(7_300, 5_479, bit_depth=8, colour_type=2), 6),
        # Two bytes a pixel decoded, four for the RGB copy; never a float64 copy (eight).
        (png_blank(4_000, 4_000, bit_depth=16, colour_type=0), 8),
    ],
    ids=["rgb-40mp", "16-bit-gray-16mp"],
)
def test_validation_peak_memory_stays_near_the_decoded_pixels(
    tmp_path: Path, data: bytes, bytes_per_pixel: int
) -> None:
    path = tmp_path / "upload.png"
    path.write_bytes(data)
    pixels = Image.open(path).width * Image.open(path).height
    peak = peak_memory_of_validation(path)
    assert peak < bytes_per_pixel * pixels, f"{peak / pixels:.1f} bytes per pixel"


def six_megapixels(mode: str) -> Image.Image:
    gradient = Image.linear_gradient("L").resize((3_000, 2_000))
    if mode == "I;16":
        return Image.fromarray(np.asarray(gradient, dtype=np.uint16) * 257)
    return gradient.convert(mode)


def turned_upright() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to view
    return exif.tobytes()


@pytest.mark.parametrize(
    ("mode", "image_format", "options"),
    [
        ("RGB", "JPEG", {"exif": turned_upright()}),
        ("RGBA", "PNG", {}),
        ("P", "PNG", {"transparency": 0}),
        ("I;16", "PNG", {"exif": turned_upright()}),
        ("RGB", "WEBP", {"quality": 80}),
    ],
    ids=["turned-jpeg", "rgba-png", "palette-png-with-transparency", "turned-16-bit-png", "webp"],
)
def test_peak_memory_of_validation_stays_within_the_header_estimate(
    tmp_path: Path, mode: str, image_format: str, options: dict[str, object]
) -> None:
    buffer = io.BytesIO()
    six_megapixels(mode).save(buffer, format=image_format, **options)
    path = tmp_path / "upload"
    path.write_bytes(buffer.getvalue())
    estimate = decode_bytes_estimate(Image.open(path))
    peak = peak_memory_of_validation(path)
    assert peak <= estimate + FIXED_OVERHEAD, f"{peak / 2**20:.0f} MiB > {estimate / 2**20:.0f}"
