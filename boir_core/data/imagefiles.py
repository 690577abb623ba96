"""Image files checked from their bytes without decoding them: the size from the header, completeness from
the markers (docs/data_format.md#image-files).

A data set checks every image it uses this way when it is built (a few KiB read per file), so a file that
is cut short or whose size disagrees with the annotation file is an error before training starts, not a
half-grey image (libjpeg decodes a truncated JPEG with only a "Premature end of JPEG file" warning) or a
failure hours into a run.

* **JPEG** (starts ``FF D8 FF``). Size: the frame header (SOF0–SOF15 except C4, C8, CC), found by walking the
  marker segments from the start; each segment's length skips it, so the thumbnail inside an EXIF APP1
  segment is never taken for the image. Complete: an end-of-image marker (``FF D9``) follows the last
  start-of-scan marker (``FF DA``). Inside a scan's entropy-coded data an ``FF`` byte is always followed by
  ``00`` or a restart marker (``D0``–``D7``), so neither marker can occur there: a file cut inside, or just
  after, its last scan has no ``FF D9`` after its last ``FF DA`` (baseline and progressive alike). Bytes after
  the end marker (zero padding, a camera's trailer) are allowed.
* **PNG** (the 8-byte PNG signature). Size: the IHDR chunk. Complete: it holds the ``IEND`` chunk.
* **Other formats** (BMP, TIFF, WebP ...) are not inspected: OpenCV decodes them when they are read, and the
  size is compared with the annotation file then.

Sizes are the stored ones: EXIF orientation is ignored, as :func:`boir_core.data.annotations.read_image` (and
the release) read images.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = ["ImageFileInfo", "inspect_image_file", "image_format", "incomplete_reason"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"\x00\x00\x00\x00IEND"  # the chunk's zero length and its type
_PNG_END = b"IEND\xaeB`\x82"  # its type and CRC: how a PNG without trailing bytes ends
_JPEG_SOS, _JPEG_EOI = b"\xff\xda", b"\xff\xd9"
#: start-of-frame markers (every coding process); C4 (DHT), C8 (JPG) and CC (DAC) share the range but are not
_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_JPEG_NO_LENGTH = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RST0-7: markers without a segment
_HEAD = 4096  # bytes read from the start; a file no longer than this is checked whole at once
_TAIL = 1024  # bytes read from the end for the quick completeness test


@dataclass(frozen=True)
class ImageFileInfo:
    """What the bytes of an image file say: ``format`` ("jpeg" / "png"), ``size`` (width, height) from the
    header (None when the header does not give it) and ``problem`` (why the file is incomplete; None if it is
    complete)."""

    format: str
    size: tuple[int, int] | None
    problem: str | None


def image_format(head: bytes) -> str | None:
    """``"jpeg"`` or ``"png"`` from a file's first bytes, else None."""
    if head[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if head[:8] == PNG_SIGNATURE:
        return "png"
    return None


def incomplete_reason(data: bytes, fmt: str | None) -> str | None:
    """Why the whole file ``data`` of format ``fmt`` is incomplete (cut short), or None (module notes)."""
    if fmt == "jpeg":
        sos = data.rfind(_JPEG_SOS)
        if sos < 0:
            return "the JPEG file holds no image data (no start-of-scan marker): it is cut short"
        if data.rfind(_JPEG_EOI) < sos:
            return "the JPEG file is cut short (no end-of-image marker after its last scan)"
    elif fmt == "png" and data.rfind(_PNG_IEND) < 0:
        return "the PNG file is cut short (no IEND chunk)"
    return None


def _ends_complete(tail: bytes, fmt: str) -> bool:
    """The quick test: the file, zero padding removed, ends with the format's end marker."""
    tail = tail.rstrip(b"\x00")
    return tail.endswith(_JPEG_EOI) if fmt == "jpeg" else tail.endswith(_PNG_END)


def _jpeg_size(f: BinaryIO, head: bytes) -> tuple[int, int] | None:
    """(width, height) from the frame header, walking the segments after SOI (``head``: the file's first
    bytes, read further from ``f`` when a long segment, e.g. EXIF, leads past them); None if not found."""
    buf, pos = head, 2
    while True:
        if pos + 10 > len(buf):  # a marker, its length and the frame header's first fields
            f.seek(len(buf))
            more = f.read(max(pos + 10 - len(buf), 1 << 16))
            if not more:
                return None
            buf += more
            continue
        if buf[pos] != 0xFF:
            return None  # not at a marker: a malformed header
        code = buf[pos + 1]
        if code == 0xFF:  # a fill byte before the marker code
            pos += 1
            continue
        if code in _JPEG_NO_LENGTH:
            pos += 2
            continue
        if code in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            return None
        length = int.from_bytes(buf[pos + 2:pos + 4], "big")
        if length < 2:
            return None
        if code in _JPEG_SOF:  # length, precision, height, width
            h, w = int.from_bytes(buf[pos + 5:pos + 7], "big"), int.from_bytes(buf[pos + 7:pos + 9], "big")
            return (w, h) if w > 0 and h > 0 else None  # height 0: given later (DNL), left to the decoder
        pos += 2 + length


def _png_size(head: bytes) -> tuple[int, int] | None:
    if len(head) < 24 or head[12:16] != b"IHDR":
        return None
    w, h = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    return (w, h) if w > 0 and h > 0 else None


def inspect_image_file(path: str | os.PathLike) -> ImageFileInfo | None:
    """Size and completeness of a JPEG or PNG file from its bytes (module notes); None for other formats.

    Reads the first few KiB and the last KiB; the whole file only when its end is not the format's end
    marker (then the marker test of :func:`incomplete_reason` decides)."""
    with open(Path(path), "rb") as f:
        head = f.read(_HEAD)
        fmt = image_format(head)
        if fmt is None:
            return None
        length = os.fstat(f.fileno()).st_size
        if length <= len(head):
            problem = incomplete_reason(head, fmt)
        else:
            f.seek(-min(_TAIL, length), os.SEEK_END)
            problem = None
            if not _ends_complete(f.read(), fmt):
                f.seek(0)
                problem = incomplete_reason(f.read(), fmt)
        size = _jpeg_size(f, head) if fmt == "jpeg" else _png_size(head)
    return ImageFileInfo(fmt, size, problem)
