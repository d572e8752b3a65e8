"""Profiles: built-in ones read-only, custom ones created and changed (roles integrator and admin).
A changed profile applies at once to every camera that uses it."""

# No `from __future__ import annotations`: FastAPI must see the route-local Annotated dependencies.
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends

from ...services.container import Services
from ...services.keys import Principal, Role
from ..auth import requires
from ..schemas import ProfileName, ProfileOut


def profile_routes(services: Services) -> APIRouter:
    router = APIRouter(prefix="/v1/profiles", tags=["profiles"])
    Reader = Annotated[Principal, Depends(requires(services.keys, Role.INTEGRATOR, Role.AUDITOR))]
    Writer = Annotated[Principal, Depends(requires(services.keys, Role.INTEGRATOR))]

    @router.get("")
    def list_profiles(who: Reader) -> list[ProfileOut]:
        return [ProfileOut(**p.model_dump(), builtin=b) for p, b in services.profiles.all()]

    @router.get("/{name}")
    def get_profile(name: ProfileName, who: Reader) -> ProfileOut:
        profile = services.profiles.get(name)
        builtin = any(b and p.name == name for p, b in services.profiles.all())
        return ProfileOut(**profile.model_dump(), builtin=builtin)

    @router.post("", status_code=201)
    def create_profile(
        definition: Annotated[dict[str, Any], Body(description="a profile, as in a profile YAML file")],
        who: Writer,
    ) -> ProfileOut:
        return ProfileOut(**services.profiles.create(definition, who.actor).model_dump(), builtin=False)

    @router.patch("/{name}")
    def change_profile(
        name: ProfileName,
        changes: Annotated[dict[str, Any], Body(description="top-level fields to replace")],
        who: Writer,
    ) -> ProfileOut:
        profile = services.profiles.update(name, changes, who.actor)
        services.cameras.apply_profile(name)
        return ProfileOut(**profile.model_dump(), builtin=False)

    return router
