"""Drafting a campaign: create one or change a draft, from keyword fields, for the page (CampaignForm's cleaned
data) and the API (the serializer's validated data) alike. One set of rules, every problem named by field;
each save is evidenced. Launch and what follows are in reviews.services."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from entitlements.models import Identity
from evidence.services import Actor, event_record
from reviews.models import Campaign
from reviews.scoping import reviewers_without_identity
from reviews.selectors import may_review
from reviews.services import campaign_scope
from soxgov import access
from soxgov.exceptions import Conflict

#: What an admin sets on a draft; everything else is the campaign's lifecycle.
CAMPAIGN_FIELDS = (
    "name",
    "description",
    "kind",
    "applications",
    "min_criticality",
    "privileged_only",
    "identity_kinds",
    "departments",
    "routing",
    "named_reviewer",
    "fallback_reviewer",
    "start_on",
    "due_on",
    "reminder_every_days",
    "escalate_after_days",
    "escalate_to",
    "recurrence",
)


def _campaign_problems(campaign: Campaign) -> dict:
    """What is wrong with a draft's values, by field: the same rules for the page and the API."""
    problems = {}
    for name in ("identity_kinds", "departments"):
        value = getattr(campaign, name)
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            problems[name] = "A list of strings."
    unknown = (
        sorted(set(campaign.identity_kinds) - set(Identity.Kind.values))
        if "identity_kinds" not in problems
        else []
    )
    if unknown:
        problems["identity_kinds"] = f"Unknown kind {unknown[0]!r}: one of {', '.join(Identity.Kind.values)}."
    for name in ("named_reviewer", "fallback_reviewer"):
        person = getattr(campaign, name)
        if person is not None and not may_review(person):
            problems[name] = f"{person.display_name} does not review access (no reviewer role)."
    if campaign.routing == Campaign.Routing.NAMED and campaign.named_reviewer is None:
        problems.setdefault("named_reviewer", "Named routing needs a named reviewer.")
    if campaign.start_on and campaign.due_on and campaign.due_on < campaign.start_on:
        problems["due_on"] = "The due date must not be before the start date."
    return {
        **problems,
        **{k: v for k, v in reviewers_without_identity(campaign).items() if k not in problems},
    }


def campaign_save(*, user, campaign_id: int | None = None, **fields) -> Campaign:
    """Create a draft campaign (no ``campaign_id``) or change a draft, from keyword ``fields`` (CAMPAIGN_FIELDS;
    ``applications`` an iterable of Application, reviewers User or None). Fields not given keep their values (a
    new campaign's: the model's defaults). Every problem is refused at once, by field; evidenced."""
    creating = campaign_id is None
    access.require(user, Campaign, access.ADD if creating else access.CHANGE)
    unknown = sorted(set(fields) - set(CAMPAIGN_FIELDS))
    if unknown:
        raise ValidationError({name: "Not a campaign field." for name in unknown})
    applications = fields.pop("applications", None)
    with transaction.atomic():
        campaign = Campaign() if creating else Campaign.objects.select_for_update().get(pk=campaign_id)
        if campaign.status != Campaign.Status.DRAFT:
            raise Conflict("Only a draft campaign can be changed.")
        for name, value in fields.items():
            setattr(campaign, name, value)
        if creating:
            campaign.created_by = user
        problems = _campaign_problems(campaign)
        try:
            campaign.full_clean(exclude=[*problems, "created_by"], validate_constraints=False)
        except ValidationError as exc:
            problems.update(exc.message_dict)
        if problems:
            raise ValidationError(problems)
        campaign.save()
        if applications is not None:
            campaign.applications.set(applications)
        event_record(
            actor=Actor.for_user(user),
            action="review.campaign.created" if creating else "review.campaign.changed",
            subject=campaign,
            payload={"name": campaign.name, "kind": campaign.kind, **campaign_scope(campaign)},
        )
    return campaign
