"""Who may do what, as one table: every page, htmx fragment, API endpoint and admin screen, for every role.

Read a row of MATRIX as a sentence: "GET identity carol answers alice 200, rita 404 (Carol is outside her
scope), oscar 200, audrey 200 ...". The personas come from tests/conftest.py; ``audrey_token`` is the auditor
with no session, only ``Authorization: Token <key>`` (tokens open the API and nothing else).

One generic test walks each row, makes the request as every persona, and compares the whole row at once, so a
failure shows exactly which cells differ. Every refused request must also leave the database untouched.
VISIBLE then says which rows each persona sees in each list, through the page, the htmx fragment and the API.
"""

import copy
import datetime
import functools
import json
import re
from urllib.parse import urlparse

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from entitlements.models import (
    Account,
    Application,
    Connector,
    ConnectorRun,
    ConnectorThresholdChange,
    Entitlement,
    Grant,
    Identity,
)
from evidence.models import ChainVerification, EvidenceEvent, EvidencePack, SigningKey
from evidence.services import Actor, event_record
from reviews.models import AuditSample, Campaign, Decision, Notification, RemediationTask, ReviewItem, SignOff
from sod.models import (
    Check,
    ControlException,
    ExceptionNote,
    Mitigation,
    RiskAcceptance,
    Rule,
    RuleMember,
    RuleSide,
    Violation,
)
from soxgov import health
from soxgov.models import Heartbeat
from soxgov.roles import Role
from soxgov.tokens import token_create
from tests.conftest import build_company, build_personas

PERSONAS = ("alice", "rita", "oscar", "audrey", "audrey_token", "mallory", "anonymous")

# Outcomes, as the matrix spells them.
OK = 200
DENIED = 403  # signed in, but the role may not attempt this action on this model
HIDDEN = 404  # outside the reviewer's scope: answered as if it did not exist
READ_ONLY = 405  # the role may attempt the action, but the read-only API does not offer the method
INVALID = 400  # allowed to try, but the request (no file) is refused by validation
CREATED = 201  # the API made what was asked
ACCEPTED = 202  # the API queued what was asked (an evidence pack: built by a worker)
CONFLICT = 409  # allowed to try, but the object's state refuses it (e.g. deciding your own risk acceptance)
POST_ONLY = 405  # the endpoint changes state, so it answers POST only (no GET ever changes state)
LOGIN = "-> login"  # redirected to a login page (the site's, or the admin's)


def to(path: str) -> str:
    return f"-> {path}"


QUEUED = to("/evidence/integrity/")  # the verification was queued; back to the integrity page
# The action was taken, or refused with a message saying why; back to the page it was taken from.
BACK_TO_VIOLATION = to("/sod/violations/<id>/")
BACK_TO_QUEUE = to("/reviews/")
BACK_TO_CAMPAIGN = to("/reviews/campaigns/<id>/")
BACK_TO_TASK = to("/reviews/remediation/<id>/")
BACK_TO_ITEM = to("/reviews/items/<id>/")
BACK_TO_EXCEPTION = to("/exceptions/<id>/")
TO_PACK = to("/evidence/packs/<id>/")
TO_SAMPLE = to("/reviews/samples/<id>/")
SAVED = to("/admin/entitlements/application/")  # Django admin saved the object; back to its list

BACK_TO_IMPORTS = to("/imports/")
BACK_TO_IMPORT = to("/imports/<id>/")
PAGE, FRAGMENT, API, ADMIN = "page", "htmx fragment", "api", "admin"
DOWNLOAD = "download"  # a file to save (the offline verifier)
HEALTH = "health"  # an operator's or load balancer's probe: JSON, no credentials, nothing sensitive
GET_ONLY = 405  # the endpoint only reads, and answers GET and HEAD only
SCHEMA = "api schema"  # the OpenAPI document (YAML) and its Swagger page: API authentication, not JSON rows
# URL arguments after the object's id.
EXTRA_ARGS = {"exception act": ["comment"]}

# route: (surface, URL name, the kind of object whose pk the URL takes)
ROUTES = {
    "home": (PAGE, "home", None),
    "identities": (PAGE, "entitlements:identity_list", None),
    "identity": (PAGE, "entitlements:identity_detail", Identity),
    "identity access-on": (PAGE, "entitlements:identity_access_on", Identity),
    "applications": (PAGE, "entitlements:application_list", None),
    "application": (PAGE, "entitlements:application_detail", Application),
    "accounts": (PAGE, "entitlements:account_list", None),
    "account": (PAGE, "entitlements:account_detail", Account),
    "entitlements": (PAGE, "entitlements:entitlement_list", None),
    "entitlement": (PAGE, "entitlements:entitlement_detail", Entitlement),
    "entitlement holders-on": (PAGE, "entitlements:entitlement_holders_on", Entitlement),
    "evidence": (PAGE, "evidence:event_list", None),
    "evidence event": (PAGE, "evidence:event_detail", EvidenceEvent),
    "integrity": (PAGE, "evidence:integrity", None),
    "integrity verify": (PAGE, "evidence:verification_create", None),
    "pack verifier": (DOWNLOAD, "evidence:pack_verifier", None),
    "imports": (PAGE, "entitlements:run_list", None),
    "import": (PAGE, "entitlements:run_detail", ConnectorRun),
    "import upload": (PAGE, "entitlements:run_upload", None),
    "connectors": (PAGE, "entitlements:connector_list", None),
    "connector add": (PAGE, "entitlements:connector_add", None),
    "connector edit": (PAGE, "entitlements:connector_edit", Connector),
    "connector test": (PAGE, "entitlements:connector_test", Connector),
    "connector pull": (PAGE, "entitlements:connector_pull", Connector),
    "import approve": (PAGE, "entitlements:run_approve", ConnectorRun),
    "import reject": (PAGE, "entitlements:run_reject", ConnectorRun),
    "import cancel": (PAGE, "entitlements:run_cancel", ConnectorRun),
    "threshold approve": (PAGE, "entitlements:threshold_approve", ConnectorThresholdChange),
    "threshold reject": (PAGE, "entitlements:threshold_reject", ConnectorThresholdChange),
    "htmx identities": (FRAGMENT, "entitlements:identity_list", None),
    "htmx applications": (FRAGMENT, "entitlements:application_list", None),
    "htmx accounts": (FRAGMENT, "entitlements:account_list", None),
    "htmx entitlements": (FRAGMENT, "entitlements:entitlement_list", None),
    "htmx evidence": (FRAGMENT, "evidence:event_list", None),
    "htmx imports": (FRAGMENT, "entitlements:run_list", None),
    "api identities": (API, "identity-list", None),
    "api identity": (API, "identity-detail", Identity),
    "api applications": (API, "application-list", None),
    "api application": (API, "application-detail", Application),
    "api accounts": (API, "account-list", None),
    "api account": (API, "account-detail", Account),
    "api entitlements": (API, "entitlement-list", None),
    "api entitlement": (API, "entitlement-detail", Entitlement),
    "api grants": (API, "grant-list", None),
    "api grant": (API, "grant-detail", Grant),
    "api events": (API, "evidenceevent-list", None),
    "api event": (API, "evidenceevent-detail", EvidenceEvent),
    "api verifications": (API, "chainverification-list", None),
    "api verification": (API, "chainverification-detail", ChainVerification),
    "api packs": (API, "evidencepack-list", None),
    "api pack": (API, "evidencepack-detail", EvidencePack),
    "api pack download": (API, "evidencepack-download", EvidencePack),
    "api pack cancel": (API, "evidencepack-cancel", EvidencePack),
    "api signing keys": (API, "signingkey-list", None),
    "api signing key": (API, "signingkey-detail", SigningKey),
    "api connectors": (API, "connector-list", None),
    "api connector": (API, "connector-detail", Connector),
    "api runs": (API, "connectorrun-list", None),
    "api run": (API, "connectorrun-detail", ConnectorRun),
    "api run approve": (API, "connectorrun-approve", ConnectorRun),
    "api run reject": (API, "connectorrun-reject", ConnectorRun),
    "api run cancel": (API, "connectorrun-cancel", ConnectorRun),
    "api connector thresholds": (API, "connector-thresholds", Connector),
    "api connector test": (API, "connector-test", Connector),
    "api connector pull": (API, "connector-pull", Connector),
    "api threshold changes": (API, "connectorthresholdchange-list", None),
    "api threshold change": (API, "connectorthresholdchange-detail", ConnectorThresholdChange),
    "api threshold approve": (API, "connectorthresholdchange-approve", ConnectorThresholdChange),
    "api threshold reject": (API, "connectorthresholdchange-reject", ConnectorThresholdChange),
    "api schema": (SCHEMA, "api_schema", None),
    "api docs": (SCHEMA, "api_docs", None),
    "health live": (HEALTH, "health_live", None),
    "health ready": (HEALTH, "health_ready", None),
    "sod rules": (PAGE, "sod:rule_list", None),
    "sod rule": (PAGE, "sod:rule_detail", Rule),
    "sod rule create": (PAGE, "sod:rule_create", None),
    "sod rule edit": (PAGE, "sod:rule_edit", Rule),
    "sod ruleset upload": (PAGE, "sod:ruleset_upload", None),
    "sod violations": (PAGE, "sod:violation_list", None),
    "sod violation": (PAGE, "sod:violation_detail", Violation),
    "sod mitigate": (PAGE, "sod:violation_mitigate", Violation),
    "sod accept": (PAGE, "sod:violation_accept", Violation),
    "sod approve": (PAGE, "sod:acceptance_approve", RiskAcceptance),
    "sod reject": (PAGE, "sod:acceptance_reject", RiskAcceptance),
    "sod what-if": (PAGE, "sod:what_if", None),
    "htmx sod rules": (FRAGMENT, "sod:rule_list", None),
    "htmx sod violations": (FRAGMENT, "sod:violation_list", None),
    "api sod rules": (API, "rule-list", None),
    "api sod rule": (API, "rule-detail", Rule),
    "api sod violations": (API, "violation-list", None),
    "api sod violation": (API, "violation-detail", Violation),
    "api sod mitigate": (API, "violation-mitigate", Violation),
    "api sod request acceptance": (API, "violation-request-acceptance", Violation),
    "api sod acceptances": (API, "riskacceptance-list", None),
    "api sod acceptance": (API, "riskacceptance-detail", RiskAcceptance),
    "api sod approve": (API, "riskacceptance-approve", RiskAcceptance),
    "api sod reject": (API, "riskacceptance-reject", RiskAcceptance),
    "api sod checks": (API, "check-list", None),
    "api sod check": (API, "check-detail", Check),
    "api sod what-if": (API, "sod_what_if", None),
    "my reviews": (PAGE, "reviews:my_reviews", None),
    "htmx my reviews": (FRAGMENT, "reviews:my_reviews", None),
    "review item": (PAGE, "reviews:item_detail", ReviewItem),
    "reviews decide": (PAGE, "reviews:decide", None),
    "reviews delegate": (PAGE, "reviews:delegate", None),
    "review decision change": (PAGE, "reviews:decision_change", ReviewItem),
    "campaigns": (PAGE, "reviews:campaign_list", None),
    "htmx campaigns": (FRAGMENT, "reviews:campaign_list", None),
    "campaign": (PAGE, "reviews:campaign_detail", Campaign),
    "campaign create": (PAGE, "reviews:campaign_create", None),
    "campaign edit": (PAGE, "reviews:campaign_edit", Campaign),
    "campaign preview": (PAGE, "reviews:campaign_preview", Campaign),
    "campaign launch": (PAGE, "reviews:campaign_launch", Campaign),
    "campaign close": (PAGE, "reviews:campaign_close", Campaign),
    "campaign sign-off": (PAGE, "reviews:sign_off", Campaign),
    "campaign stamps": (PAGE, "reviews:campaign_stamps", Campaign),
    "how reviews are judged": (PAGE, "reviews:intelligence", None),
    "notifications": (PAGE, "reviews:notifications", None),
    "notifications read": (PAGE, "reviews:notifications_read", None),
    "api campaigns": (API, "campaign-list", None),
    "api campaign": (API, "campaign-detail", Campaign),
    "api campaign preview": (API, "campaign-preview", Campaign),
    "api campaign launch": (API, "campaign-launch", Campaign),
    "api campaign close": (API, "campaign-close", Campaign),
    "api campaign sign-off": (API, "campaign-sign-off", Campaign),
    "api review items": (API, "reviewitem-list", None),
    "api review item": (API, "reviewitem-detail", ReviewItem),
    "api review decide": (API, "reviewitem-decide", None),
    "api review delegate": (API, "reviewitem-delegate", None),
    "api decisions": (API, "decision-list", None),
    "api decision": (API, "decision-detail", Decision),
    "remediation": (PAGE, "reviews:remediation_list", None),
    "htmx remediation": (FRAGMENT, "reviews:remediation_list", None),
    "remediation task": (PAGE, "reviews:remediation_detail", RemediationTask),
    "remediation update": (PAGE, "reviews:remediation_update", RemediationTask),
    "remediation close": (PAGE, "reviews:remediation_close", RemediationTask),
    "remediation attachment": (PAGE, "reviews:remediation_attachment", RemediationTask),
    "api remediation": (API, "remediationtask-list", None),
    "api remediation task": (API, "remediationtask-detail", RemediationTask),
    "api remediation close": (API, "remediationtask-close", RemediationTask),
    "samples": (PAGE, "reviews:sample_list", None),
    "htmx samples": (FRAGMENT, "reviews:sample_list", None),
    "sample": (PAGE, "reviews:sample_detail", AuditSample),
    "sample export": (DOWNLOAD, "reviews:sample_export", AuditSample),
    "api samples": (API, "auditsample-list", None),
    "api sample": (API, "auditsample-detail", AuditSample),
    "evidence packs": (PAGE, "evidence:pack_list", None),
    "evidence pack for campaign": (PAGE, "evidence:pack_for_campaign", Campaign),
    "evidence pack": (PAGE, "evidence:pack_detail", EvidencePack),
    "evidence pack download": (PAGE, "evidence:pack_download", EvidencePack),
    "evidence pack cancel": (PAGE, "evidence:pack_cancel", EvidencePack),
    "exceptions": (PAGE, "sod:exception_list", None),
    "htmx exceptions": (FRAGMENT, "sod:exception_list", None),
    "exception": (PAGE, "sod:exception_detail", ControlException),
    "exception act": (PAGE, "sod:exception_act", ControlException),
    "dashboard": (PAGE, "sod:dashboard", None),
    "api exceptions": (API, "controlexception-list", None),
    "api exception": (API, "controlexception-detail", ControlException),
    "api exception comment": (API, "controlexception-comment", ControlException),
    "api exception assign": (API, "controlexception-assign", ControlException),
    "api exception mitigate": (API, "controlexception-mitigate", ControlException),
    "api exception accept": (API, "controlexception-accept", ControlException),
    "api exception approve": (API, "controlexception-approve", ControlException),
    "api exception reject": (API, "controlexception-reject", ControlException),
    "api exception close": (API, "controlexception-close", ControlException),
    "admin": (ADMIN, "admin:index", None),
    "admin identities": (ADMIN, "admin:entitlements_identity_changelist", None),
    "admin applications": (ADMIN, "admin:entitlements_application_changelist", None),
    "admin add application": (ADMIN, "admin:entitlements_application_add", None),
    "admin accounts": (ADMIN, "admin:entitlements_account_changelist", None),
    "admin entitlements": (ADMIN, "admin:entitlements_entitlement_changelist", None),
    "admin grants": (ADMIN, "admin:entitlements_grant_changelist", None),
    "admin evidence events": (ADMIN, "admin:evidence_evidenceevent_changelist", None),
    "admin verifications": (ADMIN, "admin:evidence_chainverification_changelist", None),
    "admin connectors": (ADMIN, "admin:entitlements_connector_changelist", None),
    "admin runs": (ADMIN, "admin:entitlements_connectorrun_changelist", None),
    "admin threshold changes": (ADMIN, "admin:entitlements_connectorthresholdchange_changelist", None),
    "admin users": (ADMIN, "admin:soxgov_user_changelist", None),
    "admin groups": (ADMIN, "admin:auth_group_changelist", None),
    "admin api tokens": (ADMIN, "admin:soxgov_apitoken_changelist", None),
    "admin add api token": (ADMIN, "admin:soxgov_apitoken_add", None),
    "admin login attempts": (ADMIN, "admin:axes_accessattempt_changelist", None),
    "admin samples": (ADMIN, "admin:reviews_auditsample_changelist", None),
}

# fmt: off
# Rita reviews: she manages Bob, owns the service account "bot" and the application CRM (with its entitlement
# "view" and the orphan account "ghost@CRM"). Carol, ERP and its entitlement "post" are outside her scope.
MATRIX = [
    # method   route                      object             alice      rita       oscar      audrey     audrey_token   mallory    anonymous
    # --- pages -------------------------------------------------------------------------------------------
    ("GET",    "home",                    None,              OK,        OK,        OK,        OK,        LOGIN,         OK,        LOGIN),
    ("GET",    "identities",              None,              OK,        OK,        OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("GET",    "identity",                "rita",            OK,        OK,        OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("GET",    "identity",                "bob",             OK,        OK,        OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("GET",    "identity",                "bot",             OK,        OK,        OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("GET",    "identity",                "carol",           OK,        HIDDEN,    OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("GET",    "identity access-on",      "bob",             OK,        OK,        OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("GET",    "identity access-on",      "carol",           OK,        HIDDEN,    OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("GET",    "applications",            None,              OK,        OK,        OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("GET",    "application",             "CRM",             OK,        OK,        OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("GET",    "application",             "ERP",             OK,        HIDDEN,    OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("GET",    "accounts",                None,              OK,        OK,        OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("GET",    "account",                 "bob@ERP",         OK,        OK,        OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("GET",    "account",                 "ghost@CRM",       OK,        OK,        OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("GET",    "account",                 "carol@ERP",       OK,        HIDDEN,    OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("GET",    "entitlements",            None,              OK,        OK,        OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("GET",    "entitlement",             "view",            OK,        OK,        OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("GET",    "entitlement",             "post",            OK,        HIDDEN,    OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("GET",    "entitlement holders-on",  "view",            OK,        OK,        OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("GET",    "entitlement holders-on",  "post",            OK,        HIDDEN,    OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("GET",    "evidence",                None,              OK,        DENIED,    OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("GET",    "evidence event",          "event 1",         OK,        DENIED,    OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("GET",    "integrity",               None,              OK,        DENIED,    OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("GET",    "integrity verify",        None,              POST_ONLY, POST_ONLY, POST_ONLY, POST_ONLY, LOGIN,         POST_ONLY, LOGIN),
    ("GET",    "pack verifier",           None,              OK,        DENIED,    OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("POST",   "integrity verify",        None,              QUEUED,    DENIED,    DENIED,    DENIED,    LOGIN,         DENIED,    LOGIN),
    # Imports: a run is approved or rejected by an admin other than the one who started it (alice, here).
    ("GET",    "imports",                 None,              OK,        OK,        OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("GET",    "import",                  "held run",        OK,        HIDDEN,    OK,        OK,        LOGIN,         DENIED,    LOGIN),
    # Connector pages configure connectors: admins only. A file connector has no source to test (the page
    # says so); pulling one queues an import and shows it.
    ("GET",    "connectors",              None,              OK,        DENIED,    DENIED,    DENIED,    LOGIN,         DENIED,    LOGIN),
    ("GET",    "connector add",           None,              OK,        DENIED,    DENIED,    DENIED,    LOGIN,         DENIED,    LOGIN),
    ("POST",   "connector add",           None,              INVALID,   DENIED,    DENIED,    DENIED,    LOGIN,         DENIED,    LOGIN),
    ("GET",    "connector edit",          "ERP nightly",     OK,        DENIED,    DENIED,    DENIED,    LOGIN,         DENIED,    LOGIN),
    ("POST",   "connector edit",          "ERP nightly",     INVALID,   DENIED,    DENIED,    DENIED,    LOGIN,         DENIED,    LOGIN),
    ("POST",   "connector test",          "ERP nightly",     OK,        DENIED,    DENIED,    DENIED,    LOGIN,         DENIED,    LOGIN),
    ("POST",   "connector pull",          "ERP nightly",     BACK_TO_IMPORT, DENIED, DENIED,  DENIED,    LOGIN,         DENIED,    LOGIN),
    ("GET",    "import upload",           None,              OK,        DENIED,    DENIED,    DENIED,    LOGIN,         DENIED,    LOGIN),
    ("POST",   "import upload",           None,              INVALID,   DENIED,    DENIED,    DENIED,    LOGIN,         DENIED,    LOGIN),
    ("POST",   "import approve",          "held run",        DENIED,    HIDDEN,    DENIED,    DENIED,    LOGIN,         DENIED,    LOGIN),
    ("POST",   "import reject",           "held run",        DENIED,    HIDDEN,    DENIED,    DENIED,    LOGIN,         DENIED,    LOGIN),
    # A held run is not cancelled (it is rejected): the admin is sent back to it with the reason.
    ("POST",   "import cancel",           "held run",        BACK_TO_IMPORT, HIDDEN, DENIED,   DENIED,    LOGIN,         DENIED,    LOGIN),
    # Raised connector thresholds wait for a second admin: Alice proposed this one, so she may withdraw it (reject)
    # but not approve it; nobody else here is an admin.
    ("POST",   "threshold approve",       "pending thresholds", DENIED, HIDDEN,    DENIED,    DENIED,    LOGIN,         DENIED,    LOGIN),
    ("POST",   "threshold reject",        "pending thresholds", BACK_TO_IMPORTS, HIDDEN, DENIED, DENIED, LOGIN,         DENIED,    LOGIN),
    # SoD. Reviewers see the violations of people in their scope, not the rules; admins write rules; control
    # owners (and admins) answer violations. The four-eyes refusal itself is tested in tests/sod/.
    ("GET",    "sod rules",               None,              OK,        DENIED,    OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("GET",    "sod rule",                "SOD-1",           OK,        DENIED,    OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("GET",    "sod rule create",         None,              OK,        DENIED,    DENIED,    DENIED,    LOGIN,         DENIED,    LOGIN),
    ("POST",   "sod rule create",         None,              INVALID,   DENIED,    DENIED,    DENIED,    LOGIN,         DENIED,    LOGIN),
    ("GET",    "sod rule edit",           "SOD-1",           OK,        DENIED,    DENIED,    DENIED,    LOGIN,         DENIED,    LOGIN),
    ("POST",   "sod rule edit",           "SOD-1",           INVALID,   DENIED,    DENIED,    DENIED,    LOGIN,         DENIED,    LOGIN),
    ("GET",    "sod ruleset upload",      None,              OK,        DENIED,    DENIED,    DENIED,    LOGIN,         DENIED,    LOGIN),
    ("POST",   "sod ruleset upload",      None,              INVALID,   DENIED,    DENIED,    DENIED,    LOGIN,         DENIED,    LOGIN),
    ("GET",    "sod violations",          None,              OK,        OK,        OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("GET",    "sod violation",           "bob violation",   OK,        OK,        OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("GET",    "sod violation",           "carol violation", OK,        HIDDEN,    OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("GET",    "sod mitigate",            "bob violation",   POST_ONLY, POST_ONLY, POST_ONLY, POST_ONLY, LOGIN,         POST_ONLY, LOGIN),
    ("POST",   "sod mitigate",            "bob violation",   BACK_TO_VIOLATION, DENIED, BACK_TO_VIOLATION, DENIED, LOGIN, DENIED, LOGIN),
    ("POST",   "sod mitigate",            "carol violation", BACK_TO_VIOLATION, HIDDEN, BACK_TO_VIOLATION, DENIED, LOGIN, DENIED, LOGIN),
    ("POST",   "sod accept",              "bob violation",   BACK_TO_VIOLATION, DENIED, BACK_TO_VIOLATION, DENIED, LOGIN, DENIED, LOGIN),
    ("POST",   "sod approve",             "pending acceptance", BACK_TO_VIOLATION, DENIED, BACK_TO_VIOLATION, DENIED, LOGIN, DENIED, LOGIN),
    ("POST",   "sod reject",              "pending acceptance", BACK_TO_VIOLATION, DENIED, BACK_TO_VIOLATION, DENIED, LOGIN, DENIED, LOGIN),
    ("GET",    "sod what-if",             None,              OK,        DENIED,    OK,        OK,        LOGIN,         DENIED,    LOGIN),
    # Review campaigns. Admins prepare and launch; reviewers see and decide only the items routed to them (Rita:
    # Bob's, the bot's and the orphan's; Carol's item went to the fallback, Alice); nobody decides for another.
    ("GET",    "my reviews",              None,              OK,        OK,        OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("GET",    "htmx my reviews",         None,              OK,        OK,        OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("GET",    "review item",             "bob item",        OK,        OK,        OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("GET",    "review item",             "carol item",      OK,        HIDDEN,    OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("POST",   "reviews decide",          None,              BACK_TO_QUEUE, BACK_TO_QUEUE, DENIED, DENIED, LOGIN,       DENIED,    LOGIN),
    ("POST",   "reviews delegate",        None,              BACK_TO_QUEUE, BACK_TO_QUEUE, DENIED, DENIED, LOGIN,       DENIED,    LOGIN),
    # Rita withdraws her revoke of the orphan's access (Alice, not its reviewer, is told so on the item's page).
    ("GET",    "review decision change",  "ghost item",      POST_ONLY, POST_ONLY, POST_ONLY, POST_ONLY, LOGIN,         POST_ONLY, LOGIN),
    ("POST",   "review decision change",  "ghost item",      BACK_TO_ITEM, BACK_TO_ITEM, DENIED, DENIED, LOGIN,         DENIED,    LOGIN),
    ("POST",   "review decision change",  "carol item",      BACK_TO_ITEM, HIDDEN,  DENIED,    DENIED,    LOGIN,         DENIED,    LOGIN),
    ("GET",    "campaigns",               None,              OK,        OK,        OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("GET",    "htmx campaigns",          None,              OK,        OK,        OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("GET",    "campaign",                "campaign",        OK,        OK,        OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("GET",    "campaign",                "draft campaign",  OK,        HIDDEN,    OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("GET",    "campaign create",         None,              OK,        DENIED,    DENIED,    DENIED,    LOGIN,         DENIED,    LOGIN),
    ("POST",   "campaign create",         None,              INVALID,   DENIED,    DENIED,    DENIED,    LOGIN,         DENIED,    LOGIN),
    ("GET",    "campaign edit",           "draft campaign",  OK,        DENIED,    DENIED,    DENIED,    LOGIN,         DENIED,    LOGIN),
    ("POST",   "campaign edit",           "draft campaign",  INVALID,   DENIED,    DENIED,    DENIED,    LOGIN,         DENIED,    LOGIN),
    ("GET",    "campaign preview",        "draft campaign",  OK,        DENIED,    DENIED,    DENIED,    LOGIN,         DENIED,    LOGIN),
    ("POST",   "campaign launch",         "draft campaign",  BACK_TO_CAMPAIGN, DENIED, DENIED, DENIED,   LOGIN,         DENIED,    LOGIN),
    ("POST",   "campaign close",          "campaign",        BACK_TO_CAMPAIGN, DENIED, DENIED, DENIED,   LOGIN,         DENIED,    LOGIN),
    # Rubber-stamp checks: admins ask for one; everyone who sees review items may read how reviews are judged.
    ("POST",   "campaign stamps",         "campaign",        BACK_TO_CAMPAIGN, DENIED, DENIED, DENIED,   LOGIN,         DENIED,    LOGIN),
    ("GET",    "how reviews are judged",  None,              OK,        OK,        OK,        OK,        LOGIN,         DENIED,    LOGIN),
    # Sign-off: refused while items are pending (with a message); control owners and auditors never sign off.
    ("POST",   "campaign sign-off",       "campaign",        BACK_TO_QUEUE, BACK_TO_QUEUE, DENIED, DENIED, LOGIN,       DENIED,    LOGIN),
    # Remediation: Rita revoked the orphan's access, so she follows its task; control owners and admins close
    # tasks (manually only with proof: without it, the page says so and nothing changes).
    ("GET",    "remediation",             None,              OK,        OK,        OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("GET",    "htmx remediation",        None,              OK,        OK,        OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("GET",    "remediation task",        "ghost task",      OK,        OK,        OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("POST",   "remediation update",      "ghost task",      BACK_TO_TASK, DENIED,  BACK_TO_TASK, DENIED, LOGIN,        DENIED,    LOGIN),
    ("POST",   "remediation close",       "ghost task",      BACK_TO_TASK, DENIED,  BACK_TO_TASK, DENIED, LOGIN,        DENIED,    LOGIN),
    ("GET",    "remediation attachment",  "ghost task",      HIDDEN,    HIDDEN,    HIDDEN,    HIDDEN,    LOGIN,         DENIED,    LOGIN),
    # Samples for auditors: auditors (and admins) draw one, control owners read them, reviewers (whose decisions
    # are tested) see none. Downloading a sample's evidence changes nothing.
    ("GET",    "samples",                 None,              OK,        DENIED,    OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("GET",    "htmx samples",            None,              OK,        DENIED,    OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("POST",   "samples",                 None,              TO_SAMPLE, DENIED,    DENIED,    TO_SAMPLE, LOGIN,         DENIED,    LOGIN),
    ("GET",    "sample",                  "sample",          OK,        DENIED,    OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("GET",    "sample export",           "sample",          OK,        DENIED,    OK,        OK,        LOGIN,         DENIED,    LOGIN),
    # Evidence packs: auditors (and admins, control owners) ask for one with a POST (it starts work, but only
    # reads evidence, and is evidenced; a GET builds nothing) and download it when built; the failed one here has
    # nothing to download.
    ("GET",    "evidence packs",          None,              OK,        DENIED,    OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("GET",    "evidence pack for campaign", "campaign",     POST_ONLY, POST_ONLY, POST_ONLY, POST_ONLY, LOGIN,         POST_ONLY, LOGIN),
    ("POST",   "evidence pack for campaign", "campaign",     TO_PACK,   DENIED,    TO_PACK,   TO_PACK,   LOGIN,         DENIED,    LOGIN),
    ("GET",    "evidence pack",           "pack",            OK,        DENIED,    OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("GET",    "evidence pack download",  "pack",            HIDDEN,    DENIED,    HIDDEN,    HIDDEN,    LOGIN,         DENIED,    LOGIN),
    ("POST",   "evidence pack cancel",    "pack",            TO_PACK,   DENIED,    DENIED,    DENIED,    LOGIN,         DENIED,    LOGIN),
    # The exception queue and the dashboard: control owners work it (admins too), auditors read it.
    ("GET",    "exceptions",              None,              OK,        DENIED,    OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("GET",    "htmx exceptions",         None,              OK,        DENIED,    OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("GET",    "exception",               "ghost exception", OK,        DENIED,    OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("POST",   "exception act",           "ghost exception", BACK_TO_EXCEPTION, DENIED, BACK_TO_EXCEPTION, DENIED, LOGIN, DENIED, LOGIN),
    ("GET",    "dashboard",               None,              OK,        DENIED,    OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("GET",    "notifications",           None,              OK,        OK,        OK,        OK,        LOGIN,         OK,        LOGIN),
    ("POST",   "notifications read",      None,              to("/notifications/"), to("/notifications/"), to("/notifications/"), to("/notifications/"), LOGIN, to("/notifications/"), LOGIN),
    # --- htmx fragments (the same list views, answering only the results table) ---------------------
    ("GET",    "htmx sod rules",          None,              OK,        DENIED,    OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("GET",    "htmx sod violations",     None,              OK,        OK,        OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("GET",    "htmx identities",         None,              OK,        OK,        OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("GET",    "htmx applications",       None,              OK,        OK,        OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("GET",    "htmx accounts",           None,              OK,        OK,        OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("GET",    "htmx entitlements",       None,              OK,        OK,        OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("GET",    "htmx evidence",           None,              OK,        DENIED,    OK,        OK,        LOGIN,         DENIED,    LOGIN),
    ("GET",    "htmx imports",            None,              OK,        OK,        OK,        OK,        LOGIN,         DENIED,    LOGIN),
    # --- REST API: reads ------------------------------------------------------------------------------
    ("GET",    "api identities",          None,              OK,        OK,        OK,        OK,        OK,            DENIED,    DENIED),
    ("GET",    "api identity",            "bob",             OK,        OK,        OK,        OK,        OK,            DENIED,    DENIED),
    ("GET",    "api identity",            "carol",           OK,        HIDDEN,    OK,        OK,        OK,            DENIED,    DENIED),
    ("GET",    "api applications",        None,              OK,        OK,        OK,        OK,        OK,            DENIED,    DENIED),
    ("GET",    "api application",         "CRM",             OK,        OK,        OK,        OK,        OK,            DENIED,    DENIED),
    ("GET",    "api application",         "ERP",             OK,        HIDDEN,    OK,        OK,        OK,            DENIED,    DENIED),
    ("GET",    "api accounts",            None,              OK,        OK,        OK,        OK,        OK,            DENIED,    DENIED),
    ("GET",    "api account",             "ghost@CRM",       OK,        OK,        OK,        OK,        OK,            DENIED,    DENIED),
    ("GET",    "api account",             "carol@ERP",       OK,        HIDDEN,    OK,        OK,        OK,            DENIED,    DENIED),
    ("GET",    "api entitlements",        None,              OK,        OK,        OK,        OK,        OK,            DENIED,    DENIED),
    ("GET",    "api entitlement",         "view",            OK,        OK,        OK,        OK,        OK,            DENIED,    DENIED),
    ("GET",    "api entitlement",         "post",            OK,        HIDDEN,    OK,        OK,        OK,            DENIED,    DENIED),
    ("GET",    "api grants",              None,              OK,        OK,        OK,        OK,        OK,            DENIED,    DENIED),
    ("GET",    "api grant",               "bob@ERP/post",    OK,        OK,        OK,        OK,        OK,            DENIED,    DENIED),
    ("GET",    "api grant",               "carol@ERP/post",  OK,        HIDDEN,    OK,        OK,        OK,            DENIED,    DENIED),
    ("GET",    "api events",              None,              OK,        DENIED,    OK,        OK,        OK,            DENIED,    DENIED),
    ("GET",    "api event",               "event 1",         OK,        DENIED,    OK,        OK,        OK,            DENIED,    DENIED),
    ("GET",    "api verifications",       None,              OK,        DENIED,    OK,        OK,        OK,            DENIED,    DENIED),
    ("GET",    "api verification",        "verification",    OK,        DENIED,    OK,        OK,        OK,            DENIED,    DENIED),
    # Evidence packs over the API, as in the browser: asked for with a POST (below), the failed one here has
    # nothing to download.
    ("GET",    "api packs",               None,              OK,        DENIED,    OK,        OK,        OK,            DENIED,    DENIED),
    ("GET",    "api pack",                "pack",            OK,        DENIED,    OK,        OK,        OK,            DENIED,    DENIED),
    ("GET",    "api pack download",       "pack",            HIDDEN,    DENIED,    HIDDEN,    HIDDEN,    HIDDEN,        DENIED,    DENIED),
    # The public keys that signed checkpoints and packs: for everyone who reads evidence.
    ("GET",    "api signing keys",        None,              OK,        DENIED,    OK,        OK,        OK,            DENIED,    DENIED),
    ("GET",    "api signing key",         "signing key",     OK,        DENIED,    OK,        OK,        OK,            DENIED,    DENIED),
    ("GET",    "api connectors",          None,              OK,        OK,        OK,        OK,        OK,            DENIED,    DENIED),
    ("GET",    "api connector",           "ERP nightly",     OK,        HIDDEN,    OK,        OK,        OK,            DENIED,    DENIED),
    ("GET",    "api runs",                None,              OK,        OK,        OK,        OK,        OK,            DENIED,    DENIED),
    ("GET",    "api run",                 "held run",        OK,        HIDDEN,    OK,        OK,        OK,            DENIED,    DENIED),
    ("GET",    "api sod rules",           None,              OK,        DENIED,    OK,        OK,        OK,            DENIED,    DENIED),
    ("GET",    "api sod rule",            "SOD-1",           OK,        DENIED,    OK,        OK,        OK,            DENIED,    DENIED),
    ("GET",    "api sod violations",      None,              OK,        OK,        OK,        OK,        OK,            DENIED,    DENIED),
    ("GET",    "api sod violation",       "bob violation",   OK,        OK,        OK,        OK,        OK,            DENIED,    DENIED),
    ("GET",    "api sod violation",       "carol violation", OK,        HIDDEN,    OK,        OK,        OK,            DENIED,    DENIED),
    ("GET",    "api sod acceptances",     None,              OK,        DENIED,    OK,        OK,        OK,            DENIED,    DENIED),
    ("GET",    "api sod acceptance",      "pending acceptance", OK,     DENIED,    OK,        OK,        OK,            DENIED,    DENIED),
    ("GET",    "api sod checks",          None,              OK,        DENIED,    OK,        OK,        OK,            DENIED,    DENIED),
    ("GET",    "api sod check",           "check",           OK,        DENIED,    OK,        OK,        OK,            DENIED,    DENIED),
    # What-if asks a question with a body (POST) and changes nothing.
    ("POST",   "api sod what-if",         None,              OK,        DENIED,    OK,        OK,        OK,            DENIED,    DENIED),
    # --- REST API: SoD writes. Rules: admins. Violations are answered, never edited. -------------------------
    ("POST",   "api sod rules",           None,              INVALID,   DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("PUT",    "api sod rule",            "SOD-1",           INVALID,   DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("PATCH",  "api sod rule",            "SOD-1",           OK,        DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    # A rule with violations on record is disabled, never deleted (409: its state refuses it).
    ("DELETE", "api sod rule",            "SOD-1",           CONFLICT,  DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("POST",   "api sod violations",      None,              READ_ONLY, DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("PATCH",  "api sod violation",       "bob violation",   READ_ONLY, DENIED,    READ_ONLY, DENIED,    DENIED,        DENIED,    DENIED),
    ("DELETE", "api sod violation",       "bob violation",   READ_ONLY, DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("POST",   "api sod mitigate",        "bob violation",   CREATED,   DENIED,    CREATED,   DENIED,    DENIED,        DENIED,    DENIED),
    ("POST",   "api sod mitigate",        "carol violation", CREATED,   DENIED,    CREATED,   DENIED,    DENIED,        DENIED,    DENIED),
    # The second request finds the first one pending.
    ("POST",   "api sod request acceptance", "bob violation", CREATED,  DENIED,    CONFLICT,  DENIED,    DENIED,        DENIED,    DENIED),
    # oscar requested it: alice decides; oscar may not (and by then it is decided anyway).
    ("POST",   "api sod approve",         "pending acceptance", OK,     DENIED,    CONFLICT,  DENIED,    DENIED,        DENIED,    DENIED),
    ("POST",   "api sod reject",          "pending acceptance", OK,     DENIED,    CONFLICT,  DENIED,    DENIED,        DENIED,    DENIED),
    ("PATCH",  "api sod acceptance",      "pending acceptance", READ_ONLY, DENIED, READ_ONLY, DENIED,    DENIED,        DENIED,    DENIED),
    ("POST",   "api sod checks",          None,              READ_ONLY, DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("GET",    "api campaigns",           None,              OK,        OK,        OK,        OK,        OK,            DENIED,    DENIED),
    ("GET",    "api campaign",            "campaign",        OK,        OK,        OK,        OK,        OK,            DENIED,    DENIED),
    ("GET",    "api campaign",            "draft campaign",  OK,        HIDDEN,    OK,        OK,        OK,            DENIED,    DENIED),
    ("GET",    "api campaign preview",    "draft campaign",  OK,        DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("GET",    "api review items",        None,              OK,        OK,        OK,        OK,        OK,            DENIED,    DENIED),
    ("GET",    "api review item",         "bob item",        OK,        OK,        OK,        OK,        OK,            DENIED,    DENIED),
    ("GET",    "api review item",         "carol item",      OK,        HIDDEN,    OK,        OK,        OK,            DENIED,    DENIED),
    ("GET",    "api decisions",           None,              OK,        OK,        OK,        OK,        OK,            DENIED,    DENIED),
    ("GET",    "api remediation",         None,              OK,        OK,        OK,        OK,        OK,            DENIED,    DENIED),
    ("GET",    "api remediation task",    "ghost task",      OK,        OK,        OK,        OK,        OK,            DENIED,    DENIED),
    # Alice closes it with proof; for Oscar it is then already closed (409).
    ("POST",   "api remediation close",   "ghost task",      OK,        DENIED,    CONFLICT,  DENIED,    DENIED,        DENIED,    DENIED),
    ("GET",    "api exceptions",          None,              OK,        DENIED,    OK,        OK,        OK,            DENIED,    DENIED),
    ("GET",    "api exception",           "ghost exception", OK,        DENIED,    OK,        OK,        OK,            DENIED,    DENIED),
    ("POST",   "api exception comment",   "ghost exception", OK,        DENIED,    OK,        DENIED,    DENIED,        DENIED,    DENIED),
    ("POST",   "api exception assign",    "ghost exception", OK,        DENIED,    OK,        DENIED,    DENIED,        DENIED,    DENIED),
    ("POST",   "api exception mitigate",  "ghost exception", OK,        DENIED,    OK,        DENIED,    DENIED,        DENIED,    DENIED),
    # A state that refuses the action answers 409: Alice's request is pending when Oscar asks; nobody has
    # requested one to decide; Alice closed it before Oscar tries.
    ("POST",   "api exception accept",    "ghost exception", OK,        DENIED,    CONFLICT,  DENIED,    DENIED,        DENIED,    DENIED),
    ("POST",   "api exception approve",   "ghost exception", CONFLICT,  DENIED,    CONFLICT,  DENIED,    DENIED,        DENIED,    DENIED),
    ("POST",   "api exception reject",    "ghost exception", CONFLICT,  DENIED,    CONFLICT,  DENIED,    DENIED,        DENIED,    DENIED),
    ("POST",   "api exception close",     "ghost exception", OK,        DENIED,    CONFLICT,  DENIED,    DENIED,        DENIED,    DENIED),
    # A sample is drawn (the auditor's token too: it records what is tested and changes nothing else), never
    # changed or deleted, not even by an admin.
    ("GET",    "api samples",             None,              OK,        DENIED,    OK,        OK,        OK,            DENIED,    DENIED),
    ("GET",    "api sample",              "sample",          OK,        DENIED,    OK,        OK,        OK,            DENIED,    DENIED),
    ("POST",   "api samples",             None,              CREATED,   DENIED,    DENIED,    CREATED,   CREATED,       DENIED,    DENIED),
    ("PATCH",  "api sample",              "sample",          DENIED,    DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("DELETE", "api sample",              "sample",          DENIED,    DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("GET",    "api decision",            "decision",        OK,        OK,        OK,        OK,        OK,            DENIED,    DENIED),
    ("POST",   "api campaigns",           None,              INVALID,   DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("PATCH",  "api campaign",            "draft campaign",  OK,        DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("DELETE", "api campaign",            "draft campaign",  READ_ONLY, DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("POST",   "api campaign launch",     "draft campaign",  OK,        DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    # An active campaign is neither closed nor signed off while items are pending (409).
    ("POST",   "api campaign close",      "campaign",        CONFLICT,  DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("POST",   "api campaign sign-off",   "campaign",        CONFLICT,  CONFLICT,  DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    # Only the assigned reviewer decides or delegates: Alice may change review items, but Rita's answer 404.
    ("POST",   "api review decide",       None,              HIDDEN,    OK,        DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("POST",   "api review delegate",     None,              HIDDEN,    OK,        DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("PATCH",  "api review item",         "bob item",        READ_ONLY, READ_ONLY, DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    # --- REST API: writes. The API is read-only; the admin's own writes go through Django admin. --------
    ("POST",   "api identities",          None,              READ_ONLY, DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("PUT",    "api identity",            "bob",             READ_ONLY, DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("PATCH",  "api identity",            "bob",             READ_ONLY, DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("DELETE", "api identity",            "bob",             READ_ONLY, DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("POST",   "api applications",        None,              CREATED, DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("PUT",    "api application",         "CRM",             OK,        DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("PATCH",  "api application",         "CRM",             OK,        DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("DELETE", "api application",         "CRM",             READ_ONLY, DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("POST",   "api accounts",            None,              READ_ONLY, DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("PUT",    "api account",             "ghost@CRM",       READ_ONLY, DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("PATCH",  "api account",             "ghost@CRM",       READ_ONLY, DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("DELETE", "api account",             "ghost@CRM",       READ_ONLY, DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("POST",   "api entitlements",        None,              READ_ONLY, DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("PUT",    "api entitlement",         "view",            READ_ONLY, DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("PATCH",  "api entitlement",         "view",            READ_ONLY, DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("DELETE", "api entitlement",         "view",            READ_ONLY, DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("POST",   "api grants",              None,              READ_ONLY, DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("PUT",    "api grant",               "bob@ERP/post",    READ_ONLY, DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("PATCH",  "api grant",               "bob@ERP/post",    READ_ONLY, DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("DELETE", "api grant",               "bob@ERP/post",    READ_ONLY, DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    # Evidence is append-only for everyone: not even the admin may attempt to write an event.
    ("POST",   "api events",              None,              DENIED,    DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("PUT",    "api event",               "event 1",         DENIED,    DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("PATCH",  "api event",               "event 1",         DENIED,    DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("DELETE", "api event",               "event 1",         DENIED,    DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    # Only the admin may request a verification (through the integrity page, not the API).
    ("POST",   "api verifications",       None,              READ_ONLY, DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("PUT",    "api verification",        "verification",    DENIED,    DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("PATCH",  "api verification",        "verification",    DENIED,    DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("DELETE", "api verification",        "verification",    DENIED,    DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    # Whoever may view packs asks for one with a POST (queued: 202), the read-only auditor's token too: a worker
    # builds it; nobody changes or deletes one.
    ("POST",   "api packs",               None,              ACCEPTED,  DENIED,    ACCEPTED,  ACCEPTED,  ACCEPTED,      DENIED,    DENIED),
    # An admin may change a pack (cancel it), but not through PUT/PATCH on the read-only API.
    ("PUT",    "api pack",                "pack",            READ_ONLY,    DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("PATCH",  "api pack",                "pack",            READ_ONLY,    DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("DELETE", "api pack",                "pack",            DENIED,    DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    # Signing keys come from configuration and are registered by SOXGov itself when they first sign.
    ("POST",   "api signing keys",        None,              DENIED,    DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("PUT",    "api signing key",         "signing key",     DENIED,    DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("PATCH",  "api signing key",         "signing key",     DENIED,    DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("DELETE", "api signing key",         "signing key",     DENIED,    DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    # Admins configure connectors: a file connector without a path is refused (400), and so is any save of "ERP
    # nightly", whose path lies outside the allowed roots. Runs are started by upload or a pull, then decided by
    # another admin. Nobody deletes a connector through the API.
    ("POST",   "api connectors",          None,              INVALID,   DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("PUT",    "api connector",           "ERP nightly",     INVALID,   DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("PATCH",  "api connector",           "ERP nightly",     INVALID,   DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("DELETE", "api connector",           "ERP nightly",     READ_ONLY, DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("POST",   "api runs",                None,              INVALID,   DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("PUT",    "api run",                 "held run",        READ_ONLY, DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("PATCH",  "api run",                 "held run",        READ_ONLY, DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("DELETE", "api run",                 "held run",        READ_ONLY, DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("POST",   "api run approve",         "held run",        DENIED,    DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("POST",   "api run reject",          "held run",        DENIED,    DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("POST",   "api run cancel",          "held run",        CONFLICT,  DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    # The pack failed already: nothing to cancel.
    ("POST",   "api pack cancel",         "pack",            CONFLICT,  DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    # Thresholds: lowering one (as here) applies at once; the change is recorded either way (201).
    ("POST",   "api connector thresholds", "ERP nightly",    CREATED,   DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    # A file connector has no source to test (409: its state refuses it); a pull is queued (202).
    ("POST",   "api connector test",      "ERP nightly",     CONFLICT,  DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("POST",   "api connector pull",      "ERP nightly",     ACCEPTED,  DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("GET",    "api threshold changes",   None,              OK,        OK,        OK,        OK,        OK,            DENIED,    DENIED),
    ("GET",    "api threshold change",    "pending thresholds", OK,     HIDDEN,    OK,        OK,        OK,            DENIED,    DENIED),
    ("POST",   "api threshold approve",   "pending thresholds", DENIED, DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    ("POST",   "api threshold reject",    "pending thresholds", OK,     DENIED,    DENIED,    DENIED,    DENIED,        DENIED,    DENIED),
    # The schema and its docs describe every endpoint: for users with a role only.
    ("GET",    "api schema",              None,              OK,        OK,        OK,        OK,        OK,            DENIED,    DENIED),
    ("GET",    "api docs",                None,              OK,        OK,        OK,        OK,        OK,            DENIED,    DENIED),
    # --- Health probes: public (load balancers sign in to nothing); they answer with states, never data. -------
    ("GET",    "health live",             None,              OK,        OK,        OK,        OK,        OK,            OK,        OK),
    ("GET",    "health ready",            None,              OK,        OK,        OK,        OK,        OK,            OK,        OK),
    ("POST",   "health ready",            None,              GET_ONLY,  GET_ONLY,  GET_ONLY,  GET_ONLY,  GET_ONLY,      GET_ONLY,  GET_ONLY),
    # --- Django admin: the admin role only (staff + model permissions). ----------------------------------
    ("GET",    "admin",                   None,              OK,        LOGIN,     LOGIN,     LOGIN,     LOGIN,         LOGIN,     LOGIN),
    ("GET",    "admin identities",        None,              OK,        LOGIN,     LOGIN,     LOGIN,     LOGIN,         LOGIN,     LOGIN),
    ("GET",    "admin applications",      None,              OK,        LOGIN,     LOGIN,     LOGIN,     LOGIN,         LOGIN,     LOGIN),
    ("GET",    "admin add application",   None,              OK,        LOGIN,     LOGIN,     LOGIN,     LOGIN,         LOGIN,     LOGIN),
    ("POST",   "admin add application",   None,              SAVED,     LOGIN,     LOGIN,     LOGIN,     LOGIN,         LOGIN,     LOGIN),
    ("GET",    "admin accounts",          None,              OK,        LOGIN,     LOGIN,     LOGIN,     LOGIN,         LOGIN,     LOGIN),
    ("GET",    "admin entitlements",      None,              OK,        LOGIN,     LOGIN,     LOGIN,     LOGIN,         LOGIN,     LOGIN),
    ("GET",    "admin grants",            None,              OK,        LOGIN,     LOGIN,     LOGIN,     LOGIN,         LOGIN,     LOGIN),
    ("GET",    "admin evidence events",   None,              OK,        LOGIN,     LOGIN,     LOGIN,     LOGIN,         LOGIN,     LOGIN),
    ("GET",    "admin verifications",     None,              OK,        LOGIN,     LOGIN,     LOGIN,     LOGIN,         LOGIN,     LOGIN),
    ("GET",    "admin connectors",        None,              OK,        LOGIN,     LOGIN,     LOGIN,     LOGIN,         LOGIN,     LOGIN),
    ("GET",    "admin runs",              None,              OK,        LOGIN,     LOGIN,     LOGIN,     LOGIN,         LOGIN,     LOGIN),
    ("GET",    "admin threshold changes", None,              OK,        LOGIN,     LOGIN,     LOGIN,     LOGIN,         LOGIN,     LOGIN),
    ("GET",    "admin users",             None,              OK,        LOGIN,     LOGIN,     LOGIN,     LOGIN,         LOGIN,     LOGIN),
    # Role permissions are defined in code (soxgov/roles.py), so nobody edits groups in admin.
    ("GET",    "admin groups",            None,              DENIED,    LOGIN,     LOGIN,     LOGIN,     LOGIN,         LOGIN,     LOGIN),
    # API tokens: listed (owner, prefix, dates; never the secret) and revoked, never created here: a token is
    # for its owner, who signs in for it. Failed sign-ins that count towards a lockout: cleared to unlock.
    ("GET",    "admin api tokens",        None,              OK,        LOGIN,     LOGIN,     LOGIN,     LOGIN,         LOGIN,     LOGIN),
    ("GET",    "admin add api token",     None,              DENIED,    LOGIN,     LOGIN,     LOGIN,     LOGIN,         LOGIN,     LOGIN),
    ("GET",    "admin login attempts",    None,              OK,        LOGIN,     LOGIN,     LOGIN,     LOGIN,         LOGIN,     LOGIN),
    ("GET",    "admin samples",           None,              OK,        LOGIN,     LOGIN,     LOGIN,     LOGIN,         LOGIN,     LOGIN),
]

ALL_ROWS = frozenset({"<every row the fixtures made>"})  # resolved in the test: more rows than the table names

# Which rows each persona sees in each list (page, htmx fragment and API alike). mallory and anonymous are
# refused (see MATRIX); the token sees what audrey sees.
FULL_SCOPE = ("alice", "oscar", "audrey")
VISIBLE = {
    # list          the full-scope roles see                                        rita sees
    "identities":   {**dict.fromkeys(FULL_SCOPE, frozenset({"rita", "bob", "carol", "bot", "alice identity", "oscar identity"})),
                     "rita": {"rita", "bob", "bot"}},
    "applications": {**dict.fromkeys(FULL_SCOPE, frozenset({"ERP", "CRM"})),                       "rita": {"CRM"}},
    "accounts":     {**dict.fromkeys(FULL_SCOPE, frozenset({"bob@ERP", "carol@ERP", "bot@ERP", "ghost@CRM"})),
                     "rita": {"bob@ERP", "bot@ERP", "ghost@CRM"}},
    "entitlements": {**dict.fromkeys(FULL_SCOPE, frozenset({"post", "view"})),                     "rita": {"view"}},
    "grants":       {**dict.fromkeys(FULL_SCOPE, frozenset({"bob@ERP/post", "carol@ERP/post", "bot@ERP/post", "ghost@CRM/view"})),
                     "rita": {"bob@ERP/post", "bot@ERP/post", "ghost@CRM/view"}},
    "evidence":     dict.fromkeys(FULL_SCOPE, ALL_ROWS),
    "exceptions":   dict.fromkeys(FULL_SCOPE, ALL_ROWS),
    # Reviewers hold the view permission on connectors and runs but have no row scope there: deny by default.
    "connectors":   {**dict.fromkeys(FULL_SCOPE, frozenset({"ERP nightly"})),                       "rita": set()},
    "runs":         {**dict.fromkeys(FULL_SCOPE, frozenset({"held run"})),                          "rita": set()},
    "threshold changes": {**dict.fromkeys(FULL_SCOPE, frozenset({"pending thresholds"})),          "rita": set()},
    "violations":   {**dict.fromkeys(FULL_SCOPE, frozenset({"bob violation", "carol violation"})), "rita": {"bob violation"}},
    "rules":        dict.fromkeys(FULL_SCOPE, frozenset({"SOD-1"})),
    "campaigns":    {**dict.fromkeys(FULL_SCOPE, frozenset({"campaign", "draft campaign"})),       "rita": {"campaign"}},
    "review items": {**dict.fromkeys(FULL_SCOPE, frozenset({"bob item", "bot item", "ghost item", "carol item"})),
                     "rita": {"bob item", "bot item", "ghost item"}},
    "remediation":  {**dict.fromkeys(FULL_SCOPE, frozenset({"ghost task"})),                       "rita": {"ghost task"}},
    "samples":      dict.fromkeys(FULL_SCOPE, frozenset({"sample"})),
}
# fmt: on

# Within SOXGOV_ANSWER_MAX_DAYS: an answer dated further out is refused.
SOON = (datetime.date.today() + datetime.timedelta(days=30)).isoformat()

# Request bodies for writes. Refusals must come from the access rules, before any body is looked at.

BODIES = {
    # Attested, so the sign-off meets the campaign's state (pending items: 409), not a missing confirmation.
    "api campaign sign-off": {"attest": True},
    "admin add application": {"name": "Matrix App", "criticality": "low", "description": "", "_save": "Save"},
    "api identities": {"kind": "human", "employee_id": "E99", "display_name": "Eve Intruder"},
    "api identity": {"kind": "human", "employee_id": "E2", "display_name": "Bob Renamed"},
    "api applications": {"name": "Shadow IT"},
    "api application": {"name": "CRM Renamed"},
    "api accounts": {"account_id": "eve"},
    "api account": {"account_id": "ghost-renamed"},
    "api entitlements": {"entitlement_id": "X", "name": "Everything"},
    "api entitlement": {"name": "View renamed"},
    "api events": {"action": "forged.event", "payload": {}},
    "api event": {"action": "forged.event"},
    "api verifications": {"status": "intact"},
    "api verification": {"status": "broken"},
    "api packs": lambda world: {"campaign": world["objects"]["campaign"].pk},
    "api pack": {"status": "done", "sha256": "0" * 64},
    "api signing keys": {"fingerprint": "SHA256:" + "0" * 64, "public_key": "0" * 64},
    "api signing key": {"retired_at": None},
    "api connectors": {"name": "Rogue feed", "kind": "access_file"},
    "api connector": {"enabled": False},
    "connector add": {"name": ""},
    "connector edit": {"name": ""},
    "api run": {"status": "applied"},
    "api run approve": {"reason": "looks fine"},
    "api run reject": {"reason": "looks wrong"},
    "api run cancel": {"reason": "stuck"},
    "api pack cancel": {"reason": "stuck"},
    "import cancel": {"reason": "stuck"},
    "evidence pack cancel": {"reason": "stuck"},
    "import upload": {"kind": "access"},
    "api runs": {"kind": "access"},
    "import approve": {"reason": "looks fine"},
    "import reject": {"reason": "looks wrong"},
    "threshold approve": {"reason": "looks fine"},
    "threshold reject": {"reason": "not now"},
    "api connector thresholds": {"deletion_threshold_percent": 5, "reason": "stricter"},
    "api threshold approve": {"reason": "looks fine"},
    "api threshold reject": {"reason": "not now"},
    "sod rule create": {"code": ""},
    "sod rule edit": {"code": "SOD-1"},
    "sod mitigate": lambda world: {
        "control": "Monthly review of vendor master changes",
        "description": "AP manager reviews every vendor change report.",
        "owner": world["objects"]["rita"].pk,
        "frequency": "monthly",
        "expires_on": SOON,
    },
    "sod accept": {"justification": "Small team; reviewed monthly.", "expires_on": SOON},
    "sod approve": {"note": "ok"},
    "sod reject": {"note": "no"},
    "api sod rules": {"code": "X"},
    "api sod rule": {"name": "Renamed rule"},
    "api sod violation": {"status": "resolved"},
    "api sod violations": {"status": "open"},
    "api sod mitigate": lambda world: {
        "control": "Monthly review of vendor master changes",
        "description": "AP manager reviews every vendor change report.",
        "owner": world["objects"]["rita"].pk,
        "frequency": "monthly",
        "expires_on": SOON,
    },
    "api sod request acceptance": {"justification": "Small team.", "expires_on": SOON},
    "api sod approve": {"note": "ok"},
    "api sod reject": {"note": "no"},
    "api sod acceptance": {"status": "approved"},
    "api sod checks": {"trigger": "manual"},
    "reviews decide": lambda world: {
        "action": "certify",
        "item": [world["objects"]["bob item"].pk],
        "comment": "mitigated by the monthly review",
    },
    "review decision change": {"action": "certify", "comment": "revoked by mistake: the CRM team uses it"},
    "reviews delegate": lambda world: {
        "item": [world["objects"]["bob item"].pk],
        "to_user": "alice",
        "reason": "on leave",
    },
    "campaign create": {"name": ""},
    "campaign edit": {"name": ""},
    "api campaigns": {"name": "No dates"},
    "api campaign": {"name": "Renamed campaign"},
    # Bob's item is flagged (his SoD violation): certifying it needs a comment.
    "api review decide": lambda world: {
        "items": [world["objects"]["bob item"].pk],
        "action": "certify",
        "comment": "mitigated by the monthly review",
    },
    "api review delegate": lambda world: {
        "items": [world["objects"]["bob item"].pk],
        "to_user": "alice",
        "reason": "on leave",
    },
    "api review item": {"status": "certified"},
    "remediation update": {"ticket": "CHG-1", "notes": "queued with IT"},
    "remediation close": {"proof": ""},
    "exception act": {"text": "looked at it"},
    "api exception comment": {"text": "looked at it"},
    "api exception assign": {"owner": "oscar"},
    "api exception mitigate": {"control": "weekly log review", "until": SOON},
    "api exception accept": {"justification": "shared mailbox", "until": SOON},
    "api exception reject": {"note": "not justified"},
    "api exception close": {"proof": "disabled in CRM, see IAM-7"},
    "api remediation close": {"proof": "Removed by hand", "ticket": "CHG-2"},
    "samples": lambda world: {
        "kind": "decisions",
        "campaign": world["objects"]["campaign"].pk,
        "seed": "matrix",
    },
    "api samples": lambda world: {
        "kind": "decisions",
        "campaign": world["objects"]["campaign"].pk,
        "seed": "api",
    },
    "api sample": {"seed": "changed"},
    "api sod what-if": lambda world: {
        "identity": world["objects"]["bob"].pk,
        "entitlements": [world["objects"]["view"].pk],
    },
}


@pytest.fixture(scope="module")
def web():
    """One test client for the module: building a client's handler (the middleware chain) is the slow part.
    Each request signs in afresh through ``sign_in``."""
    return Client()


@pytest.fixture
def client(db, web):
    web.logout()
    return web


@pytest.fixture(scope="module")
def built_world(module_transaction):
    """The world, written once for the module (about a second of setup per test otherwise)."""
    with module_transaction():
        return _build_world(build_company(), build_personas())


@pytest.fixture
def world(db, built_world):
    """The conftest company and personas, two evidence events, one verification, and the auditor's token. Each
    test gets its own copy of the objects: a test may change one in memory (``refresh_from_db``)."""
    # A worker and beat that just ran (written per test: the module may take longer than the 120 s they stay
    # fresh), so readiness answers 200 with a broker (REDIS_URL) as without one.
    Heartbeat.objects.create(source=health.WORKER, at=timezone.now())
    PeriodicTask.objects.create(
        name=health.HEARTBEAT_ENTRY,
        task="soxgov.heartbeat",
        interval=IntervalSchedule.objects.create(every=30, period=IntervalSchedule.SECONDS),
        last_run_at=timezone.now(),
    )
    return copy.deepcopy(built_world)


def _build_world(company, personas) -> dict:
    rita = company["identities"]["rita"]
    events = [
        event_record(
            actor=Actor.system("tests"), action="test.fixture.loaded", subject=rita, payload={"n": n}
        )
        for n in (1, 2)
    ]
    accounts = {
        name: company["accounts"][key]
        for name, key in [
            ("bob@ERP", "bob_erp"),
            ("carol@ERP", "carol_erp"),
            ("bot@ERP", "bot_erp"),
            ("ghost@CRM", "orphan_crm"),
        ]
    }
    post, view = company["entitlements"]["post"], company["entitlements"]["view"]
    erp = company["applications"]["erp"]
    objects = {
        **company["identities"],
        **{app.name: app for app in company["applications"].values()},
        **company["entitlements"],
        **accounts,
        **{
            f"{name}/{label}": Grant.objects.get(account=accounts[name], entitlement=entitlement)
            for name, label, entitlement in [
                ("bob@ERP", "post", post),
                ("carol@ERP", "post", post),
                ("bot@ERP", "post", post),
                ("ghost@CRM", "view", view),
            ]
        },
        "event 1": events[0],
        "event 2": events[1],
        "verification": ChainVerification.objects.create(requested_by_name="system:tests"),
        "ERP nightly": Connector.objects.create(
            name="ERP nightly",
            kind=Connector.Kind.ACCESS_FILE,
            application=erp,
            configuration={"path": "/x.csv"},
        ),
        "held run": ConnectorRun.objects.create(
            kind=ConnectorRun.Kind.ACCESS,
            application=erp,
            status=ConnectorRun.Status.HELD,
            source_name="erp.csv",
            source_path="/nonexistent/erp.csv",
            input_sha256="0" * 64,
            started_by=personas["alice"],
            started_by_name="alice",
            held_reason="would remove 40% of the grants",
        ),
    }
    objects["pending thresholds"] = ConnectorThresholdChange.objects.create(
        connector=objects["ERP nightly"],
        old_percent=10,
        old_count=20,
        proposed_percent=60,
        proposed_count=20,
        reason="the ERP is being cleaned up",
        proposed_by=personas["alice"],
        proposed_by_name="alice",
        proposed_at=objects["held run"].queued_at,
        status=ConnectorThresholdChange.Status.PENDING,
    )
    objects.update(_sod_world(company, personas))
    objects.update(_reviews_world(company, personas))
    from sod.hygiene import run_hygiene

    run_hygiene()  # the exception queue: the orphan account, and Bob's and Carol's SoD violations
    objects["ghost exception"] = ControlException.objects.get(kind="orphan_account")
    objects["pack"] = EvidencePack.objects.create(
        scope={"campaign": objects["campaign"].pk},
        scope_label="campaign Q4 review",
        status=EvidencePack.Status.FAILED,
        requested_by_name="system:tests",
        requested_at=objects["campaign"].created_at,
        error="disk full",
    )
    from evidence.signing import current_public_key, signing_key_register

    objects["signing key"], _ = signing_key_register(public_key_hex=current_public_key().public_key_hex)
    for exception in ControlException.objects.exclude(kind="orphan_account"):
        objects[f"exception {exception.key}"] = exception
    _, token = token_create(actor=Actor.system("tests"), reason="tests", user=personas["audrey"])
    # Every other evidence event the fixtures wrote gets a name too: lists compare names.
    named = {obj.pk for obj in objects.values() if isinstance(obj, EvidenceEvent)}
    for event in EvidenceEvent.objects.exclude(pk__in=named):
        objects[f"event #{event.sequence} {event.action}"] = event
    return {"objects": objects, "users": personas, "token": token}


def _sod_world(company, personas) -> dict:
    """Rule SOD-1 (post journal x view customers), a violation in Rita's scope (Bob) and one outside it (Carol),
    and a risk acceptance for Carol's that Oscar requested."""
    from django.utils import timezone

    now = timezone.now()
    rule = Rule.objects.create(
        code="SOD-1", name="Post journals and see customers", risk="high", side_count=2
    )
    for position, (name, entitlement) in enumerate(
        [("post", company["entitlements"]["post"]), ("view", company["entitlements"]["view"])]
    ):
        side = RuleSide.objects.create(rule=rule, name=name, position=position)
        RuleMember.objects.create(rule=rule, side=side, entitlement=entitlement)
    violations = {
        f"{name} violation": Violation.objects.create(
            rule=rule,
            identity=company["identities"][name],
            holder=company["identities"][name].display_name,
            opened_at=now,
            status_changed_at=now,
        )
        for name in ("bob", "carol")
    }
    acceptance = RiskAcceptance.objects.create(
        violation=violations["carol violation"],
        justification="Temporary cover during month-end.",
        expires_on=company["today"].replace(year=company["today"].year + 1),
        requested_by=personas["oscar"],
        requested_at=now,
    )
    check = Check.objects.create(trigger=Check.Trigger.MANUAL, actor_name="system:tests", started_at=now)
    # A control owner answers only as a person SOXGov knows: Oscar is an identity by his e-mail.
    oscar = Identity.objects.create(employee_id="E8", email="oscar@example.com", display_name="Oscar Owner")
    return {
        "SOD-1": rule,
        **violations,
        "pending acceptance": acceptance,
        "check": check,
        "oscar identity": oscar,
    }


def _reviews_world(company, personas) -> dict:
    """A launched campaign over ERP and CRM routed to managers (Rita gets Bob's, the bot's and the orphan's
    items; Carol has no manager and ERP is hers, so her item goes to the fallback, Alice), and a draft."""
    import datetime as dt

    from reviews.services import campaign_launch, decide

    today = company["today"]
    # A fallback reviewer needs an identity (so their own access can be kept from them).
    personas["alice"].identity = Identity.objects.create(
        employee_id="E0", email="alice@example.com", display_name="Alice Admin"
    )
    personas["alice"].save(update_fields=["identity"])
    fields = {
        "start_on": today,
        "due_on": today + dt.timedelta(days=14),
        "fallback_reviewer": personas["alice"],
        "created_by": personas["alice"],
    }
    campaign = Campaign.objects.create(name="Q4 review", **fields)
    campaign.applications.set(company["applications"].values())
    campaign_launch(campaign_id=campaign.pk, user=personas["alice"])
    draft = Campaign.objects.create(name="Q1 review", **fields)
    items = {i.account_key: i for i in ReviewItem.objects.filter(campaign=campaign)}
    decide(item_ids=[items["ghost"].pk], user=personas["rita"], certify=False, comment="nobody owns it")
    from reviews.samples import sample_draw

    sample = sample_draw(user=personas["audrey"], kind="decisions", campaign_id=campaign.pk, seed="fixture")
    return {
        "sample": sample,
        "launch event": EvidenceEvent.objects.get(action="review.campaign.launched"),
        "ghost revoked event": EvidenceEvent.objects.get(action="review.item.revoked"),
        "ghost task event": EvidenceEvent.objects.get(action="remediation.task.opened"),
        "decision": Decision.objects.get(),
        "ghost task": RemediationTask.objects.get(),
        "campaign": campaign,
        "draft campaign": draft,
        "bob item": items["bob"],
        "bot item": items["svc-ledger"],
        "ghost item": items["ghost"],
        "carol item": items["carol"],
        "alice identity": personas["alice"].identity,
    }


def sign_in(client, persona: str, world) -> dict:
    """Make ``client`` act as ``persona``; returns the headers its requests must carry."""
    client.logout()
    if persona == "audrey_token":
        return {"Authorization": f"Token {world['token']}"}
    if persona != "anonymous":
        client.force_login(world["users"][persona])
    return {}


def url_of(route: str, target, world) -> str:
    _, url_name, model = ROUTES[route]
    if model is None:
        return reverse(url_name)
    obj = world["objects"][target]
    assert isinstance(obj, model), f"{target!r} is not a {model.__name__}"
    return reverse(url_name, args=[obj.pk, *EXTRA_ARGS.get(route, ())])


def send(client, method: str, route: str, url: str, headers: dict, world):
    surface = ROUTES[route][0]
    if surface == FRAGMENT:
        headers = {**headers, "HX-Request": "true"}
    body = BODIES.get(route, {})
    if callable(body):
        body = body(world)
    if method == "GET":
        return client.get(url, headers=headers)
    if surface == API:
        return client.generic(
            method, url, data=json.dumps(body), content_type="application/json", headers=headers
        )
    return client.post(url, body, headers=headers)


def outcome(response):
    # htmx requests are redirected with HX-Redirect (a whole-page navigation), pages with a 302.
    location = response.get("HX-Redirect") or (
        response["Location"] if response.status_code in (301, 302) else ""
    )
    if location:
        # Object ids differ between runs; the matrix names the page, not the row.
        path = re.sub(r"/\d+/", "/<id>/", urlparse(location).path)
        return LOGIN if path.endswith("/login/") else to(path)
    return response.status_code


@functools.cache
def _fingerprint_sql() -> str:
    tracked = (Identity, Application, Account, Entitlement, Grant)
    tables = [m._meta.db_table for m in tracked] + [m.history.model._meta.db_table for m in tracked]
    tables += [Connector._meta.db_table, EvidenceEvent._meta.db_table, ConnectorRun._meta.db_table]
    tables += [ConnectorThresholdChange._meta.db_table]
    tables += [ChainVerification._meta.db_table, Check._meta.db_table, SigningKey._meta.db_table]
    for model in (Rule, Violation, Mitigation, RiskAcceptance):
        tables += [model._meta.db_table, model.history.model._meta.db_table]
    tables += [
        model._meta.db_table
        for model in (Campaign, ReviewItem, Decision, SignOff, Notification, RemediationTask, AuditSample)
    ]
    tables += [ControlException._meta.db_table, ControlException.history.model._meta.db_table]
    tables += [ExceptionNote._meta.db_table]
    counts = ", ".join(f"(SELECT COUNT(*) FROM {table})" for table in tables)
    queued = f"(SELECT COUNT(*) FROM {ChainVerification._meta.db_table} WHERE status = 'queued')"
    held = f"(SELECT COUNT(*) FROM {ConnectorRun._meta.db_table} WHERE status = 'held')"
    decided = f"(SELECT COUNT(*) FROM {ReviewItem._meta.db_table} WHERE status <> 'pending')"
    campaigns = f"(SELECT COUNT(*) FROM {Campaign._meta.db_table} WHERE status <> 'draft')"
    closed = f"(SELECT COUNT(*) FROM {RemediationTask._meta.db_table} WHERE status <> 'open')"
    pending = f"(SELECT COUNT(*) FROM {ConnectorThresholdChange._meta.db_table} WHERE status = 'pending')"
    gates = (
        f"(SELECT SUM(deletion_threshold_percent + deletion_threshold_count) FROM {Connector._meta.db_table})"
    )
    return f"SELECT {counts}, {queued}, {held}, {decided}, {campaigns}, {closed}, {pending}, {gates}"


def fingerprint() -> tuple:
    """Anything a write could change, in one query: row counts, history rows (every save adds one), evidence
    events, verification and run states."""
    with connection.cursor() as cursor:
        cursor.execute(_fingerprint_sql())
        return cursor.fetchone()


def check_body(route: str, response) -> None:
    """A 200 answers in the surface's own shape: full pages have <html>, fragments never do, the API is JSON."""
    surface = ROUTES[route][0]
    content = "" if response.streaming else response.content.decode()  # a streamed download: its headers say
    if surface in (PAGE, ADMIN):
        assert "<html" in content, f"{route} should render a full page"
    elif surface == SCHEMA:
        assert content.startswith("openapi: 3.") or "swagger-ui" in content, (
            f"{route} answered {content[:80]}"
        )
    elif surface == HEALTH:
        assert response.json()["status"] == "ok", f"{route} answered {response.content[:200]}"
    elif surface == DOWNLOAD:
        assert response["Content-Disposition"].startswith("attachment;"), f"{route} is not a download"
    elif surface == FRAGMENT:
        assert "<html" not in content, f"{route} should render only the results fragment"
        assert "<table" in content and 'class="filters"' not in content
    else:
        assert response["Content-Type"].startswith("application/json")
        data = response.json()
        # A list, an object, or the answer of an action (what-if, a preview, how many were decided).
        answers = ("results", "id", "sequence", "rules_hit", "total", "decided", "delegated")
        assert any(key in data for key in answers), f"{route} answered {data}"


def _matrix_params():
    for method, route, target, *cells in MATRIX:
        assert len(cells) == len(PERSONAS), f"row {method} {route} {target} has {len(cells)} cells"
        expected = dict(zip(PERSONAS, cells, strict=True))
        yield pytest.param(
            method, route, target, expected, id=f"{method} {route}" + (f" {target}" if target else "")
        )


@pytest.mark.parametrize(("method", "route", "target", "expected"), list(_matrix_params()))
def test_access_matrix(world, client, method, route, target, expected):
    url = url_of(route, target, world)
    actual = {}
    for persona in PERSONAS:
        headers = sign_in(client, persona, world)
        before = fingerprint()
        response = send(client, method, route, url, headers, world)
        actual[persona] = outcome(response)
        if response.status_code == 200 and "HX-Redirect" not in response:
            check_body(route, response)
        if method == "GET" or actual[persona] in (DENIED, HIDDEN, READ_ONLY, INVALID, CONFLICT, LOGIN):
            assert fingerprint() == before, f"{persona}'s {method} {route} changed the database"
    assert actual == expected


# Named URLs that are deliberately not in the matrix: sign-in and -out (single sign-on's start and callback too,
# tests/test_sso.py), the API root and token endpoint (which hold no data).
OUTSIDE_THE_MATRIX = {
    "login",
    "logout",
    "oidc_authentication_init",
    "oidc_authentication_callback",
    "saml_login",
    "saml_acs",
    "saml_metadata",
    "api-root",
    "api_token",
}


def _project_url_names(patterns=None, namespace=""):
    from django.urls import URLResolver, get_resolver

    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            if pattern.app_name != "admin":
                prefix = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
                yield from _project_url_names(pattern.url_patterns, prefix)
        elif pattern.name:
            yield namespace + pattern.name


def test_every_route_has_a_row_and_every_page_and_api_endpoint_is_a_route():
    """A new view must join the matrix: that is what keeps access control from drifting view by view."""
    assert {route for _, route, *_ in MATRIX} == set(ROUTES)
    covered = {url_name for surface, url_name, _ in ROUTES.values() if surface != ADMIN}
    assert set(_project_url_names()) - OUTSIDE_THE_MATRIX == covered


def _names(world, model) -> dict:
    return {obj.pk: name for name, obj in world["objects"].items() if isinstance(obj, model)}


LISTS = {
    # list: (page route, API route, model)
    "identities": ("identities", "api identities", Identity),
    "applications": ("applications", "api applications", Application),
    "accounts": ("accounts", "api accounts", Account),
    "entitlements": ("entitlements", "api entitlements", Entitlement),
    "grants": (None, "api grants", Grant),
    "evidence": ("evidence", "api events", EvidenceEvent),
    "connectors": (None, "api connectors", Connector),
    "runs": ("imports", "api runs", ConnectorRun),
    "threshold changes": (None, "api threshold changes", ConnectorThresholdChange),
    "violations": ("sod violations", "api sod violations", Violation),
    "rules": ("sod rules", "api sod rules", Rule),
    "campaigns": ("campaigns", "api campaigns", Campaign),
    "review items": (None, "api review items", ReviewItem),
    "remediation": ("remediation", "api remediation", RemediationTask),
    "exceptions": ("exceptions", "api exceptions", ControlException),
    "samples": ("samples", "api samples", AuditSample),
}


@pytest.mark.parametrize(
    ("listing", "persona", "expected"),
    [
        pytest.param(listing, persona, rows, id=f"{persona} lists {listing}")
        for listing, by_persona in VISIBLE.items()
        for persona, rows in by_persona.items()
    ],
)
def test_each_list_shows_exactly_the_rows_in_the_personas_scope(world, client, listing, persona, expected):
    page_route, api_route, model = LISTS[listing]
    names = _names(world, model)
    headers = sign_in(client, persona, world)
    seen = {}
    if page_route is not None:
        url = url_of(page_route, None, world)
        for surface, extra in (("page", {}), ("htmx fragment", {"HX-Request": "true"})):
            page = client.get(url, headers={**headers, **extra}).context["page"]
            seen[surface] = {names[o.pk] for o in page.items}
    key = "sequence" if model is EvidenceEvent else "id"
    results = client.get(url_of(api_route, None, world), headers=headers).json()["results"]
    seen["api"] = {names[row[key]] for row in results}
    if expected is ALL_ROWS:
        expected = set(names.values())
        assert len(expected) > 1
    assert seen == dict.fromkeys(seen, expected)


def test_reviewer_home_counts_only_her_scope(world, client):
    client.force_login(world["users"]["rita"])
    response = client.get(reverse("home"))
    assert response.context["counts"] == {
        "Identities": 3,
        "Applications": 1,
        "Accounts": 3,
        "Entitlements": 1,
        "Grants": 3,
    }
    assert response.context["orphans"] == 1
    assert response.context["live_violations"] == 1  # Bob's; Carol's is outside her scope


def test_user_without_role_sees_no_counts_on_home(world, client):
    client.force_login(world["users"]["mallory"])
    response = client.get(reverse("home"))
    assert response.context["counts"] == {}
    assert response.context["orphans"] is None
    assert response.context["live_violations"] is None
    assert "no SOXGov role" in response.content.decode()


def test_admin_verify_request_queues_a_verification_evidences_it_and_the_worker_runs_it(
    world, client, django_capture_on_commit_callbacks
):
    alice = world["users"]["alice"]
    client.force_login(alice)
    before = set(ChainVerification.objects.values_list("pk", flat=True))
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client.post(reverse("evidence:verification_create"))
    assert response.status_code == 302 and response["Location"] == reverse("evidence:integrity")
    [verification] = ChainVerification.objects.exclude(pk__in=before)
    assert verification.requested_by == alice
    requested = EvidenceEvent.objects.get(action="evidence.verification.requested")
    assert (requested.subject_type, requested.subject_id, requested.actor_user) == (
        "evidence.chainverification",
        str(verification.pk),
        alice,
    )
    # The task was enqueued after commit (run eagerly here) and recorded its result.
    assert len(callbacks) == 1
    verification.refresh_from_db()
    assert verification.status == ChainVerification.Status.INTACT
    assert verification.event_count == requested.sequence
    assert EvidenceEvent.objects.filter(
        action="evidence.chain.verified", subject_id=str(verification.pk)
    ).exists()


def test_another_admin_approves_a_held_run_and_the_decision_is_evidenced(world, client, make_user):
    run = world["objects"]["held run"]
    ada = make_user("ada", Role.ADMIN)
    client.force_login(ada)
    response = client.post(
        reverse("entitlements:run_approve", args=[run.pk]), {"reason": "expected clean-up"}
    )
    assert response.status_code == 302
    run.refresh_from_db()
    assert (run.status, run.decided_by, run.decision_reason) == (
        ConnectorRun.Status.APPROVED,
        ada,
        "expected clean-up",
    )
    event = EvidenceEvent.objects.get(action="import.run.approved")
    assert (event.subject_id, event.actor_user) == (str(run.pk), ada)


def test_admin_saves_in_django_admin_are_evidenced(world, client):
    client.force_login(world["users"]["alice"])
    client.post(reverse("admin:entitlements_application_add"), BODIES["admin add application"])
    app = Application.objects.get(name="Matrix App")
    event = EvidenceEvent.objects.get(action="config.application.created")
    assert event.subject_id == str(app.pk) and event.actor_user == world["users"]["alice"]


def test_admin_role_cannot_make_a_user_superuser_or_hand_out_permissions(world, client):
    """Otherwise the admin role could escalate past every rule in soxgov/access.py."""
    from django.contrib.auth.models import Permission

    mallory = world["users"]["mallory"]
    client.force_login(world["users"]["alice"])
    delete_evidence = Permission.objects.get(codename="delete_evidenceevent")
    response = client.post(
        reverse("admin:soxgov_user_change", args=[mallory.pk]),
        {
            "username": "mallory",
            "email": "mallory@example.com",
            "is_active": "on",
            "is_staff": "on",
            "is_superuser": "on",
            "user_permissions": [delete_evidence.pk],
            "date_joined_0": "2024-01-01",
            "date_joined_1": "00:00:00",
            "_save": "Save",
        },
    )
    assert response.status_code == 302  # the rest of the change is saved
    mallory.refresh_from_db()
    assert mallory.is_staff
    assert not mallory.is_superuser
    assert not mallory.user_permissions.exists()
