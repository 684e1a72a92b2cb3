"""Seals and opens the journal's request and response bodies with the data keys (issue 11 item 9): the envelope
and the row binding are `gateway.domain.sealed`; the keys come through the `DataKeys` port."""

from __future__ import annotations

from gateway.domain.sealed import REQUEST, RESPONSE, open_sealed, row_ad, seal
from gateway.ports.datakeys import DataKeys


class JournalSealing:
    """AES-256-GCM of one row's bodies, each bound to (fixmedins_code, msgid) and to which body it is."""

    __slots__ = ("keys",)

    def __init__(self, keys: DataKeys) -> None:
        self.keys = keys

    def seal(self, kind: str, fixmedins_code: str, msgid: str, body: bytes) -> tuple[int, bytes]:
        """(key version, envelope) of a body under the current key."""
        version = self.keys.current_version
        aead = self.keys.cipher(version)
        assert aead is not None, "the current data key is held (DataKeyRing checks it)"
        return version, seal(version, aead, body, row_ad(kind, fixmedins_code, msgid))

    def seal_request(self, fixmedins_code: str, msgid: str, request_json: str) -> tuple[int, bytes]:
        """(key version, envelope) of a claim's canonical request."""
        return self.seal(REQUEST, fixmedins_code, msgid, request_json.encode())

    def seal_response(self, fixmedins_code: str, msgid: str, response: bytes) -> bytes:
        """The envelope of the exact bytes answered."""
        return self.seal(RESPONSE, fixmedins_code, msgid, response)[1]

    def open_request(self, fixmedins_code: str, msgid: str, blob: bytes) -> str:
        """The canonical request of a sealed row.

        Raises:
            UnreadableRecord: see `open_sealed`.
        """
        ad = row_ad(REQUEST, fixmedins_code, msgid)
        return open_sealed(self.keys.cipher, blob, ad, what=f"journal request of msgid {msgid}").decode()

    def open_response(self, fixmedins_code: str, msgid: str, blob: bytes) -> bytes:
        """The exact bytes answered, byte-identical.

        Raises:
            UnreadableRecord: see `open_sealed`.
        """
        ad = row_ad(RESPONSE, fixmedins_code, msgid)
        return open_sealed(self.keys.cipher, blob, ad, what=f"journal response of msgid {msgid}")
