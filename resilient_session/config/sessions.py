"""Sessions from an integrations file: one :class:`~resilient_session.ResilientSession` per integration."""

from __future__ import annotations

from ..session import ResilientSession
from .load import Source, integration, load_ready

__all__ = ["load_integrations", "session_from_config"]


def load_integrations(source: Source) -> dict[str, ResilientSession]:
    """One :class:`~resilient_session.ResilientSession` per integration of *source*, keyed by name.

    :raises InvalidConfigError: the file is invalid, or environment variables it names are unset (all
        of them are listed).
    """
    return {name: ResilientSession.from_integration(config) for name, config in load_ready(source).items()}


def session_from_config(
    source: Source, name: str | None = None, cls: type[ResilientSession] | None = None
) -> ResilientSession:
    """The session of integration *name*; without a name the file must hold exactly one integration."""
    return (ResilientSession if cls is None else cls).from_integration(integration(source, name))
