"""The journal chain's canonical JSON takes a fast path for strings that need no escaping; it must give the
bytes json.dumps(ensure_ascii=False) gives for every string, or chains sealed before would stop verifying."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from adapters.pg_journal_chain import _json


@given(st.text())
def test_strings_encode_as_json_dumps_does(s: str) -> None:
    assert _json(s) == json.dumps(s, ensure_ascii=False)
    assert _json({s: [s]}) == "{" + json.dumps(s, ensure_ascii=False) + ":[" + json.dumps(s, ensure_ascii=False) + "]}"


def test_every_ascii_character() -> None:
    for i in range(128):
        c = chr(i)
        assert _json(f"a{c}b") == json.dumps(f"a{c}b", ensure_ascii=False), i
