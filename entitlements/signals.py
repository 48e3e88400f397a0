"""Signals other apps hook into."""

from django.dispatch import Signal

# Sent after a connector run's transaction commits: ``run`` (ConnectorRun), ``identity_ids`` (sorted list of
# identities whose grants changed) and ``application_ids`` (the applications the run was the full truth for,
# whose orphan accounts may have changed too). The SoD engine re-checks just these.
access_changed = Signal()
