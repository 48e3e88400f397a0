"""Signals other apps hook into."""

from django.dispatch import Signal

# Sent after a connector run's transaction commits: ``run`` (ConnectorRun) and ``identity_ids`` (sorted list of
# identities whose grants changed). The SoD engine re-checks just these identities.
access_changed = Signal()
