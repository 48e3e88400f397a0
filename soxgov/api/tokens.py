"""``POST /api/auth/token/``: a username and password in, a new API token out (shown this once)."""

from django.contrib.auth import authenticate
from django.contrib.auth.signals import user_logged_in
from django.db import transaction
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from evidence.services import Actor
from soxgov.tokens import token_create


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField()
    password = serializers.CharField(trim_whitespace=False, write_only=True, style={"input_type": "password"})


class TokenObtainView(APIView):
    # The credentials are in the body: no session or token is looked at (and so no CSRF check either).
    authentication_classes = ()
    permission_classes = (AllowAny,)
    # Form bodies too (`curl -d username=... -d password=...`): two flat fields, nothing a form could garble.
    parser_classes = (JSONParser, FormParser, MultiPartParser)
    serializer_class = TokenRequestSerializer

    @extend_schema(
        responses=inline_serializer(
            "IssuedToken",
            {
                "token": serializers.CharField(),
                "prefix": serializers.CharField(),
                "expiry": serializers.DateTimeField(),
            },
        )
    )
    def post(self, request):
        data = TokenRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        # Django's authenticate() with the real request: django-axes counts failures and refuses a locked-out
        # sign-in there, and the failure (or lockout) is evidenced through Django's signals.
        user = authenticate(
            request._request,
            username=data.validated_data["username"],
            password=data.validated_data["password"],
        )
        if user is None:
            raise serializers.ValidationError(
                {"non_field_errors": ["Unable to sign in with the username and password given."]}
            )
        with transaction.atomic():
            token, key = token_create(
                actor=Actor.for_user(user), user=user, reason="signed in at the token endpoint"
            )
            user_logged_in.send(sender=user.__class__, request=request._request, user=user)
        return Response({"token": key, "prefix": token.prefix, "expiry": token.expiry})
