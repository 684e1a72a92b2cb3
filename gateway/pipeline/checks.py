"""The checks before a flow runs: registry and sign-in session, then for card-bearing requests the blacklists
(this process's cache, Redis, or the lists of record), the card's registry row and its holder (SPEC §5, §8)."""

from __future__ import annotations

import logging

from gateway.domain.codes import ResultCode
from gateway.domain.envelope import Envelope
from gateway.domain.errors import Declined, DependencyUnavailable
from gateway.pipeline.context import Deps, Txn

log = logging.getLogger("onecard.txn")


async def registry_and_session(d: Deps, txn: Txn, env: Envelope) -> None:
    """The institution, its PSAM and (but for sign-in) the sign-in session (SPEC §5 order)."""
    store = d.registry
    inst = await store.institution(env.fixmedins_code)
    if inst is None:
        raise Declined(ResultCode.PSAM_UNKNOWN, f"institution {env.fixmedins_code} is not registered")
    txn.institution = inst
    psam = await store.psam(env.safe.psam_no)
    if psam is None or psam.fixmedins_code != env.fixmedins_code:
        raise Declined(ResultCode.PSAM_UNKNOWN, f"PSAM {env.safe.psam_no} is not registered to {env.fixmedins_code}")
    if psam.status != "ACTIVE":
        raise Declined(ResultCode.PSAM_REVOKED, f"PSAM {env.safe.psam_no} is revoked")
    if not env.tx.needs_session:
        return
    if env.sign_no is None:
        raise Declined(ResultCode.NOT_SIGNED_IN, "sign_no is required: sign in with 9001 first")
    sess = await store.session(env.sign_no)
    if sess is None:
        raise Declined(ResultCode.NOT_SIGNED_IN, "sign_no is unknown: sign in with 9001")
    if sess.psam_no != env.safe.psam_no or sess.fixmedins_code != env.fixmedins_code:
        raise Declined(ResultCode.NOT_SIGNED_IN, "sign_no belongs to another PSAM or institution")
    if sess.signed_out:
        raise Declined(ResultCode.NOT_SIGNED_IN, "sign_no was signed out: sign in again")
    if sess.expires_at <= txn.received:
        raise Declined(ResultCode.NOT_SIGNED_IN, "sign_no has expired: sign in again")


async def lists(d: Deps, card_sn: str | None, psn_no: str | None) -> tuple[str, str]:
    """Blacklist reasons ('' = clear): from this process's cache when it can prove a key clear, else one
    Redis lookup, else (Redis empty, failing or stalled) the lists of record in PostgreSQL."""
    bl = d.blacklist
    card_q = None if card_sn is None or bl.card_clear(card_sn) else card_sn  # None: card-less (2201)
    person_q = None if psn_no is None or bl.person_clear(psn_no) else psn_no
    m = d.metrics
    if card_q is None and person_q is None:
        m.blacklist_lookup("local")
        return "", ""
    try:
        got = await d.lists.reasons(card_q, person_q)
    except DependencyUnavailable as exc:
        log.info("blacklist lookup from PostgreSQL: %s", exc)
        got = None
    else:
        if got is None:
            m.blacklist_unloaded()
    if got is None:
        m.blacklist_lookup("postgres")
        return await d.lists_of_record.list_reasons(card_q, person_q)
    m.blacklist_lookup("redis")
    return got


async def card_checks(d: Deps, txn: Txn, env: Envelope) -> None:
    """Replay, blacklist (card, then person), card registry and validity: SPEC §5 order."""
    assert env.safe.card_sn is not None
    card = txn.card_row  # read with the claim
    # The lists (PostgreSQL of record, Redis and this process's cache) are the one truth on refusals;
    # the registry row says who the card belongs to, its PIN mode and validity.
    card_reason, person_reason = await lists(d, env.safe.card_sn, card.psn_no if card else None)
    txn.trace.append("lists")
    if card_reason:
        raise Declined(
            ResultCode.CARD_BLACKLISTED,
            f"card is on the blacklist (reason {card_reason})",
            {"reason": card_reason},
        )
    if card is None:
        raise Declined(ResultCode.CARD_UNKNOWN, "card is not in the registry")
    today = txn.received.date()
    if (card.valid_until and card.valid_until < today) or (card.valid_from and card.valid_from > today):
        raise Declined(ResultCode.CARD_EXPIRED, f"card is valid until {card.valid_until}")
    # Every card-bearing input names the card's number, and most the card holder (SPEC §6).
    card_no, psn_no = getattr(txn.inp, "card_no", None), getattr(txn.inp, "psn_no", None)
    if card_no is not None and card_no.upper() != card.card_no.upper():
        raise Declined(ResultCode.MALFORMED, "input.data.mdtrt_cert_no: does not match the card's number")
    if psn_no is not None and psn_no != card.psn_no:
        raise Declined(ResultCode.MALFORMED, "input.data.psn_no: is not the card holder")
    txn.person_reason = person_reason
    if person_reason and env.tx.refuses_listed_person:
        raise Declined(
            ResultCode.PERSON_NOT_ENTITLED,
            f"person is not entitled (reason {person_reason})",
            {"reason": person_reason},
        )
    txn.card = card
    txn.trace.append("card")
