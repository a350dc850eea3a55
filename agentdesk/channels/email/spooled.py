"""A message too big to hold: kept whole in a file, parsed through a bounded view of it.

A sender chooses a message's size, so the parser never reads more than `VIEW_BYTES` of bodies
(and `HEADER_BYTES` / `PART_HEADER_BYTES` of header fields) of any one message. `build_view`
reads the file once, in pieces, and writes a small message of the same MIME structure: every
header block (cut to its bound), every text and message part up to what the bound leaves, small
attachments whole; a part cut short is marked with a header of this parse's own random nonce,
and its decoded size and SHA-256 are measured as it streams past. `mime.parse_file` parses that
view as it parses any mail, takes each cut attachment's size and digest from the measurement
(its data stays in the raw message), and notes what was cut; the content hash is computed over
the whole file (`content.email_content_hash_of_file`), so deduplication sees the whole message.

The raw message itself is stored whole from the file (store/bulk.py `insert_raw_from_file`).
"""

from __future__ import annotations

import binascii
import dataclasses
import hashlib
import re
import secrets
from collections.abc import Iterator
from email.message import Message
from typing import BinaryIO

from agentdesk.channels.base import InboundAttachment

# A message bigger than this is parsed through its bounded view, and a sync fetches it into a
# file in pieces instead of holding it.
LARGE_MESSAGE_BYTES = 4 * 1024 * 1024
# Of one message, the parser reads at most this much body text (text, HTML and message parts,
# and small attachments whole), this much of the top header block and this much of all the
# parts' header blocks together.
VIEW_BYTES = 2 * 1024 * 1024
HEADER_BYTES = 256 * 1024
FIELD_BYTES = 32 * 1024  # of any one header field (a huge Subject leaves room for the Message-ID)
PART_HEADER_BYTES = 512 * 1024
# An attachment up to this size is kept whole in the view (its data read as usual).
SMALL_PART_BYTES = 64 * 1024
# Bounds on the structure walked, as mime_tree's.
MAX_PARTS = 2_000
MAX_DEPTH = 64
# The file is read in pieces of at most this many bytes (a line may be longer), bodies in blocks.
PIECE_BYTES = 1024 * 1024
_BLOCK_BYTES = 64 * 1024
# A header field's value read for the structure (Content-Type and friends) is cut here.
_STRUCTURE_CHARS = 8 * 1024
_STRUCTURAL = ("content-type", "content-transfer-encoding", "content-disposition")
_FIELD_NAME = re.compile(rb"^([!-9;-~]*):")
_CUT_HEADER = "X-Agentdesk-Cut"
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/=]")


@dataclasses.dataclass(frozen=True)
class MeasuredAttachment(InboundAttachment):
    """An attachment the view cut short: its whole decoded size and SHA-256, measured as the mail
    streamed past (`data` is empty: the raw message holds it)."""

    size: int = 0
    sha256: str = ""


@dataclasses.dataclass
class View:
    data: bytes
    # nonce-N of each cut part -> (decoded size, SHA-256 hex) of the whole part
    measured: dict[str, tuple[int, str]]
    text_cut: bool  # a text or message part was cut short
    parts_left_out: int  # parts past MAX_PARTS or PART_HEADER_BYTES: not in the view at all
    header_cut: bool


class _Measure:
    """Decoded size and SHA-256 of a part's body, fed piece by piece (the line end before the
    closing boundary belongs to the boundary, as the parser has it)."""

    def __init__(self, encoding: str):
        self.encoding = encoding
        self.digest = hashlib.sha256()
        self.size = 0
        self.line = b""  # quoted-printable and plain text: the line being read
        self.held = b""  # the last line's ending, counted once another line follows
        self.base64_rest = b""

    def _count(self, data: bytes) -> None:
        self.size += len(data)
        self.digest.update(data)

    def _base64(self, data: bytes, *, final: bool = False) -> None:
        data = self.base64_rest + _NOT_BASE64.sub(b"", data)
        if final:
            data = data.rstrip(b"=")
            data += b"=" * (-len(data) % 4)
            whole = len(data)
        else:
            whole = len(data) - len(data) % 4
        data, self.base64_rest = data[:whole], data[whole:]
        try:
            self._count(binascii.a2b_base64(data))
        except binascii.Error:
            pass

    def feed(self, piece: bytes, ended: bool) -> None:
        if self.encoding == "base64":  # line ends carry no data
            self._base64(piece)
            return
        self.line += piece
        if not ended and len(self.line) < PIECE_BYTES:
            return
        line, self.line = self.line, b""
        body, ending = _split_ending(line) if ended else (line, b"")
        decode = binascii.a2b_qp if self.encoding == "quoted-printable" else bytes
        self._count(decode(self.held))
        self.held = b""
        if ending and decode is binascii.a2b_qp and body.endswith(b"="):
            self._count(decode(body + ending))  # a soft line break: the lines join
        else:
            self._count(decode(body))
            self.held = ending

    def result(self) -> tuple[int, str]:
        if self.encoding == "base64":
            self._base64(b"", final=True)
        elif self.line:
            self.feed(b"", True)
        return self.size, self.digest.hexdigest()


def _split_ending(line: bytes) -> tuple[bytes, bytes]:
    if line.endswith(b"\r\n"):
        return line[:-2], b"\r\n"
    if line.endswith((b"\n", b"\r")):
        return line[:-1], line[-1:]
    return line, b""


def _structure(fields: dict[str, str]) -> tuple[str, str | None, str, bool]:
    """(content type, boundary, transfer encoding, is an attachment) from the structural fields."""
    message = Message()
    for name, value in fields.items():
        message[name] = value
    try:
        ctype = message.get_content_type()
    except Exception:
        ctype = "text/plain"
    try:
        boundary = message.get_boundary() if ctype.startswith("multipart/") else None
    except Exception:
        boundary = None
    encoding = fields.get("content-transfer-encoding", "").strip().lower()
    disposition = fields.get("content-disposition", "").split(";", 1)[0].strip().lower()
    named = "name" in fields.get("content-disposition", "").lower() or "name" in fields.get("content-type", "").lower()
    return ctype, boundary, encoding, disposition == "attachment" or named


def _end_line(kept: list[bytes]) -> None:
    """A header field cut short still ends its line (pieces of one line follow each other)."""
    if kept and not kept[-1].endswith((b"\n", b"\r")):
        kept[-1] += b"\r\n"


class _Scanner:
    def __init__(self, file: BinaryIO, nonce: str):
        self.file = file
        self.nonce = nonce
        self.out: list[bytes] = []
        self.room = VIEW_BYTES
        self.part_header_room = PART_HEADER_BYTES
        self.measured: dict[str, tuple[int, str]] = {}
        self.text_cut = False
        self.header_cut = False
        self.parts = 0
        self.left_out = 0
        self.boundaries: list[bytes] = []
        self._pushed: tuple[bytes, bool] | None = None
        self.at_line_start = True

    # reading: pieces of lines, with one piece of look-back

    def piece(self) -> tuple[bytes, bool] | None:
        """(the next piece, whether it starts a line) or None at the end of the file."""
        if self._pushed is not None:
            pushed, self._pushed = self._pushed, None
            return pushed
        data = self.file.readline(PIECE_BYTES)
        if not data:
            return None
        starts = self.at_line_start
        self.at_line_start = data.endswith((b"\n", b"\r"))
        return data, starts

    def push_back(self, item: tuple[bytes, bool]) -> None:
        self._pushed = item

    def boundary_of(self, piece: bytes, starts: bool) -> tuple[int, bool] | None:
        """(depth of the boundary this line is, whether it closes) or None."""
        if not starts or not self.boundaries or len(piece) > 1_000 or not piece.startswith(b"--"):
            return None
        line = piece.rstrip(b"\r\n").rstrip(b" \t")
        for depth in range(len(self.boundaries) - 1, -1, -1):
            boundary = self.boundaries[depth]
            if line == boundary:
                return depth, False
            if line == boundary + b"--":
                return depth, True
        return None

    # header blocks

    def header_block(self, budget: int, top: bool) -> tuple[list[bytes], dict[str, str], int]:
        """The fields of a header block as kept (each cut to what `budget` leaves), the structural
        fields' values, and how many bytes were kept. Like the parser, a line that is neither a
        field nor a continuation ends the block (and starts the body); a blank line ending it is
        consumed."""
        kept: list[bytes] = []
        structure: dict[str, str] = {}
        used = 0
        name = ""
        first = True
        field_used = 0
        while True:
            item = self.piece()
            if item is None:
                break
            piece, starts = item
            if starts:
                if piece in (b"\n", b"\r\n", b"\r"):
                    break
                if self.boundary_of(piece, starts) is not None:
                    self.push_back(item)
                    break
                if piece[:1] not in (b" ", b"\t"):
                    match = _FIELD_NAME.match(piece)
                    if match is None and not (top and first and piece.startswith(b"From ")):
                        self.push_back(item)
                        break
                    field = match.group(1).decode("ascii", "replace").lower() if match else ""
                    # The first of each structural field counts (as `Message.get` has it).
                    name = "" if field in structure else field
                    if name in _STRUCTURAL:
                        structure[name] = ""
                        piece = piece.split(b":", 1)[1]
                first = False
            if name in _STRUCTURAL:
                if len(structure[name]) < _STRUCTURE_CHARS:
                    structure[name] = (structure[name] + piece.decode("ascii", "surrogateescape"))[:_STRUCTURE_CHARS]
                continue
            if starts and piece[:1] not in (b" ", b"\t"):
                _end_line(kept)  # the field before, if it was cut short
                field_used = 0
            take = piece[: max(0, min(budget - used, FIELD_BYTES - field_used))]
            if len(take) < len(piece):
                self.header_cut = True
            if take:
                kept.append(take)
                used += len(take)
                field_used += len(take)
        _end_line(kept)
        fields = [b"".join(kept)] if kept else []
        for name, value in structure.items():
            value = " ".join(value.split())
            fields.append(f"{name}: {value}\r\n".encode("ascii", "surrogateescape"))
        return fields, structure, used

    # bodies

    def entity(self, depth: int, top: bool, parent_in_view: bool = True) -> None:
        """One header block and its body, until the next boundary of an enclosing multipart."""
        budget = HEADER_BYTES if top else max(0, self.part_header_room)
        fields, structure, used = self.header_block(budget, top)
        if not top:
            self.part_header_room -= used
        self.parts += 1
        ctype, boundary, encoding, attachment = _structure(structure)
        in_view = top or (parent_in_view and self.parts <= MAX_PARTS and self.part_header_room > 0)
        if not in_view:
            self.left_out += 1
        head_at = len(self.out)
        if in_view:
            self.out.extend(fields)
            self.out.append(b"\r\n")
        if boundary and depth < MAX_DEPTH:
            self.multipart(boundary.encode("ascii", "surrogateescape"), depth, in_view)
            return
        readable = ctype.startswith(("text/", "message/")) or (top and not attachment)
        self.leaf(encoding, readable, in_view, head_at + len(fields))

    def multipart(self, boundary: bytes, depth: int, in_view: bool) -> None:
        self.boundaries.append(b"--" + boundary)
        mine = len(self.boundaries) - 1
        # The preamble: kept like text (a multipart whose boundary never comes is read as text).
        self.leaf("", True, in_view, None)
        while True:
            item = self.piece()
            if item is None:
                break
            found = self.boundary_of(*item)
            if found is None:
                continue  # the epilogue
            level, closing = found
            if level < mine:  # an enclosing part ends: so does this one
                self.push_back(item)
                break
            if level == mine and closing:
                if in_view:
                    self.out.append(item[0])
                self.skip_epilogue(mine)
                break
            if in_view:
                self.out.append(item[0])
            self.entity(depth + 1, False, in_view)
        del self.boundaries[mine:]

    def skip_epilogue(self, mine: int) -> None:
        while True:
            item = self.piece()
            if item is None:
                return
            found = self.boundary_of(*item)
            if found is not None and found[0] < mine:
                self.push_back(item)
                return

    def body_chunks(self) -> Iterator[bytes]:
        """The rest of a body, a block at a time (a body is looked at line by line only where a
        line starts with "--"), leaving the file at the next boundary line, or at its end."""
        if self._pushed is not None:
            if self.boundary_of(*self._pushed) is not None:
                return
            pushed, self._pushed = self._pushed, None
            yield pushed[0]
        while True:
            position = self.file.tell()
            block = self.file.read(_BLOCK_BYTES)
            if not block:
                return
            end = block.rfind(b"\n") + 1
            region = block if len(block) < _BLOCK_BYTES or not end else block[:end]
            starts = [0] if self.at_line_start else []
            for offset in starts + [match.start() + 1 for match in _LINE_OF_DASHES.finditer(region)]:
                line_end = region.find(b"\n", offset) + 1 or len(region)
                if self.boundary_of(region[offset:line_end], True) is not None:
                    self.file.seek(position + offset)
                    self.at_line_start = True
                    if offset:
                        yield region[:offset]
                    return
            self.file.seek(position + len(region))
            self.at_line_start = region.endswith((b"\n", b"\r"))
            yield region

    def leaf(self, encoding: str, readable: bool, in_view: bool, marker_at: int | None) -> None:
        """A body up to the next boundary: kept while the bounds allow, measured throughout."""
        measure = _Measure(encoding)
        limit = self.room if readable else min(self.room, SMALL_PART_BYTES)
        kept: list[bytes] = []
        size = 0
        cut = False
        for chunk in self.body_chunks():
            measure.feed(chunk, chunk.endswith((b"\n", b"\r")))
            if cut or not in_view:
                continue
            if size + len(chunk) > limit:
                cut = True
                if readable and size < limit:
                    part = chunk[: limit - size]
                    line_end = part.rfind(b"\n") + 1  # cut at a line end when there is one
                    part = part[:line_end] if line_end else part + b"\r\n"
                    kept.append(part)
                    size += len(part)
                continue
            kept.append(chunk)
            size += len(chunk)
        if not in_view:
            return
        if cut and not readable:
            kept, size = [], 0
        self.out.extend(kept)
        self.room -= size
        if cut and marker_at is not None:
            key = f"{self.nonce}-{len(self.measured)}"
            self.measured[key] = measure.result()
            self.out[marker_at] = f"{_CUT_HEADER}: {key}\r\n".encode("ascii") + self.out[marker_at]
            self.text_cut = self.text_cut or readable
        elif cut:
            self.text_cut = True


_LINE_OF_DASHES = re.compile(rb"\n--")


def build_view(file: BinaryIO) -> View:
    """The bounded view of the message in `file` (read from its start)."""
    file.seek(0)
    scanner = _Scanner(file, secrets.token_hex(8))
    scanner.entity(0, True)
    while scanner.piece() is not None:  # a stray closing boundary of an outer part: nothing more to keep
        pass
    return View(b"".join(scanner.out), scanner.measured, scanner.text_cut, scanner.left_out, scanner.header_cut)


def measured_part(view: View):
    """For `bodies._read_body`: a part's (size, SHA-256) when the view cut it, else None."""

    def measure(part: Message) -> tuple[int, str] | None:
        key = part.get(_CUT_HEADER)
        return view.measured.get(str(key)) if key is not None else None

    return measure


def file_sha256(file: BinaryIO) -> str:
    file.seek(0)
    digest = hashlib.sha256()
    for piece in iter(lambda: file.read(PIECE_BYTES), b""):
        digest.update(piece)
    return digest.hexdigest()
