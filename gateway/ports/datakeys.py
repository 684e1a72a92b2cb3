"""The journal's data keys (issue 11 item 9): the key store today (`gateway.domain.sealed.DataKeyRing`), an HSM
later."""

from __future__ import annotations

from typing import Protocol

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class DataKeys(Protocol):
    """The current data key seals; any version still held opens."""

    @property
    def current_version(self) -> int: ...

    def cipher(self, version: int) -> AESGCM | None:
        """The AEAD of key `version`, or None when the store does not hold it."""
        ...
