"""What a file sent in a chat must be: its size, its type, and content that matches that type.

Pure rules, no I/O: `check_upload` takes the limits as arguments, so that the site-wide ones
(ATTACHMENT_MAX_BYTES, ATTACHMENT_TYPES) and a per-site override are checked the same way.
"""

import codecs
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass

import puremagic
from django.conf import settings

from chat.exceptions import AttachmentRefused, AttachmentTooLarge


@dataclass(frozen=True, slots=True)
class FileType:
    label: str
    extensions: tuple[str, ...]
    is_image: bool = False
    is_text: bool = False  # checked as UTF-8 text; the others by their magic bytes


# Every type a site may allow (ATTACHMENT_TYPES names some of them). SVG and HTML are left out
# on purpose: a browser runs the scripts inside them.
KNOWN_TYPES: dict[str, FileType] = {
    "image/png": FileType("PNG", (".png",), is_image=True),
    "image/jpeg": FileType("JPEG", (".jpg", ".jpeg"), is_image=True),
    "image/gif": FileType("GIF", (".gif",), is_image=True),
    "image/webp": FileType("WebP", (".webp",), is_image=True),
    "application/pdf": FileType("PDF", (".pdf",)),
    "text/plain": FileType("text", (".txt", ".log"), is_text=True),
    "text/csv": FileType("CSV", (".csv",), is_text=True),
}

NAME_MAX_CHARS = 100
# Enough to identify every known type by its magic bytes, and to check a text file's encoding.
SNIFF_BYTES = 8192


@dataclass(frozen=True, slots=True)
class AttachmentLimits:
    max_bytes: int
    types: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CheckedUpload:
    """An upload that passed the checks: its cleaned name and the type its content has."""

    name: str
    content_type: str
    size: int
    extension: str

    @property
    def is_image(self) -> bool:
        return KNOWN_TYPES[self.content_type].is_image


def site_limits() -> AttachmentLimits:
    """The site-wide limits from settings."""
    return AttachmentLimits(
        max_bytes=settings.ATTACHMENT_MAX_BYTES, types=tuple(settings.ATTACHMENT_TYPES)
    )


def format_bytes(size: int) -> str:
    """1536 -> "1.5 KB", 10485760 -> "10 MB" (binary units, as file managers show them)."""
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f}".removesuffix(".0") + f" {unit}"
    return "1 byte" if size == 1 else f"{size} bytes"


def allowed_labels(types: Collection[str]) -> str:
    """ "PNG, JPEG, PDF and CSV" for the error that lists what may be sent."""
    labels = [KNOWN_TYPES[t].label for t in KNOWN_TYPES if t in types]
    if len(labels) <= 1:
        return "".join(labels) or "none"
    return f"{', '.join(labels[:-1])} and {labels[-1]}"


def clean_file_name(name: str) -> str:
    """The name to show and offer for download: its last path part, without control or format
    characters (a right-to-left override could make "gpj.exe" read as "exe.jpg"), NUL or lone
    surrogates, at most NAME_MAX_CHARS long with its extension kept. Never stored on disk."""
    name = unicodedata.normalize("NFC", name.replace("\\", "/").rsplit("/", 1)[-1])
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] not in {"C", "Z"} or ch == " ")
    name = name.strip().lstrip(".")  # no hidden-file names
    stem, dot, extension = name.rpartition(".")
    if not dot or len(extension) > 10:
        stem, dot, extension = name, "", ""
    room = NAME_MAX_CHARS - len(dot + extension)
    name = (stem[:room].rstrip() + dot + extension) if stem else ""
    return name or "file"


def _extension(name: str) -> str:
    stem, dot, extension = name.rpartition(".")
    return f".{extension.lower()}" if dot and stem else ""


def _is_utf8_text(head: bytes, *, complete: bool) -> bool:
    if b"\x00" in head:
        return False
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        decoder.decode(head, final=complete)  # a cut-off last character is fine mid-file
    except UnicodeDecodeError:
        return False
    return True


def _content_is(content_type: str, head: bytes, *, complete: bool) -> bool:
    kind = KNOWN_TYPES[content_type]
    if kind.is_text:
        return _is_utf8_text(head, complete=complete)
    try:
        matches = puremagic.magic_string(head)
    except (puremagic.PureError, ValueError):
        return False
    return any(match.mime_type == content_type for match in matches)


def check_upload(
    *,
    name: str,
    declared_type: str,
    size: int,
    head: bytes,
    max_bytes: int,
    allowed_types: Collection[str],
) -> CheckedUpload:
    """Check one upload against limits; AttachmentRefused (AttachmentTooLarge) says why not.

    `head` is the file's first SNIFF_BYTES (all of it if shorter). The type is decided by the
    extension, then confirmed by the content; a declared type (the browser's) that names another
    known type, or content that is not of the extension's type, is refused. Other declared types
    are not held against the file: browsers guess them from the operating system (a .csv may
    come as application/vnd.ms-excel).
    """
    if size <= 0:
        raise AttachmentRefused("The file is empty.")
    if size > max_bytes:
        raise AttachmentTooLarge(
            f"The file is {format_bytes(size)}; the limit is {format_bytes(max_bytes)}."
        )
    clean_name = clean_file_name(name)
    extension = _extension(clean_name)
    allowed = [t for t in KNOWN_TYPES if t in allowed_types]
    content_type = next((t for t in allowed if extension in KNOWN_TYPES[t].extensions), None)
    if content_type is None:
        raise AttachmentRefused(
            f"Files of this type cannot be sent. You can send {allowed_labels(allowed)} files."
        )
    declared = declared_type.split(";", 1)[0].strip().lower()
    declared_kind = KNOWN_TYPES.get(declared)
    kind = KNOWN_TYPES[content_type]
    # A .csv the browser calls text/plain is the same kind of file; an image called a PDF is not.
    same_kind = declared_kind is not None and declared_kind.is_text and kind.is_text
    if declared_kind is not None and declared != content_type and not same_kind:
        raise AttachmentRefused(f"The file is not a {kind.label} file, as its name says.")
    if not _content_is(content_type, head, complete=len(head) >= size):
        raise AttachmentRefused(f"The file's content is not {kind.label}, as its name says.")
    return CheckedUpload(name=clean_name, content_type=content_type, size=size, extension=extension)
