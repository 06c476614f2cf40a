"""Which lines of a primary-care file are JSON objects: polars screens the block, json.loads has the last word.

``_json_objects`` must say exactly what ``json.loads`` says of every line (the reader's rule), only
faster: a line polars takes for an object must be one, and one polars rejects is asked again.
"""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.io.extract import _is_json_object, _json_objects

TRICKY = [
    b'{"id": 1, "name": {"family": "\xc3\x85str\xc3\xb6m"}}',
    b'{"a": NaN}',  # json.loads takes it, polars does not
    b'{"a": Infinity}',
    b'{"a": 1e999}',
    b'\xef\xbb\xbf{"a": 1}',  # a byte-order mark
    b'{"a": "\\ud800"}',  # a lone surrogate escape
    b'{"a":1,"a":2}',
    b'  {"a": 1}  ',
    b"{}",
    b'"{not an object"',  # a string that starts with a brace
    b"[1, 2]",
    b"null",
    b"42",
    b'{"a": 01}',
    b'{"a": "tab\tin"}',
    b'{"a": tru}',
    b'{"a": "x"} {"b": 1}',
    b'{"a": "x"},',
    b'{"a": 1}\x00',
    b"",
    b'\xc2\xa0{"a": 1}',  # a no-break space before the object
    b"\x0b{}",
    b"[" * 5000 + b"]" * 5000,
]


def _truth(lines: list[bytes]) -> list[bool]:
    return [_is_json_object(b) for b in lines]


def test_tricky_lines_are_judged_as_json_loads_judges_them() -> None:
    assert _json_objects(TRICKY) == _truth(TRICKY)
    assert _json_objects(TRICKY) == [
        True, True, True, True, True, True, True, True, True,
        False, False, False, False, False, False, False, False, False, False, False, False, False, False,
    ]  # fmt: skip


def test_a_line_of_bad_bytes_is_judged_alone() -> None:
    lines = [b'{"a": "\xff"}', b'{"a": "ok"}', b'{"a": "\xc3\xa5"}', b"\x81{}"]
    assert _json_objects(lines) == _truth(lines) == [False, True, True, False]


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
_line = st.one_of(
    _json.map(lambda v: json.dumps(v, ensure_ascii=False).encode()),
    st.dictionaries(st.text(max_size=5), _json, max_size=4).map(lambda v: json.dumps(v, ensure_ascii=False).encode()),
    st.binary(max_size=30),
    st.tuples(st.dictionaries(st.text(max_size=5), _json, max_size=3), st.integers(0, 40), st.binary(max_size=2)).map(
        lambda t: (lambda s: s[: t[1]] + t[2] + s[t[1] :])(json.dumps(t[0]).encode())  # a byte or two slipped in
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_line.filter(lambda b: b"\n" not in b), min_size=1, max_size=12))
def test_any_block_is_judged_as_json_loads_judges_it(lines: list[bytes]) -> None:
    assert _json_objects(lines) == _truth(lines)
