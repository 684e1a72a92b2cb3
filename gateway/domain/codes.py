"""Outcome codes of SPEC §5: the internal vocabulary that http/errors.py maps to the wire."""

from __future__ import annotations

from enum import StrEnum


class ResultCode(StrEnum):
    """Every outcome a terminal can be told; the value is the wire `err_code` (SPEC §5)."""

    OK = "OK"
    # issue 11 item 2 (client certificates): the certificate names another institution than the envelope
    CLIENT_CERT_MISMATCH = "CLIENT_CERT_MISMATCH"
    MALFORMED = "MALFORMED"
    TOO_LARGE = "TOO_LARGE"
    UNSUPPORTED_INFNO = "UNSUPPORTED_INFNO"
    NOT_SIGNED_IN = "NOT_SIGNED_IN"
    PSAM_UNKNOWN = "PSAM_UNKNOWN"
    PSAM_REVOKED = "PSAM_REVOKED"
    KEY_UNKNOWN = "KEY_UNKNOWN"
    MAC_INVALID = "MAC_INVALID"
    TAC_INVALID = "TAC_INVALID"
    STALE_REQUEST = "STALE_REQUEST"
    REPLAY = "REPLAY"
    MSGID_CONFLICT = "MSGID_CONFLICT"
    CARD_BLACKLISTED = "CARD_BLACKLISTED"
    CARD_UNKNOWN = "CARD_UNKNOWN"
    CARD_EXPIRED = "CARD_EXPIRED"
    PERSON_NOT_ENTITLED = "PERSON_NOT_ENTITLED"
    PIN_REQUIRED = "PIN_REQUIRED"
    DEFAULT_PIN_LIMIT = "DEFAULT_PIN_LIMIT"
    AMOUNT_MISMATCH = "AMOUNT_MISMATCH"
    ITEM_UNKNOWN = "ITEM_UNKNOWN"
    SETTLEMENT_NOT_FOUND = "SETTLEMENT_NOT_FOUND"
    ALREADY_CANCELLED = "ALREADY_CANCELLED"
    NOT_REVERSIBLE = "NOT_REVERSIBLE"
    CORE_REJECTED = "CORE_REJECTED"
    CORE_UNAVAILABLE = "CORE_UNAVAILABLE"
    CORE_TIMEOUT = "CORE_TIMEOUT"
    RATE_LIMITED = "RATE_LIMITED"
    OVERLOADED = "OVERLOADED"
    INTERNAL = "INTERNAL"
    # issue 12 (outpatient visits, SPEC §6.6)
    VISIT_NOT_FOUND = "VISIT_NOT_FOUND"
    VISIT_STATE = "VISIT_STATE"
    BATCH_SETTLED = "BATCH_SETTLED"
    NO_FEES = "NO_FEES"
    FEE_LINE_DUPLICATE = "FEE_LINE_DUPLICATE"
    FEE_LINE_UNKNOWN = "FEE_LINE_UNKNOWN"


# (infcode, HTTP status) per code: the only such table (SPEC §5).
WIRE: dict[ResultCode, tuple[int, int]] = {
    ResultCode.OK: (0, 200),
    ResultCode.CLIENT_CERT_MISMATCH: (-2, 403),  # issue 11 item 2
    ResultCode.MALFORMED: (-2, 400),
    ResultCode.TOO_LARGE: (-2, 413),
    ResultCode.UNSUPPORTED_INFNO: (-2, 200),
    ResultCode.NOT_SIGNED_IN: (-2, 200),
    ResultCode.PSAM_UNKNOWN: (-2, 200),
    ResultCode.PSAM_REVOKED: (-2, 200),
    ResultCode.KEY_UNKNOWN: (-2, 200),
    ResultCode.MAC_INVALID: (-2, 200),
    ResultCode.TAC_INVALID: (-2, 200),
    ResultCode.STALE_REQUEST: (-2, 200),
    ResultCode.REPLAY: (-2, 200),
    ResultCode.MSGID_CONFLICT: (-2, 200),
    ResultCode.CARD_BLACKLISTED: (-2, 200),
    ResultCode.CARD_UNKNOWN: (-2, 200),
    ResultCode.CARD_EXPIRED: (-2, 200),
    ResultCode.PERSON_NOT_ENTITLED: (-2, 200),
    ResultCode.PIN_REQUIRED: (-2, 200),
    ResultCode.DEFAULT_PIN_LIMIT: (-2, 200),
    ResultCode.AMOUNT_MISMATCH: (-2, 200),
    ResultCode.ITEM_UNKNOWN: (-2, 200),
    ResultCode.SETTLEMENT_NOT_FOUND: (-2, 200),
    ResultCode.ALREADY_CANCELLED: (-2, 200),
    ResultCode.NOT_REVERSIBLE: (-2, 200),
    ResultCode.CORE_REJECTED: (-2, 200),
    ResultCode.CORE_UNAVAILABLE: (-1, 200),
    ResultCode.CORE_TIMEOUT: (-1, 200),
    ResultCode.RATE_LIMITED: (-1, 429),
    ResultCode.OVERLOADED: (-1, 503),
    ResultCode.INTERNAL: (-1, 500),
    # issue 12 (outpatient visits, SPEC §6.6)
    ResultCode.VISIT_NOT_FOUND: (-2, 200),
    ResultCode.VISIT_STATE: (-2, 200),
    ResultCode.BATCH_SETTLED: (-2, 200),
    ResultCode.NO_FEES: (-2, 200),
    ResultCode.FEE_LINE_DUPLICATE: (-2, 200),
    ResultCode.FEE_LINE_UNKNOWN: (-2, 200),
}


def infcode_of(code: ResultCode) -> int:
    """The envelope's `infcode` for an outcome."""
    return WIRE[code][0]


def http_status_of(code: ResultCode) -> int:
    """The HTTP status for an outcome."""
    return WIRE[code][1]
