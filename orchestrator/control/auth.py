"""Bearer API keys and least privilege: each route names the roles that may call it (admin may call all)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..services.keys import KeyStore, Principal, Role

_bearer = HTTPBearer(auto_error=False, description="an API key from `cityveil keys create --role ROLE`")


def requires(keys: KeyStore, *roles: Role) -> Callable[..., Principal]:
    allowed = {Role.ADMIN, *roles}

    def principal(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        if credentials is None:
            raise HTTPException(
                401, "an API key is required: Authorization: Bearer KEY", {"WWW-Authenticate": "Bearer"}
            )
        found = keys.authenticate(credentials.credentials)
        if found is None:
            raise HTTPException(
                401, "the API key is not valid or was revoked", {"WWW-Authenticate": "Bearer"}
            )
        if found.role not in allowed:
            names = ", ".join(sorted(r.value for r in allowed))
            raise HTTPException(403, f"role {found.role.value!r} may not do this; it needs one of: {names}")
        return found

    return principal
