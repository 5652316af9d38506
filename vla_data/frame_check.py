"""Checks of encoded camera frames (JPEG/PNG bytes) that conversion copies without decoding.

`structure_problem` is the conversion-time check: it walks a JPEG's marker segments from SOI to EOI
(or a PNG's chunks to IEND), so a truncated frame, a segment length that does not land on the next
marker or a missing end marker is refused; it costs one regex scan per entropy-coded segment, not
a decode. Corrupt entropy-coded data between valid markers needs a decode to be found:
`decode_problem` decodes strictly (libjpeg-turbo's corrupt-data warnings are errors), which is what
`vla-data verify --deep` runs on every frame.
"""

from __future__ import annotations

import io
import re
import struct
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The next marker after entropy-coded data: 0xFF not followed by a stuffed 0x00, a restart marker
# (RST0-7, part of the scan) or another 0xFF (fill byte; the marker is the last 0xFF of a run).
_MARKER_AFTER_SCAN = re.compile(rb"\xff(?=[^\x00\xd0-\xd7\xff])")
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # TEM, RST0-7: no length field
_NOT_FRAME_HEADERS = {0xC4, 0xC8, 0xCC}  # DHT, JPG, DAC share the SOFn range


def structure_problem(data: bytes) -> str | None:
    """None when `data` is a structurally whole JPEG or PNG, else what is wrong (with a byte offset)."""
    if data[:2] == b"\xff\xd8":
        return _jpeg_problem(data)
    if data[:8] == PNG_SIGNATURE:
        return _png_problem(data)
    return "neither a JPEG nor a PNG signature"


def _jpeg_problem(data: bytes) -> str | None:
    """Walk SOI, the marker segments (length-prefixed), each scan's entropy-coded data, up to EOI."""
    size, pos = len(data), 2
    frame_header = scan = False
    while True:
        if pos >= size:
            return f"JPEG ends at byte {size} without an end-of-image marker (truncated?)"
        if data[pos] != 0xFF:
            return f"JPEG byte {pos}: expected a marker, found 0x{data[pos]:02x} (a segment length is wrong)"
        while pos < size and data[pos] == 0xFF:
            pos += 1
        if pos >= size:
            return f"JPEG ends inside a marker at byte {size}"
        marker, pos = data[pos], pos + 1
        if marker == 0xD9:
            return None if scan else "JPEG end-of-image marker before any scan"
        if marker in _STANDALONE:
            continue
        if marker in (0x00, 0xD8):
            return f"JPEG byte {pos - 2}: unexpected marker 0xff{marker:02x}"
        if pos + 2 > size:
            return f"JPEG ends inside the header of segment 0xff{marker:02x}"
        (length,) = struct.unpack_from(">H", data, pos)
        if length < 2 or pos + length > size:
            return f"JPEG byte {pos - 2}: segment 0xff{marker:02x} of length {length} runs past the end ({size} bytes)"
        pos += length
        if 0xC0 <= marker <= 0xCF and marker not in _NOT_FRAME_HEADERS:
            frame_header = True
        if marker == 0xDA:
            if not frame_header:
                return "JPEG scan before its frame header (SOF)"
            scan = True
            found = _MARKER_AFTER_SCAN.search(data, pos)
            pos = found.start() if found else size


def _png_problem(data: bytes) -> str | None:
    """Walk the chunks (length, type, data, CRC-32 of type + data) up to IEND."""
    size, pos = len(data), 8
    while pos + 12 <= size:
        length, kind = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + length
        if end > size:
            return f"PNG byte {pos}: chunk {kind!r} of length {length} runs past the end ({size} bytes)"
        (crc,) = struct.unpack_from(">I", data, end - 4)
        if zlib.crc32(data[pos + 4 : end - 4]) != crc:
            return f"PNG byte {pos}: CRC mismatch in chunk {kind!r}"
        if kind == b"IEND":
            return None
        pos = end
    return f"PNG ends at byte {size} without an IEND chunk (truncated?)"


def decode_problem(data: bytes) -> str | None:
    """None when the frame decodes without any error or corrupt-data warning, else the reason."""
    if problem := structure_problem(data):
        return problem
    if data[:2] == b"\xff\xd8":
        import simplejpeg

        try:
            simplejpeg.decode_jpeg(data, strict=True)
        except ValueError as e:
            return f"JPEG cannot be decoded cleanly ({e})"
        return None
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
    except (OSError, ValueError, SyntaxError, zlib.error) as e:
        return f"PNG cannot be decoded ({e})"
    return None


def frame_size(data: bytes) -> tuple[int, int] | None:
    """(height, width) from a JPEG's frame header (SOFn) or a PNG's IHDR, without decoding; None
    when the header cannot be found."""
    if data[:8] == PNG_SIGNATURE and len(data) >= 24 and data[12:16] == b"IHDR":
        width, height = struct.unpack_from(">II", data, 16)
        return height, width
    if data[:2] != b"\xff\xd8":
        return None
    pos, size = 2, len(data)
    while pos + 4 <= size and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker in _STANDALONE or marker == 0xFF:
            pos += 1 if marker == 0xFF else 2
            continue
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if 0xC0 <= marker <= 0xCF and marker not in _NOT_FRAME_HEADERS and pos + 9 <= size:
            height, width = struct.unpack_from(">HH", data, pos + 5)
            return height, width
        if marker in (0xDA, 0xD9):
            return None
        pos += 2 + length
    return None
