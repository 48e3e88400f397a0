"""The connector interface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator

from entitlements.connectors.problems import ProblemLog


class BaseConnector(ABC):
    """Yields normalised records for one pull. Problems go to ``log``; the pipeline refuses if there are any.

    ``kind`` is "identities" or "access". Implementations: files.py (CSV/XLSX); SCIM, LDAP and cloud APIs
    implement the same two methods.
    """

    kind: str

    def __init__(self, *, log: ProblemLog):
        self.log = log

    @abstractmethod
    def records(self) -> Iterator:
        """Yield IdentityRecord or AccessRecord tuples, streaming (never the whole source in memory)."""

    def applications(self) -> set[int]:
        """For access connectors: the applications this pull is the full truth for."""
        return set()
