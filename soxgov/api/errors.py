"""One path from a service's refusal to an HTTP answer, for every API view (``EXCEPTION_HANDLER`` in settings).

Services raise domain exceptions and know nothing of HTTP; views never inspect a result to pick a status:

- ``soxgov.exceptions.Conflict`` (valid request, the object's state forbids it): 409 ``{"detail": "..."}``
- Django ``ValidationError``: 400, ``{"field": ["..."]}`` when it names fields, else ``{"detail": ["..."]}``
- Django ``PermissionDenied``: 403 ``{"detail": "..."}``
- ``ObjectDoesNotExist`` / ``Http404``: 404 ``{"detail": "..."}``

Anything else goes to DRF's own handler (its APIExceptions, or a 500).
"""

from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions, serializers, status
from rest_framework.views import exception_handler as drf_exception_handler

from soxgov.exceptions import Conflict


class ConflictError(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The object's state does not allow this."
    default_code = "conflict"


def as_api_exception(exc: Exception) -> Exception:
    """The DRF exception that answers ``exc`` (``exc`` itself when DRF knows it already)."""
    if isinstance(exc, Conflict):
        return ConflictError(" ".join(exc.messages))
    if isinstance(exc, DjangoValidationError):
        if hasattr(exc, "error_dict"):
            return exceptions.ValidationError(exc.message_dict)
        return exceptions.ValidationError({"detail": exc.messages})
    if isinstance(exc, ObjectDoesNotExist):
        return exceptions.NotFound(str(exc) or None)
    return exc


def exception_handler(exc, context):
    # DRF's handler turns Django's PermissionDenied and Http404 (with their messages) into 403 and 404.
    return drf_exception_handler(as_api_exception(exc), context)


class ErrorSerializer(serializers.Serializer):
    """The body of a 403, 404 or 409."""

    detail = serializers.CharField(help_text="What was refused and why.")
