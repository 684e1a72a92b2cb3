"""The journal chain's canonical JSON: the fast encoder (orjson with number fragments) must give exactly the
bytes of the definition (`canonical_json_reference`) for every document, or chains sealed before would stop
verifying; and the definition's fast path for plain strings must match json.dumps(ensure_ascii=False)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from adapters.journal_codec import _json, canonical_json, canonical_json_reference

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.decimals(allow_nan=False, allow_infinity=False, places=2)
    | st.text()
)
_docs = st.recursive(_scalars, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(), kids, max_size=4))


@given(_docs, st.booleans())
def test_fast_encoder_is_byte_identical_to_the_definition(doc: object, ascii_only: bool) -> None:
    text = json.dumps(doc, default=lambda d: float(d), ensure_ascii=ascii_only)
    assert canonical_json(text) == canonical_json_reference(text)


def test_numbers_keep_their_stored_form() -> None:
    text = '{"b": 1.50, "a": [10, -0.0, 1e2, 12345678901234567890123]}'
    assert canonical_json(text) == b'{"a":[10,-0.0,100,12345678901234567890123],"b":1.50}'
    assert canonical_json(text) == canonical_json_reference(text)


@given(st.text())
def test_strings_encode_as_json_dumps_does(s: str) -> None:
    assert _json(s) == json.dumps(s, ensure_ascii=False)


def test_every_ascii_character() -> None:
    for i in range(128):
        text = json.dumps({f"k{chr(i)}": f"a{chr(i)}b"})
        assert canonical_json(text) == canonical_json_reference(text), i
