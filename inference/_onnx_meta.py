"""Read ``metadata_props`` of an ONNX file without onnx or an onnxruntime session.

PP-OCR's recogniser carries its character list in the model's metadata
(``character``: one symbol per line). The backend interface only runs models,
and a remote backend (Triton) never shows the file's metadata, so the decoder
reads it from the file itself: a walk over the top-level protobuf fields of
``ModelProto`` (``metadata_props`` is field 14, a repeated
``StringStringEntryProto{key=1, value=2}``), skipping the graph by its length.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import ConfigError

__all__ = ["onnx_metadata"]

_METADATA_PROPS = 14
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


def _varint(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated or oversized varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(data: bytes | memoryview) -> list[tuple[int, int, memoryview | int]]:
    """``(field, wire_type, value)`` of one message level; LEN values as memoryviews."""
    view = memoryview(data)
    out: list[tuple[int, int, memoryview | int]] = []
    pos = 0
    while pos < len(view):
        tag, pos = _varint(view, pos)
        field, wire = tag >> 3, tag & 7
        if wire == _VARINT:
            value, pos = _varint(view, pos)
            out.append((field, wire, value))
        elif wire == _LEN:
            length, pos = _varint(view, pos)
            if pos + length > len(view):
                raise ValueError(f"field {field} runs past the end")
            out.append((field, wire, view[pos : pos + length]))
            pos += length
        elif wire in (_I64, _I32):
            pos += 8 if wire == _I64 else 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
    if pos != len(view):
        raise ValueError("message runs past the end")
    return out


def onnx_metadata(path: Path) -> dict[str, str]:
    """The ``metadata_props`` of the ONNX model at ``path`` as a dict; ConfigError if unreadable."""
    try:
        data = path.read_bytes()
        props: dict[str, str] = {}
        for field, wire, value in _fields(data):
            if field != _METADATA_PROPS or wire != _LEN or isinstance(value, int):
                continue
            entry = {f: v for f, w, v in _fields(value) if w == _LEN and not isinstance(v, int)}
            props[bytes(entry.get(1, b"")).decode()] = bytes(entry.get(2, b"")).decode()
        return props
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read ONNX metadata from {path}: {exc}") from exc
