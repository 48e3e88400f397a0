"""Domain exceptions every layer may raise (soxgov is the foundation, so evidence, entitlements, sod and reviews
all can). Pages show their messages; the API's one exception handler (soxgov/api/errors.py) gives the status."""

from django.core.exceptions import ValidationError


class Conflict(ValidationError):
    """The request is valid, but the object's state forbids it (a campaign already launched, a run no longer
    held, an item someone else decided first): HTTP 409. A ValidationError, so a page or a form that shows a
    service's refusals shows this one too."""
