"""Which protocol version a socket is spoken to in: `v` in its address (docs/protocol.md)."""

import pytest

from chat.consumers.protocol import _protocol


@pytest.mark.parametrize(
    ("query", "version"),
    [
        (b"v=3", 3),
        (b"token=t&since=4&v=3", 3),
        (b"v=17", 3),  # a newer page: the newest this server speaks
        (b"v=99999999999999999999999", 3),
        (b"", 2),  # a page from before version 3
        (b"v=2", 2),
        (b"v=x", 2),
        (b"v=-3", 2),
        (b"v=%C2%B2", 2),  # a superscript two: a digit to str.isdigit, not a number
    ],
)
def test_the_version_comes_from_the_address_and_never_raises(query, version):
    assert _protocol({"query_string": query}) == version
