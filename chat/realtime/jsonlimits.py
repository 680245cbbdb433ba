"""JSON with a nesting depth limit, for anything that parses JSON from outside (the REST API's
parser; the websocket consumers' frames).

Python's json module recurses once per level: "[" * 16000 + "]" * 16000 (32 kB) makes it raise
RecursionError, which escapes the `except ValueError` every caller has, so the API answered an
HTML 500 and a socket closed with 1011. Here the raw text is measured first, without recursion
and without a Python-level loop over its characters:

- fewer opening brackets than the limit (nearly every real payload): two `count` calls, done;
- else escape sequences are cut (`\\"` must not end a string), the text is split at its quotes
  and only the parts outside strings are kept (brackets inside strings do not nest), everything
  but brackets is deleted (`bytes.translate`), and the running depth is the maximum of the
  running sum of +1/-1 (`accumulate` over a signed byte array, in C).

Where the text is not valid JSON this still gives a number, and json.loads then refuses the text
at its first invalid character, before it has nested any deeper than measured. Linear in the
text's length whatever it holds (an unterminated string, runs of escaped quotes). The cost
against json.loads and orjson.loads is measured in docs/security.md.
"""

import json
import re
from array import array
from itertools import accumulate
from typing import Any

_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1, +1, -1, -1 as signed bytes


class JsonTooDeep(ValueError):
    """A ValueError, so that callers which refuse invalid JSON refuse this too."""

    def __init__(self, max_depth: int) -> None:
        super().__init__(f"JSON nested deeper than {max_depth} levels")
        self.max_depth = max_depth


def nesting_depth(text: str | bytes) -> int:
    """How deeply the arrays and objects of `text` (bytes: UTF-8) nest (0 for a scalar)."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    if b"\\" in data:
        data = _ESCAPE.sub(b"", data)
    outside_strings = b"".join(data.split(b'"')[::2])
    brackets = outside_strings.translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    return max(0, max(accumulate(array("b", brackets.translate(_STEPS)))))


def exceeds_depth(text: str | bytes, max_depth: int) -> bool:
    if isinstance(text, str):
        openers = text.count("[") + text.count("{")
    else:
        openers = text.count(b"[") + text.count(b"{")
    if openers <= max_depth:
        return False  # cannot nest deeper than it has opening brackets
    return nesting_depth(text) > max_depth


def loads(text: str | bytes, *, max_depth: int, **kwargs: Any) -> Any:
    """json.loads, refusing text nested deeper than `max_depth` with JsonTooDeep. Bytes must be
    UTF-8 (a UnicodeDecodeError, a ValueError too, otherwise)."""
    if not isinstance(text, str):
        text = bytes(text).decode("utf-8")
    if exceeds_depth(text, max_depth):
        raise JsonTooDeep(max_depth)
    return json.loads(text, **kwargs)
