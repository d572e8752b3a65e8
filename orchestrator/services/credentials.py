"""Credentials inside camera source URLs are encrypted at rest (Fernet, a key derived from the server
secret); what is shown, returned or logged is the redacted URL (`core.urls.redact`)."""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken


class CredentialVault:
    def __init__(self, secret: bytes) -> None:
        key = hashlib.sha256(b"cityveil source credentials\0" + secret).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, url: str) -> str:
        return self._fernet.encrypt(url.encode()).decode()

    def open(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise ValueError("a stored source URL cannot be decrypted: was the secret key changed?") from None
