"""File types: what an upload may declare, and what its bytes really are.

A declared ``Content-Type`` is never trusted. Each type the daemon knows has a ``Kind``
saying which *labels* of the actual content it accepts; ``sniff`` gives the label of a file
from its magic numbers (the ``filetype`` package), the structure of a zip (Office Open XML
and OpenDocument files are zips with known members), the OLE2 compound-file signature
(Office 97-2003) or, for text, the absence of any binary signature and of NUL bytes. A
declared type whose kind does not accept the sniffed label is a ``type_mismatch``.

Only types listed here can be allowed (``files.allowed_types``): a type that can't be
checked can't be allowed. Nothing here touches the network or the event loop.
"""

from __future__ import annotations

import re
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header, or an empty archive
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
HEAD_BYTES = 8192  # what ``filetype`` looks at
ZIP_MAX_ENTRIES = 10_000  # more members than this: a plain zip, not opened for a closer look

# Labels of actual content that are not a single MIME type.
TEXT = "text"  # no binary signature and no NUL byte (or a UTF-16 byte order mark)
OLE2 = "ole2"  # an OLE2 compound file: .doc, .xls or .ppt
ISO_BMFF = "iso-bmff"  # the MP4 family: .mp4, .m4a, .mov, .3gp
MATROSKA = "matroska"  # .webm, .mkv
UNKNOWN = "unknown"

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
ODT = "application/vnd.oasis.opendocument.text"
ODS = "application/vnd.oasis.opendocument.spreadsheet"
ODP = "application/vnd.oasis.opendocument.presentation"
EPUB = "application/epub+zip"
ZIP = "application/zip"
ODF_LIKE = (ODT, ODS, ODP, EPUB)  # zips that name their type in a first member "mimetype"
OOXML_PARTS = {"word/": DOCX, "xl/": XLSX, "ppt/": PPTX}


@dataclass(frozen=True, slots=True)
class Kind:
    accepts: frozenset[str]  # sniffed labels this declared type may be
    pillow: str | None = None  # Pillow's format name: decoded for size and a thumbnail


def _kind(*labels: str, pillow: str | None = None) -> Kind:
    return Kind(frozenset(labels), pillow)


# Every type an upload may declare, by canonical MIME type.
KINDS: dict[str, Kind] = {
    "image/jpeg": _kind("image/jpeg", pillow="JPEG"),
    "image/png": _kind("image/png", pillow="PNG"),
    "image/gif": _kind("image/gif", pillow="GIF"),
    "image/webp": _kind("image/webp", pillow="WEBP"),
    "image/bmp": _kind("image/bmp", pillow="BMP"),
    "image/heic": _kind("image/heic"),  # phones' photos; no decoder here, so no thumbnail
    "application/pdf": _kind("application/pdf"),
    "application/rtf": _kind("application/rtf"),
    "application/msword": _kind(OLE2),
    "application/vnd.ms-excel": _kind(OLE2),
    "application/vnd.ms-powerpoint": _kind(OLE2),
    DOCX: _kind(DOCX),
    XLSX: _kind(XLSX),
    PPTX: _kind(PPTX),
    ODT: _kind(ODT),
    ODS: _kind(ODS),
    ODP: _kind(ODP),
    EPUB: _kind(EPUB),
    "text/plain": _kind(TEXT),
    "text/csv": _kind(TEXT),
    "audio/mpeg": _kind("audio/mpeg"),
    "audio/mp4": _kind(ISO_BMFF),
    "audio/ogg": _kind("audio/ogg"),
    "audio/wav": _kind("audio/wav"),
    "audio/webm": _kind(MATROSKA),
    "audio/aac": _kind("audio/aac"),
    "audio/flac": _kind("audio/flac"),
    "video/mp4": _kind(ISO_BMFF),
    "video/quicktime": _kind(ISO_BMFF),
    "video/webm": _kind(MATROSKA),
    ZIP: _kind(ZIP, DOCX, XLSX, PPTX, ODT, ODS, ODP, EPUB),  # an Office file is a zip too
    "application/x-7z-compressed": _kind("application/x-7z-compressed"),
    "application/vnd.rar": _kind("application/vnd.rar"),
}

# A school's default: pictures, PDF, office documents, text, common audio and video, zip.
DEFAULT_ALLOWED: tuple[str, ...] = (
    "image/jpeg",
    "image/png",
    "image/gif",
    "image/webp",
    "image/heic",
    "application/pdf",
    "application/rtf",
    "application/msword",
    "application/vnd.ms-excel",
    "application/vnd.ms-powerpoint",
    DOCX,
    XLSX,
    PPTX,
    ODT,
    ODS,
    ODP,
    "text/plain",
    "text/csv",
    "audio/mpeg",
    "audio/mp4",
    "audio/ogg",
    "audio/wav",
    "audio/webm",
    "audio/aac",
    "video/mp4",
    "video/quicktime",
    "video/webm",
    ZIP,
)

# Other names browsers and systems send for the same types.
ALIASES: dict[str, str] = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "image/x-ms-bmp": "image/bmp",
    "image/heif": "image/heic",
    "application/x-rtf": "application/rtf",
    "text/rtf": "application/rtf",
    "application/csv": "text/csv",
    "text/x-csv": "text/csv",
    "audio/mp3": "audio/mpeg",
    "audio/x-mp3": "audio/mpeg",
    "audio/mpeg3": "audio/mpeg",
    "audio/x-m4a": "audio/mp4",
    "audio/m4a": "audio/mp4",
    "audio/x-wav": "audio/wav",
    "audio/wave": "audio/wav",
    "audio/vnd.wave": "audio/wav",
    "audio/x-aac": "audio/aac",
    "audio/x-flac": "audio/flac",
    "application/x-zip-compressed": ZIP,
    "application/x-zip": ZIP,
    "application/x-rar-compressed": "application/vnd.rar",
    "application/x-rar": "application/vnd.rar",
}

# What ``filetype`` answers, as our labels (its answers not listed are kept as they are).
_FILETYPE_LABELS = {
    "image/apng": "image/png",
    "audio/x-wav": "audio/wav",
    "audio/x-flac": "audio/flac",
    "audio/mp4": ISO_BMFF,
    "video/mp4": ISO_BMFF,
    "video/quicktime": ISO_BMFF,
    "video/x-m4v": ISO_BMFF,
    "video/3gpp": ISO_BMFF,
    "video/webm": MATROSKA,
    "video/x-matroska": MATROSKA,
    "application/msword": OLE2,
    "application/vnd.ms-excel": OLE2,
    "application/vnd.ms-powerpoint": OLE2,
    "application/x-rar-compressed": "application/vnd.rar",
}

_TOKEN = r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}"
MEDIA_TYPE = re.compile(rf"{_TOKEN}/{_TOKEN}")


class Refused(ValueError):
    """An upload refused for what it is: HTTP status, error code and a message."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def canonical(header: str | None, allowed: frozenset[str] | set[str]) -> str:
    """The canonical type of a ``Content-Type`` header, if it is allowed. Parameters such as
    ``charset`` are dropped; case does not matter; aliases (``image/jpg``) are resolved."""
    if header is None or not header.strip():
        raise Refused(415, "type_not_allowed", "send the file's type in Content-Type")
    media = header.split(";", 1)[0].strip().lower()
    if len(media) > 255 or not MEDIA_TYPE.fullmatch(media):
        raise Refused(415, "type_not_allowed", "Content-Type is not a media type (type/subtype)")
    media = ALIASES.get(media, media)
    if media not in allowed:
        raise Refused(415, "type_not_allowed", f"files of type {media} are not allowed here")
    return media


def check_allowed(types: list[str]) -> None:
    """For the settings: every allowed type must be one whose content can be checked."""
    unknown = [t for t in types if t not in KINDS]
    if unknown:
        raise ValueError(
            f"files.allowed_types: unknown types {', '.join(map(repr, unknown))};"
            f" known: {', '.join(sorted(KINDS))}"
        )


def sniff(path: Path, head: bytes, has_nul: bool) -> str:
    """The label of what the file at ``path`` is. ``head`` is its first bytes (at least
    ``HEAD_BYTES`` of them when the file is that long); ``has_nul`` whether any byte is 0."""
    import filetype  # imported here: settings import this module, the daemon only sniffs

    if head.startswith(ZIP_MAGICS):
        return _zip_label(path)
    if head.startswith(OLE2_MAGIC):
        return OLE2
    guess = filetype.guess(head[:HEAD_BYTES])
    if guess is not None:
        mime = str(guess.mime)
        return _FILETYPE_LABELS.get(mime, mime)
    if head[4:8] == b"ftyp":  # an MP4-family brand that filetype does not list
        return ISO_BMFF
    if not has_nul or head.startswith(UTF16_BOMS):
        return TEXT
    return UNKNOWN


def accepts(declared: str, label: str) -> bool:
    kind = KINDS.get(declared)
    return kind is not None and label in kind.accepts


def shown_inline(type_: str) -> bool:
    """Whether a download is offered for showing (pictures this daemon decoded) rather than
    saving: every other type is sent as an attachment."""
    kind = KINDS.get(type_)
    return kind is not None and kind.pillow is not None


def _zip_label(path: Path) -> str:
    """A zip's label: an Office Open XML or OpenDocument type by its members, else zip.

    The entry count is read from the end-of-central-directory record first: a zip with a
    huge directory is not opened (listing it would cost memory), it is only a zip.
    """
    entries = _zip_entries(path)
    if entries is None or entries > ZIP_MAX_ENTRIES:
        return ZIP
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if "mimetype" in names:
                with zf.open("mimetype") as member:
                    declared = member.read(64).decode("ascii", "replace").strip()
                if declared in ODF_LIKE:
                    return declared
            if "[Content_Types].xml" in names:
                for prefix, mime in OOXML_PARTS.items():
                    if any(n.startswith(prefix) for n in names):
                        return mime
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, RuntimeError):
        return ZIP  # the magic says zip; a damaged one is still not an Office file
    return ZIP


def _zip_entries(path: Path) -> int | None:
    """The total entry count from the end-of-central-directory record (None if not found).
    A ZIP64 archive reports 0xFFFF here, which counts as too many to look into."""
    with open(path, "rb") as fh:
        size = fh.seek(0, 2)
        tail = min(size, 22 + 65535)  # the record is 22 bytes plus a comment of up to 64 KiB
        fh.seek(size - tail)
        data = fh.read(tail)
    at = data.rfind(b"PK\x05\x06")
    if at < 0 or len(data) - at < 22:
        return None
    (total,) = struct.unpack_from("<H", data, at + 10)
    return int(total)
