"""The OpenAPI schema's view of errors: every operation documents the answers soxgov/api/errors.py gives.

One shared body for 403, 404 and 409 (``ErrorSerializer``: ``{"detail": "..."}``) and one for 400
(``ValidationErrorSerializer``: field name -> messages, or ``detail`` -> messages), added to each operation
where it can happen unless the operation documents that status itself.
"""

from drf_spectacular import openapi
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.permissions import AllowAny

from soxgov.api.errors import ErrorSerializer

_WRITES = ("POST", "PUT", "PATCH", "DELETE")


class ValidationErrorSerializer(serializers.Serializer):
    """The body of a 400: each refused field (a body field or a query parameter) with its messages; problems
    that belong to no single field under ``detail``."""

    detail = serializers.ListField(child=serializers.CharField(), required=False)


class ValidationErrorExtension(OpenApiSerializerExtension):
    target_class = ValidationErrorSerializer

    def map_serializer(self, auto_schema, direction):
        messages = {"type": "array", "items": {"type": "string"}}
        return {
            "type": "object",
            "description": "Field (or query parameter) name -> what is wrong with it; `detail` when no single "
            "field is to blame.",
            "properties": {"detail": messages},
            "additionalProperties": messages,
        }


_ERRORS = {
    "400": (
        "Refused input: the body or a query parameter, each named with what is wrong.",
        ValidationErrorSerializer,
    ),
    "403": ("Not signed in, or not allowed to do this (including deciding one's own case).", ErrorSerializer),
    "404": ("No such object, or none this user may see.", ErrorSerializer),
    "409": ("The request is valid, but the object's state forbids it now.", ErrorSerializer),
}


class AutoSchema(openapi.AutoSchema):
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for code in self._error_codes():
            if code not in responses:
                description, body = _ERRORS[code]
                responses[code] = self._get_response_for_code(
                    OpenApiResponse(response=body, description=description), code, direction=direction
                )
        return responses

    def _error_codes(self) -> list[str]:
        codes = []
        if self.method in ("POST", "PUT", "PATCH") or self._is_list_view():
            codes.append("400")  # a body, or the filters and page_size of a list
        guarded = not all(isinstance(p, AllowAny) for p in self.view.get_permissions())
        if guarded:
            codes.append("403")
        if "{" in self.path:
            codes.append("404")
        if guarded and self.method in _WRITES:
            codes.append("409")  # every write but the token endpoint's changes an object with a state
        return codes
