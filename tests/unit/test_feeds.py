"""SPEC §8.3 feeds, pure: event parsing (JSON and CSV rows), the transition table and the region scope."""

from __future__ import annotations

import csv
from datetime import date
from typing import Any

import pytest

from gateway.domain.feeds import (
    CSV_COLUMNS,
    Accepted,
    CardRecord,
    EventType,
    FeedError,
    FeedEvent,
    FeedState,
    ListChange,
    Rejected,
    decide,
    in_scope,
    parse_event,
    parse_feed_tokens,
)

CITY = "330200"
COUNTY = "330281"
OTHER = "330282"


def sn(region: str = COUNTY, serial: int = 1) -> str:
    """A well-formed card_sn of a region."""
    return f"{region}D156000005{serial:016X}"


def card(region: str = COUNTY, serial: int = 1, **kw: Any) -> CardRecord:
    """A registry card (ACTIVE, DEFAULT PIN) of person P1 unless overridden."""
    fields: dict[str, Any] = {"card_no": "A00000001", "psn_no": "P1", "alg": "SM4", "kv": 1}
    fields.update(kw)
    return CardRecord(sn(region, serial), **fields)


def ev(event: str, seq: int = 1, source: str = COUNTY, **fields: Any) -> FeedEvent:
    """A parsed event from JSON-like fields."""
    return parse_event({"source": source, "source_seq": seq, "event": event, **fields})


def state_with(*cards: CardRecord, listed: dict[str, str] | None = None, persons: dict[str, str] | None = None):
    """A FeedState holding the cards (listed by their status unless ACTIVE) and person entries."""
    st = FeedState()
    for c in cards:
        st.cards[c.card_sn] = c
        if c.status != "ACTIVE":
            st.card_list[c.card_sn] = c.status
        st.person_regions.setdefault(c.psn_no, set()).add(c.card_sn[:6])
    st.card_list.update(listed or {})
    st.person_list.update(persons or {})
    return st


def new_card_fields(serial: int = 2, region: str = COUNTY) -> dict[str, Any]:
    """Fields of a replacement's new card."""
    return {"new_card_sn": sn(region, serial), "card_no": "B00000002", "alg": "SM4", "kv": 2,
            "valid_from": "2026-01-01", "valid_until": "2036-01-01"}  # fmt: skip


class TestParseJson:
    def test_loss_reported_formal(self):
        """A JSON object becomes an event with its typed fields."""
        e = ev("loss_reported", 7, card_sn=sn().lower(), formal=True)
        assert (e.source, e.source_seq, e.event, e.card_sn, e.formal) == (
            COUNTY, 7, EventType.LOSS_REPORTED, sn(), True
        )  # fmt: skip

    def test_issued_defaults_to_default_pin(self):
        """An issued card without pin_mode starts in DEFAULT mode (SPEC §7)."""
        e = ev("issued", card_sn=sn(), psn_no="P1", card_no="a00000001", alg="sm4", kv=1, valid_until="2036-01-01")
        assert e.card == CardRecord(sn(), "A00000001", "P1", "DEFAULT", "ACTIVE", "SM4", 1, None, date(2036, 1, 1))

    def test_replaced_names_new_card(self):
        """A replacement carries the new card's registry fields."""
        e = ev("replaced", card_sn=sn(), pin_mode="PIN", **new_card_fields())
        assert e.card is not None
        assert (e.card.card_sn, e.card.pin_mode, e.card.kv) == (sn(serial=2), "PIN", 2)

    @pytest.mark.parametrize(
        ("record", "field"),
        [
            ({"source_seq": 1, "event": "damaged", "card_sn": sn()}, "source"),
            ({"source": "3302", "source_seq": 1, "event": "damaged", "card_sn": sn()}, "source"),
            ({"source": COUNTY, "event": "damaged", "card_sn": sn()}, "source_seq"),
            ({"source": COUNTY, "source_seq": 0, "event": "damaged", "card_sn": sn()}, "source_seq"),
            ({"source": COUNTY, "source_seq": True, "event": "damaged", "card_sn": sn()}, "source_seq"),
            ({"source": COUNTY, "source_seq": "x1", "event": "damaged", "card_sn": sn()}, "source_seq"),
            ({"source": COUNTY, "source_seq": 1, "event": "exploded", "card_sn": sn()}, "event"),
            ({"source": COUNTY, "source_seq": 1, "card_sn": sn()}, "event"),
            ({"source": COUNTY, "source_seq": 1, "event": "damaged"}, "card_sn"),
            ({"source": COUNTY, "source_seq": 1, "event": "damaged", "card_sn": "1234"}, "card_sn"),
            ({"source": COUNTY, "source_seq": 1, "event": "damaged", "card_sn": sn(), "formal": True}, "formal"),
            ({"source": COUNTY, "source_seq": 1, "event": "loss_reported", "card_sn": sn(), "formal": "maybe"},
             "formal"),
            ({"source": COUNTY, "source_seq": 1, "event": "locked", "card_sn": sn(), "colour": "red"}, "colour"),
            ({"source": COUNTY, "source_seq": 1, "event": "person_suspended", "psn_no": "P1"}, "reason"),
            ({"source": COUNTY, "source_seq": 1, "event": "person_suspended", "psn_no": "P1", "reason": "01"},
             "reason"),
            ({"source": COUNTY, "source_seq": 1, "event": "person_restored", "psn_no": "P-1"}, "psn_no"),
            ({"source": COUNTY, "source_seq": 1, "event": "person_restored", "psn_no": 5}, "psn_no"),
            ({"source": COUNTY, "source_seq": 1, "event": "replaced", "card_sn": sn(), **new_card_fields(1)},
             "new_card_sn"),
            ({"source": COUNTY, "source_seq": 1, "event": "replaced", "card_sn": sn(),
              **{**new_card_fields(), "alg": "DES"}}, "alg"),
            ({"source": COUNTY, "source_seq": 1, "event": "replaced", "card_sn": sn(),
              **{**new_card_fields(), "kv": 999}}, "kv"),
            ({"source": COUNTY, "source_seq": 1, "event": "replaced", "card_sn": sn(),
              **{**new_card_fields(), "valid_from": "2026-13-01"}}, "valid_from"),
            ({"source": COUNTY, "source_seq": 1, "event": "replaced", "card_sn": sn(),
              **{**new_card_fields(), "valid_until": "2020-01-01"}}, "valid_until"),
            ({"source": COUNTY, "source_seq": 1, "event": "issued", "card_sn": sn(), "psn_no": "P1", "alg": "SM4",
              "kv": 1}, "card_no"),
            ({"source": COUNTY, "source_seq": 1, "event": "issued", "card_sn": sn(), "card_no": "A00000001",
              "alg": "SM4", "kv": 1}, "psn_no"),
            ({"source": COUNTY, "source_seq": 1, "event": "issued", "card_sn": sn(), "psn_no": "P1",
              "card_no": "A00000001", "alg": "SM4", "kv": 1, "pin_mode": "NONE"}, "pin_mode"),
            ({"source": COUNTY, "source_seq": 1, "event": "pin_set", "card_sn": sn(), "pin_mode": "PIN"}, "pin_mode"),
        ],
    )  # fmt: skip
    def test_bad_field_is_named(self, record, field):
        """Every bad or misplaced field raises FeedError naming it."""
        with pytest.raises(FeedError) as info:
            parse_event(record)
        assert info.value.field == field
        assert str(info.value).startswith(f"{field}: ")

    def test_default_source(self):
        """An empty source takes the uploader's region."""
        assert (
            parse_event({"source_seq": 1, "event": "damaged", "card_sn": sn()}, default_source=COUNTY).source == COUNTY
        )

    def test_content_hash_ignores_spelling(self):
        """The same meaning hashes the same whatever the input's types and case; another meaning does not."""
        a = ev("loss_reported", card_sn=sn(), formal=True)
        b = parse_event({"event": "loss_reported", "formal": "1", "card_sn": sn().lower(), "source_seq": "1",
                         "source": COUNTY})  # fmt: skip
        c = ev("loss_reported", card_sn=sn(), formal=False)
        assert a.content_hash() == b.content_hash() != c.content_hash()


class TestParseCsv:
    def test_csv_row(self):
        """A CSV row with the documented columns and empty unused cells parses like JSON."""
        line = f"330281,12,replaced,{sn()},,,,,{sn(serial=2)},B00000002,SM4,2,2026-01-01,2036-01-01,PIN"
        row = dict(zip(CSV_COLUMNS, next(csv.reader([line])), strict=True))
        e = parse_event(row)
        assert e.event is EventType.REPLACED
        assert e.source_seq == 12
        assert e.card is not None
        assert e.card.card_sn == sn(serial=2)
        assert e.card.pin_mode == "PIN"

    @pytest.mark.parametrize(("cell", "want"), [("1", True), ("true", True), ("0", False), ("", False)])
    def test_csv_booleans(self, cell, want):
        """Boolean cells are 1/true/yes, 0/false/no or empty."""
        row = dict.fromkeys(CSV_COLUMNS, "") | {"source": CITY, "source_seq": "3", "event": "locked",
                                                "card_sn": sn(), "fraud": cell}  # fmt: skip
        assert parse_event(row).fraud is want


class TestScope:
    @pytest.mark.parametrize(
        ("source", "region", "ok"),
        [(CITY, CITY, True), (CITY, COUNTY, True), (COUNTY, COUNTY, True), (COUNTY, OTHER, False),
         (COUNTY, CITY, False), (CITY, "330100", False), ("110000", "110000", False)],
    )  # fmt: skip
    def test_in_scope(self, source, region, ok):
        """The city touches every region of the city; a county only its own; no one touches another city."""
        assert in_scope(source, region) is ok

    def test_county_card_of_other_region(self):
        """A county's event on a card of another county is refused naming both."""
        d = decide(ev("damaged", source=COUNTY, card_sn=sn(OTHER)), state_with(card(OTHER)))
        assert d == Rejected(f"source {COUNTY} may not change cards of region {OTHER}")

    def test_city_on_county_card(self):
        """The city card centre may change a county's card."""
        assert isinstance(decide(ev("damaged", source=CITY, card_sn=sn()), state_with(card())), Accepted)

    def test_replacement_new_card_in_scope(self):
        """A county may not name a new card of another region."""
        d = decide(ev("replaced", card_sn=sn(), **new_card_fields(region=OTHER)), state_with(card()))
        assert isinstance(d, Rejected)
        assert OTHER in d.reason

    def test_foreign_source(self):
        """A source outside the city is refused."""
        d = decide(ev("damaged", source="110000", card_sn=sn("110000")), state_with(card("110000")))
        assert d == Rejected("source 110000 is not a region of city 330200")

    def test_person_scope(self):
        """A county changes only persons holding a card of its region; the city any person."""
        st = state_with(card(psn_no="P1"))
        assert isinstance(decide(ev("person_suspended", source=COUNTY, psn_no="P1", reason="11"), st), Accepted)
        d = decide(ev("person_suspended", source=OTHER, psn_no="P1", reason="11"), st)
        assert isinstance(d, Rejected)
        assert "holding a card of its region" in d.reason
        assert isinstance(decide(ev("person_suspended", source=CITY, psn_no="P9", reason="12"), st), Accepted)


def listed(reason: str | None) -> CardRecord:
    """The county's card 1 in a state: ACTIVE (None) or listed with a reason."""
    return card(status=reason or "ACTIVE")


def change(op: str, reason: str | None, serial: int = 1) -> ListChange:
    """A card-list change of card `serial`."""
    return ListChange("C", sn(serial=serial), op, reason)  # type: ignore[arg-type]


# (event fields, state reason before, expected: reason after | "noop" | rejection text)
TABLE: list[tuple[dict[str, Any], str | None, str | None]] = [
    ({"event": "loss_reported"}, None, "01"),
    ({"event": "loss_reported", "formal": True}, None, "02"),
    ({"event": "loss_reported", "formal": True}, "01", "02"),
    ({"event": "loss_reported"}, "01", "noop"),
    ({"event": "loss_reported"}, "02", "card is formally reported lost (reason 02)"),
    ({"event": "loss_reported"}, "04", "card is damaged (reason 04)"),
    ({"event": "loss_reported"}, "07", "card is frozen for fraud (reason 07)"),
    ({"event": "loss_revoked"}, "01", "ACTIVE"),
    ({"event": "loss_revoked"}, "02", "ACTIVE"),
    ({"event": "loss_revoked"}, None, "card is not reported lost"),
    ({"event": "loss_revoked"}, "06", "card is not reported lost"),
    ({"event": "damaged"}, None, "04"),
    ({"event": "damaged"}, "04", "noop"),
    ({"event": "damaged"}, "06", "card is locked (reason 06)"),
    ({"event": "withdrawn"}, None, "05"),
    ({"event": "withdrawn"}, "07", "05"),
    ({"event": "locked"}, None, "06"),
    ({"event": "locked", "fraud": True}, None, "07"),
    ({"event": "locked", "fraud": True}, "06", "07"),
    ({"event": "locked", "fraud": True}, "01", "07"),
    ({"event": "locked"}, "06", "noop"),
    ({"event": "locked"}, "07", "card is frozen for fraud (reason 07)"),
    ({"event": "locked"}, "01", "card is reported lost (reason 01)"),
    ({"event": "unlocked"}, "06", "ACTIVE"),
    ({"event": "unlocked"}, "07", "ACTIVE"),
    ({"event": "unlocked"}, None, "card is not locked"),
    ({"event": "unlocked"}, "01", "card is not locked"),
    ({"event": "pin_set"}, "03", "card is closed (replaced) (reason 03)"),
    ({"event": "damaged"}, "05", "card is closed (withdrawn) (reason 05)"),
    ({"event": "loss_revoked"}, "03", "card is closed (replaced) (reason 03)"),
    ({"event": "withdrawn"}, "05", "card is closed (withdrawn) (reason 05)"),
]


class TestCardTransitions:
    @pytest.mark.parametrize(("fields", "before", "after"), TABLE)
    def test_table(self, fields, before, after):
        """Each card event from each state: the new reason and one list change, a no-op, or a rejection."""
        d = decide(ev(card_sn=sn(), **fields), state_with(listed(before)))
        if after == "noop":
            assert d == Accepted()
        elif after == "ACTIVE":
            assert d == Accepted(changes=(change("D", None),))  # a list change only: the registry row stays
        elif after in {"01", "02", "04", "05", "06", "07"}:
            # a card already on the list only changes its reason: 'R', membership unchanged
            assert d == Accepted(changes=(change("A" if before is None else "R", after),))
        else:
            assert d == Rejected(after)

    def test_unknown_card(self):
        """An event on a card missing from the registry is refused."""
        assert decide(ev("damaged", card_sn=sn()), FeedState()) == Rejected("card is not in the registry")

    @pytest.mark.parametrize(("event", "start", "mode"), [("pin_set", "DEFAULT", "PIN"),
                                                          ("default_pin_chosen", "PIN", "DEFAULT")])  # fmt: skip
    def test_pin_modes(self, event, start, mode):
        """PIN set and default PIN chosen switch pin_mode without a list change; again it is a no-op."""
        d = decide(ev(event, card_sn=sn()), state_with(card(pin_mode=start)))
        assert d == Accepted((card(pin_mode=mode),))
        assert decide(ev(event, card_sn=sn()), state_with(card(pin_mode=mode))) == Accepted()

    def test_pin_set_on_listed_card(self):
        """A listed but open card may still change its PIN mode."""
        d = decide(ev("pin_set", card_sn=sn()), state_with(card(status="06")))
        assert d == Accepted((card(status="06", pin_mode="PIN"),))

    def test_registry_status_without_list_row_does_not_count(self):
        """Only the list says a card is refused: a stale registry status is not a listing."""
        st = state_with(card())
        st.cards[sn()] = card(status="01")
        assert decide(ev("loss_revoked", card_sn=sn()), st) == Rejected("card is not reported lost")


ISSUE = {"card_sn": sn(), "psn_no": "P1", "card_no": "A00000001", "alg": "SM4", "kv": 1}


class TestIssued:
    def test_new_card(self):
        """An issued card enters the registry ACTIVE with no list change."""
        assert decide(ev("issued", **ISSUE), FeedState()) == Accepted((card(),))

    def test_same_card_again(self):
        """Issuing a card identical to the registry's is a no-op."""
        assert decide(ev("issued", **ISSUE), state_with(card())) == Accepted()

    def test_different_card(self):
        """Issuing an existing card with other data is refused."""
        d = decide(ev("issued", **{**ISSUE, "card_no": "Z99999999"}), state_with(card()))
        assert d == Rejected("card is already issued")

    def test_listed_ghost(self):
        """A card on the list without a registry row cannot be issued."""
        st = FeedState(card_list={sn(): "07"})
        assert decide(ev("issued", **ISSUE), st) == Rejected(
            "card is on the blacklist without a registry entry (reason 07)"
        )


class TestReplaced:
    def test_replacement(self):
        """The old card is cancelled (03) and the new one activated for the same person, in one decision."""
        d = decide(ev("replaced", card_sn=sn(), **new_card_fields()), state_with(card(pin_mode="PIN")))
        assert isinstance(d, Accepted)
        (new,) = d.cards  # the old card's refusal is its list entry (03); its registry row stays
        assert (new.card_sn, new.status, new.psn_no, new.pin_mode, new.kv) == (
            sn(serial=2),
            "ACTIVE",
            "P1",
            "DEFAULT",
            2,
        )
        assert d.changes == (change("A", "03"),)

    @pytest.mark.parametrize("before", ["01", "02", "04", "06"])
    def test_from_open_states(self, before):
        """A lost, damaged or locked card can be replaced; it was listed, so only its reason changes."""
        d = decide(ev("replaced", card_sn=sn(), **new_card_fields()), state_with(card(status=before)))
        assert isinstance(d, Accepted)
        assert d.changes == (change("R", "03"),)

    def test_fraud_frozen(self):
        """A card frozen for fraud is not replaced."""
        d = decide(ev("replaced", card_sn=sn(), **new_card_fields()), state_with(card(status="07")))
        assert d == Rejected("card is frozen for fraud (reason 07)")

    def test_old_card_missing(self):
        """A replacement of a card not in the registry is refused."""
        assert decide(ev("replaced", card_sn=sn(), **new_card_fields()), FeedState()) == Rejected(
            "card is not in the registry"
        )

    def test_new_card_of_another_person(self):
        """A new card that exists for another person is refused."""
        st = state_with(card(), card(serial=2, psn_no="P2"))
        d = decide(ev("replaced", card_sn=sn(), **new_card_fields()), st)
        assert d == Rejected("new_card_sn belongs to another person")

    def test_psn_no_mismatch(self):
        """A psn_no given with the replacement must be the old card's holder."""
        d = decide(ev("replaced", card_sn=sn(), psn_no="P2", **new_card_fields()), state_with(card()))
        assert d == Rejected("psn_no is not the holder of the card being replaced")

    def test_listed_new_card_is_delisted(self):
        """A new card of the same person that was listed is taken off the list."""
        st = state_with(card(), card(serial=2, status="01"))
        d = decide(ev("replaced", card_sn=sn(), **new_card_fields()), st)
        assert isinstance(d, Accepted)
        assert d.changes == (change("A", "03"), change("D", None, serial=2))

    def test_closed_new_card(self):
        """A withdrawn card cannot become the replacement."""
        st = state_with(card(), card(serial=2, status="05"))
        d = decide(ev("replaced", card_sn=sn(), **new_card_fields()), st)
        assert d == Rejected("new_card_sn is closed (reason 05)")

    def test_replaced_twice(self):
        """Once replaced, the old card is closed: a second replacement is refused."""
        st = state_with(card())
        d = decide(ev("replaced", card_sn=sn(), **new_card_fields()), st)
        assert isinstance(d, Accepted)
        st.apply(d)
        again = decide(ev("replaced", 2, card_sn=sn(), **new_card_fields(3)), st)
        assert again == Rejected("card is closed (replaced) (reason 03)")


class TestPersons:
    def test_suspend_and_restore(self):
        """Suspension lists the person with its reason; restore delists; a changed reason is a new A."""
        st = state_with(card())
        d = decide(ev("person_suspended", source=CITY, psn_no="P1", reason="11"), st)
        assert d == Accepted(changes=(ListChange("P", "P1", "A", "11"),))
        st.apply(d)
        assert decide(ev("person_suspended", source=CITY, psn_no="P1", reason="11"), st) == Accepted()
        assert decide(ev("person_suspended", source=CITY, psn_no="P1", reason="12"), st) == Accepted(
            changes=(ListChange("P", "P1", "R", "12"),)
        )
        assert decide(ev("person_restored", source=CITY, psn_no="P1"), st) == Accepted(
            changes=(ListChange("P", "P1", "D", None),)
        )

    def test_restore_not_suspended(self):
        """Restoring a person who is not listed is refused."""
        assert decide(ev("person_restored", source=CITY, psn_no="P1"), FeedState()) == Rejected(
            "person is not suspended"
        )


class TestFeedState:
    def test_apply_is_seen_by_next_event(self):
        """Later events of a batch see earlier events' effects."""
        st = state_with(card())
        st.apply(decide(ev("loss_reported", card_sn=sn()), st))  # type: ignore[arg-type]
        assert st.card_reason(sn()) == "01"
        assert decide(ev("loss_revoked", 2, card_sn=sn()), st) == Accepted(changes=(change("D", None),))


class TestFeedTokens:
    def test_parse(self):
        """REGION=TOKEN pairs become a token → region map."""
        assert parse_feed_tokens(" 330200=tokenAAAA , 330281=tokenBBBB,") == {
            "tokenAAAA": "330200",
            "tokenBBBB": "330281",
        }
        assert parse_feed_tokens(None) == {}

    @pytest.mark.parametrize("text", ["330200", "3302=tokenAAAA", "330200=short", "330200=tokenAAAA,330281=tokenAAAA"])
    def test_bad(self, text):
        """Malformed entries or a repeated token are a configuration error."""
        with pytest.raises(ValueError, match="feed_tokens"):
            parse_feed_tokens(text)
