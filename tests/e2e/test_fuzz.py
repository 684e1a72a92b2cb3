"""Input the journal cannot store, and a bounded fuzz of mutated envelopes against the running gateway.

A NUL (\\u0000) in any string of a request, value or key, echo-only fields included, is MALFORMED naming that
field, before the claim: nothing is journaled (PostgreSQL refuses NUL in text and jsonb, which used to be a 500).
Then a few hundred mutated envelopes (deterministic seed) of every shape: not one may get a 5xx.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from loadtest.terminal import Built, Terminal
from tests.conftest import Fleet
from tests.e2e.helpers import pg_rows, plain_items

FUZZ_REQUESTS = 600
SEED = 20261201


def string_paths(value: Any) -> Iterator[tuple[Any, ...]]:
    """The path of every string value in a JSON value."""
    return (p for p in all_paths(value) if isinstance(get(value, p), str))


def dotted(path: tuple[Any, ...]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def put(body: Any, path: tuple[Any, ...], value: Any) -> None:
    for p in path[:-1]:
        body = body[p]
    body[path[-1]] = value


def get(body: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        body = body[p]
    return body


async def journal_count(dsn: str) -> int:
    return int((await pg_rows(dsn, "SELECT count(*) AS n FROM journal"))[0]["n"])


@pytest.fixture
async def requests(fleet: Fleet, world: dict[str, Any]) -> dict[str, Built]:
    """One valid request per shape: a settlement with two lines, a sign-in, a person query, a statement."""
    t = await fleet.new_terminal("hospital")
    card, _ = fleet.card(insutype="310", min_balance=20_000)
    a1, a2 = plain_items(world, "A", 2)
    return {
        "2207": t.settle(
            "2207", card, [(a1["med_list_codg"], "2", a1["price"]), (a2["med_list_codg"], "1", a2["price"])]
        ),
        "9001": t.sign_in(),
        "1101": t.person_info(card),
        "2208": t.cancel("2208", "S2026010100000099999999", card.psn_no),
    }


class TestNul:
    async def test_a_nul_in_any_string_is_malformed_naming_it(self, fleet: Fleet, settings, requests):
        """Every string field of four request shapes, NUL at its start, middle or end: HTTP 400 MALFORMED, the
        message names that very field, and the journal gains no row."""
        before = await journal_count(settings.pg_dsn)
        tried = 0
        for name, built in requests.items():
            for n, path in enumerate(string_paths(built.body)):
                body = copy.deepcopy(built.body)
                text = get(body, path)
                at = (0, len(text) // 2, len(text))[n % 3]
                put(body, path, text[:at] + "\x00" + text[at:])
                resp = await fleet.client.post("/fsi/api/rsfComIfsService/callService", data=orjson.dumps(body))
                out = orjson.loads(await resp.read())
                assert resp.status == 400, (name, path, out)
                assert out["err_code"] == "MALFORMED"
                assert out["err_msg"].startswith(f"{dotted(path)}: contains a NUL character"), out["err_msg"]
                tried += 1
        assert tried > 60  # the shapes have that many strings between them
        assert await journal_count(settings.pg_dsn) == before

    async def test_a_nul_in_a_key_or_an_unknown_field(self, fleet: Fleet, settings, requests):
        """Unknown fields are ignored, but stored with the request: a NUL in one, or in a key, is refused too."""
        before = await journal_count(settings.pg_dsn)
        base = requests["9001"].body
        for change, named in (
            (lambda b: b.__setitem__("extra", "a\x00b"), "extra"),
            (lambda b: b["input"].__setitem__("x\x00y", 1), "'input.x\\x00y' (a key)"),
            (
                lambda b: b["input"]["signIn"].__setitem__("notes", ["ok", {"deep": "\x00"}]),
                "input.signIn.notes[1].deep",
            ),
        ):
            body = copy.deepcopy(base)
            change(body)
            resp = await fleet.client.post("/fsi/api/rsfComIfsService/callService", data=orjson.dumps(body))
            out = orjson.loads(await resp.read())
            assert (resp.status, out["err_code"]) == (400, "MALFORMED"), out
            assert out["err_msg"].startswith(named), out["err_msg"]
        assert await journal_count(settings.pg_dsn) == before


def _mutations(rng: random.Random) -> list[Any]:
    return [
        None,
        0,
        -1,
        2**63,
        1.5,
        -0.0,
        1e308,
        True,
        "",
        " ",
        "\x00",
        "a\x00",
        "\u202e\ufeff",
        "é" * 300,
        "0" * 100_00,
        [],
        {},
        [None],
        {"k": "\x00"},
        "2026-13-45 25:61:61",
        "９００１",
        rng.randbytes(8).hex(),
    ]


def mutate(body: dict[str, Any], rng: random.Random) -> bytes:
    """One to three random changes: a value replaced (any JSON type), a key removed or added, or the bytes
    themselves cut or corrupted."""
    for _ in range(rng.randint(1, 3)):
        paths = [p for p in all_paths(body) if p]
        path = rng.choice(paths)
        how = rng.random()
        parent = get(body, path[:-1])
        if how < 0.6:
            put(body, path, rng.choice(_mutations(rng)))
        elif how < 0.8 and isinstance(parent, dict):
            parent.pop(path[-1], None)
        elif isinstance(parent, dict):
            parent[rng.choice(["x", "input", "\x00", "dev_safe_info", "infno"])] = rng.choice(_mutations(rng))
    raw = orjson.dumps(body)
    if rng.random() < 0.1:
        cut = rng.randrange(len(raw))
        raw = raw[:cut] if rng.random() < 0.5 else raw[:cut] + bytes([rng.randrange(256)]) + raw[cut + 1 :]
    return raw


def all_paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(value, dict):
        for k, v in value.items():
            yield from all_paths(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from all_paths(v, (*path, i))


class TestFuzz:
    async def test_mutated_envelopes_never_get_a_5xx(self, fleet: Fleet, world):
        """FUZZ_REQUESTS mutated envelopes, each built fresh (new tseq and atc, valid cryptograms before the
        mutation, so many pass MAC1 and reach the flows): every answer is below 500, in the envelope."""
        rng = random.Random(SEED)
        t: Terminal = await fleet.new_terminal("hospital")
        card, _ = fleet.card(insutype="310", min_balance=50_000)
        a1, a2 = plain_items(world, "A", 2)
        lines = [(a1["med_list_codg"], "1", a1["price"]), (a2["med_list_codg"], "2", a2["price"])]
        shapes = [
            lambda: t.settle("2207", card, lines),
            lambda: t.settle("2206", card, lines),
            lambda: t.person_info(card),
            t.sign_in,
            lambda: t.cancel("2208", "S2026010100000099999999", card.psn_no),
            lambda: t.reverse(card.psn_no, f"{t.fixmedins_code}{'2' * 18}", "2207"),
        ]
        codes: dict[str, int] = {}
        for i in range(FUZZ_REQUESTS):
            raw = mutate(copy.deepcopy(rng.choice(shapes)().body), rng)
            resp = await fleet.client.post("/fsi/api/rsfComIfsService/callService", data=raw)
            body = await resp.read()
            assert resp.status < 500, (i, resp.status, raw[:400], body[:400])
            code = orjson.loads(body)["err_code"] or "OK"
            codes[code] = codes.get(code, 0) + 1
        print(f"fuzz: {FUZZ_REQUESTS} mutated envelopes, answers {dict(sorted(codes.items()))}")
        assert codes.get("MALFORMED", 0) > 0
        assert len(codes) > 3  # the mutations reached more than the envelope parser
