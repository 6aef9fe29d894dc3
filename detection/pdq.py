"""PDQ, Meta's perceptual hash: 256 bits that stay close when a photo is re-encoded,
resized or lightly edited, with a quality score (0-100) that says how much detail the hash
could use. Pure numpy and Pillow, no Django.

Hashes are written as 64 lower-case hexadecimal digits, the first bit of the hash being the
most significant bit of the first digit: the text form Hasher-Matcher-Actioner and
ThreatExchange exchange, so banks can be traded with them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from PIL import Image

PDQ_BITS = 256
PDQ_HEX_DIGITS = PDQ_BITS // 4
# PDQ reduces the image to 64 x 64 with its own filters; the reference hasher first scales
# photos to 512 px, which changes the hash by a few bits at most and keeps the float copies
# PDQ makes of the pixels small whatever the upload's size.
HASHING_SIDE = 512
_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class PdqHash:
    hex: str
    quality: int


def pdq_hash(image: Image.Image) -> PdqHash:
    """The PDQ hash and quality of an upright RGB image."""
    import pdqhash

    # Whole-factor reduction first, straight from the full image into a small one: no
    # intermediate copy of half the upload's size, as a reducing gap would make.
    factor = max(image.width, image.height) // HASHING_SIDE
    if factor > 1:
        image = image.reduce(factor)
    scale = min(1.0, HASHING_SIDE / max(image.width, image.height))
    if scale < 1.0:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BOX)
    pixels = np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))
    bits, quality = pdqhash.compute(pixels)
    return PdqHash(hex=np.packbits(bits.astype(np.uint8)).tobytes().hex(), quality=int(quality))


def pdq_hex_normalise(text: str) -> str:
    """A hash as 64 lower-case hex digits; ValueError for anything else."""
    value = text.strip().lower()
    if not _HEX.fullmatch(value):
        raise ValueError(f"not a PDQ hash (64 hexadecimal digits): {text.strip()[:80]!r}")
    return value


def pdq_hex_to_bits(value: str) -> str:
    """'0'/'1' text of the 256 bits, the form PostgreSQL's bit(256) reads and writes."""
    return format(int(value, 16), f"0{PDQ_BITS}b")


def pdq_bits_to_hex(bits: str) -> str:
    return format(int(bits, 2), f"0{PDQ_HEX_DIGITS}x")


def pdq_distance(first: str, second: str) -> int:
    """The Hamming distance between two hashes in hex: how many of the 256 bits differ."""
    return (int(first, 16) ^ int(second, 16)).bit_count()


# Multi-index hashing: the 256 bits as 16 words of 16 bits. Two hashes within distance d
# differ by at most d // 16 bits in at least one word (were every word 1 + d // 16 bits off,
# the hashes would be 16 * (1 + d // 16) > d apart). So a near-copy shares, at the same
# position, one word of the query with at most that many bits flipped: a handful of keys
# an index answers at once, whatever the number of stored hashes.
PDQ_WORDS = 16
_WORD_BITS = PDQ_BITS // PDQ_WORDS
# Beyond two flipped bits a word the keys multiply (137 a word at two, 697 at three) and an
# index stops paying off: larger distances are compared row by row.
MAX_WORD_RADIUS = 2


def pdq_words(value: str) -> list[int]:
    """The hash's index keys: each 16-bit word tagged with its position (position * 65536 +
    word), so equal words at different positions stay apart."""
    return [
        position << _WORD_BITS | int(value[position * 4 : position * 4 + 4], 16)
        for position in range(PDQ_WORDS)
    ]


def pdq_word_keys(value: str, max_distance: int) -> list[int] | None:
    """The keys at least one of which every hash within `max_distance` of `value` has; None
    when the distance is too large for keys to narrow the search."""
    radius = max_distance // PDQ_WORDS
    if radius > MAX_WORD_RADIUS:
        return None
    masks = [
        sum(1 << bit for bit in bits)
        for flipped in range(radius + 1)
        for bits in combinations(range(_WORD_BITS), flipped)
    ]
    return [
        position << _WORD_BITS | ((key & 0xFFFF) ^ mask)
        for position, key in enumerate(pdq_words(value))
        for mask in masks
    ]
