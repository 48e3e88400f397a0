"""Sources a connector pulls from itself (a directory, a database, later cloud APIs).

A source reads a live system and yields rows in the file formats' columns (IDENTITY_COLUMNS and ACCESS_COLUMNS
in files.py, values as text). The connector framework writes those rows to a content-addressed CSV copy and
runs it through the one import pipeline, so a pull is staged, diffed, gated, applied and evidenced exactly as
a file is, and the auditor can open the exact rows a pull read.

Each kind's class is named in ``_SOURCES`` under the connector kind it serves; the framework looks it up with
``source_class(kind)``, validates configurations with ``validate`` and builds one source per pull.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from importlib import import_module


class SourceError(Exception):
    """The source could not be read. The message names what failed and never contains a secret.

    ``transient``: worth retrying with backoff (a timeout, a reset connection, a server that is starting).
    """

    transient = False


class SourceUnreachable(SourceError):
    """The source did not answer or refused the credentials: ``connector_pull`` exits 2, nothing changes."""


class SourceTimeout(SourceUnreachable):
    transient = True


class Source(ABC):
    """One configured source. ``config`` is the validated configuration, ``secrets`` the decrypted secrets by
    name (only ever held in memory for the pull). ``progress(read=n)`` may be called while reading."""

    #: The connector kind this source serves ("ldap", "sql").
    kind: str
    #: Secret names the kind knows (e.g. {"bind_password"}); others are refused by validation.
    secret_names: frozenset[str] = frozenset()

    def __init__(
        self,
        config: Mapping,
        secrets: Mapping[str, str],
        *,
        progress: Callable[..., None] | None = None,
    ):
        self.config = config
        self.secrets = secrets
        self.progress = progress or (lambda **_: None)

    @classmethod
    @abstractmethod
    def validate(cls, config: object, secrets: set[str]) -> list[str]:
        """Every problem with a configuration, each naming its key, e.g. "url: use ldap:// or ldaps://".
        ``secrets`` are the names of the secrets given (values are not needed to validate)."""

    #: What the identities a source yields are the full truth for. "all": every identity the identities feed
    #: holds (a directory, an HR database, Entra ID), so one absent from the pull ends. "non_human": only the
    #: non-human identities this connector itself brought (AWS roles, GitHub Apps): people, and identities of
    #: the identities feed or of other connectors, are neither changed nor ended by its pulls.
    identities_scope: str = "all"

    @property
    def feeds_identities(self) -> bool:
        """Whether this source also yields identities (an LDAP directory may; a database may)."""
        return False

    def identities(self) -> Iterator[dict[str, str]]:
        """Rows keyed by IDENTITY_COLUMNS, streamed. Only called when ``feeds_identities``."""
        return iter(())

    @abstractmethod
    def access(self) -> Iterator[dict[str, str]]:
        """Rows keyed by ACCESS_COLUMNS, streamed; "application" may be left out (the connector's one)."""

    def permissions(self) -> list[str]:
        """What the credentials may read and what is missing, one line each, in words an admin can act on
        (e.g. "missing: AuditLog.Read.All, so last sign-ins are not read"). ``connector_test`` shows them before
        reading; a source whose reading says it all returns nothing."""
        return []

    def close(self) -> None:  # noqa: B027 (optional: most sources have nothing to release)
        """Release connections; called once, also after an error."""


_SOURCES = {
    "ldap": "entitlements.connectors.ldap.LdapSource",
    "sql": "entitlements.connectors.sql.SqlSource",
    "aws": "entitlements.connectors.aws.AwsSource",
    "entra": "entitlements.connectors.entra.EntraSource",
    "okta": "entitlements.connectors.okta.OktaSource",
    "scim": "entitlements.connectors.scim.ScimSource",
    "github": "entitlements.connectors.github.GitHubSource",
}


def source_class(kind: str) -> type[Source] | None:
    """The source class for a connector kind; None for kinds that are files."""
    dotted = _SOURCES.get(kind)
    if dotted is None:
        return None
    module, _, name = dotted.rpartition(".")
    return getattr(import_module(module), name)
