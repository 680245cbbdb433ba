"""chat.realtime.jsonlimits: JSON with a nesting depth limit, measured without recursion."""

import json
import sys
import time

import pytest

from chat.realtime.jsonlimits import JsonTooDeep, exceeds_depth, loads, nesting_depth


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("1", 0),
        ('"[[[["', 0),  # brackets inside strings do not nest
        ("[]", 1),
        ('{"a": [1, {"b": []}]}', 4),
        ('["\\"[", ["]"]]', 2),  # an escaped quote does not end the string
        ('["\\\\", [[]]]', 3),  # an escaped backslash does not escape the quote after it
        ("[[[", 3),  # invalid JSON gets a number; parsing refuses it afterwards
        ("]]][[", 0),  # closers first: json.loads fails at the first one, before any depth
    ],
)
def test_nesting_depth(text, depth):
    assert nesting_depth(text) == depth


def test_loads_refuses_past_the_limit_and_parses_up_to_it():
    assert loads("[" * 32 + "]" * 32, max_depth=32) == json.loads("[" * 32 + "]" * 32)
    with pytest.raises(JsonTooDeep) as refused:
        loads("[" * 33 + "]" * 33, max_depth=32)
    assert isinstance(refused.value, ValueError) and str(refused.value).endswith("32 levels")
    assert loads(b'{"type": "ping"}', max_depth=32) == {"type": "ping"}
    with pytest.raises(UnicodeDecodeError):  # a ValueError: refused as invalid JSON is
        loads(b"\xff", max_depth=32)


def test_the_attack_frames_are_refused_without_recursion():
    """The issue's frame, and far deeper ones than the recursion limit, are refused in linear
    time; nothing recurses, so the recursion limit cannot be reached."""
    for depth in (16_000, 12_000, 10 * sys.getrecursionlimit()):
        for opener, closer in (("[", "]"), ("{", "}"), ('{"a":', "}")):
            with pytest.raises(JsonTooDeep):
                loads(opener * depth + "1" + closer * depth, max_depth=32)


def test_adversarial_strings_stay_linear():
    """Unterminated strings and runs of escaped quotes are cut in one pass: 1 MB in well under a
    second (a regex retried from every quote would take minutes)."""
    for text in ('"' + '\\"' * 500_000, '["' + "a" * 1_000_000, "[" * 40 + '"\\' * 400_000):
        began = time.perf_counter()
        exceeds_depth(text, 32)
        assert time.perf_counter() - began < 1.0
