"""JSON with a nesting depth limit, for anything that parses JSON from outside (the REST API's
parser; the websocket consumers' frames).

Python's json module recurses once per level: "[" * 16000 + "]" * 16000 (32 kB) makes it raise
RecursionError, which escapes the `except ValueError` every caller has, so the API answered an
HTML 500 and a socket closed with 1011. Here the raw text is measured first, without recursion
and without decoding anything: strings are cut out (the brackets inside them do not nest), and
the running depth of what is left is computed by C-level iterators (`accumulate`, `max`).
Text with fewer opening brackets than the limit, which is nearly every real payload, is let
through after two `str.count` calls. The measured cost is in docs/security.md.
"""

import json
import re
from itertools import accumulate
from typing import Any

# A JSON string: a quote, then anything but a quote or backslash, or an escaped character. The
# closing quote is optional so that an unterminated string matches to the end of the text in one
# pass, rather than being retried from every later quote (quadratic on '"\"\"\"...').
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"?', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class JsonTooDeep(ValueError):
    """A ValueError, so that callers which refuse invalid JSON refuse this too."""

    def __init__(self, max_depth: int) -> None:
        super().__init__(f"JSON nested deeper than {max_depth} levels")
        self.max_depth = max_depth


def nesting_depth(text: str) -> int:
    """How deeply the arrays and objects of `text` nest (0 for a scalar). Invalid JSON gets a
    number too; parsing it afterwards refuses it."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    if not brackets:
        return 0
    return max(0, max(accumulate(map(_STEP.__getitem__, brackets))))


def exceeds_depth(text: str, max_depth: int) -> bool:
    if text.count("[") + text.count("{") <= max_depth:
        return False  # cannot nest deeper than it has opening brackets
    return nesting_depth(text) > max_depth


def loads(text: str | bytes, *, max_depth: int, **kwargs: Any) -> Any:
    """json.loads, refusing text nested deeper than `max_depth` with JsonTooDeep."""
    if isinstance(text, bytes | bytearray):
        text = text.decode("utf-8")  # a UnicodeDecodeError is a ValueError too
    if exceeds_depth(text, max_depth):
        raise JsonTooDeep(max_depth)
    return json.loads(text, **kwargs)
