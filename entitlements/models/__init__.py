"""Who has access to what: identities, applications, accounts, entitlements and grants.

Every model keeps django-simple-history so that "who held entitlement E on date D" and "what did identity I
hold on date D" can be answered. Fields that change on every pull (``last_used_at``, ``last_pulled_at``) are kept
out of history: they would add a history row per grant per pull without telling an auditor anything.
"""

from entitlements.models.access import Account, Application, Entitlement, FinancialProcess, Grant
from entitlements.models.connectors import (
    Connector,
    ConnectorRun,
    ConnectorSecret,
    ConnectorThresholdChange,
)
from entitlements.models.identities import Identity

__all__ = [
    "Account",
    "Application",
    "Connector",
    "ConnectorRun",
    "ConnectorSecret",
    "ConnectorThresholdChange",
    "Entitlement",
    "FinancialProcess",
    "Grant",
    "Identity",
]
