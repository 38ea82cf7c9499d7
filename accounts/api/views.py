"""API endpoints of the accounts app: personal tokens, projects and their memberships, the pending-account
queue. Thin: restricted querysets from the selectors, decisions by the services (which audit them)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import approvals, selectors, services
from accounts.api import tokens
from accounts.api.authentication import ApiTokenAuthentication
from accounts.api.serializers import (
    AccountApproveSerializer,
    MembershipSerializer,
    PendingAccountSerializer,
    ProjectSerializer,
    ProjectTitleSerializer,
    ReasonSerializer,
    TokenCreatedSerializer,
    TokenCreateSerializer,
    TokenSerializer,
)
from accounts.api.viewsets import RestrictedGenericViewSet, RestrictedReadOnlyViewSet
from accounts.choices import MembershipStatus
from accounts.models import ApiToken, Organisation, Project, ProjectMembership, User

# --- tokens --------------------------------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="Your personal API tokens"),
    retrieve=extend_schema(summary="One of your tokens"),
    destroy=extend_schema(summary="Revoke one of your tokens", responses={204: None}),
)
class TokenViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, RestrictedGenericViewSet
):
    model = ApiToken
    serializer_class = TokenSerializer
    # One's own tokens only, nothing of the role: a steward without TOTP may still list and revoke them (a token
    # made here does nothing else for it until TOTP is enrolled).
    mfa_exempt = True

    def restrict(self, user: User) -> QuerySet[ApiToken]:
        return tokens.tokens_of_user(user)

    @extend_schema(
        summary="Make a token (browser session only); its secret is in this answer and never again",
        request=TokenCreateSerializer,
        responses={201: TokenCreatedSerializer},
    )
    def create(self, request: Request) -> Response:
        # A token must not mint tokens: a leaked one would otherwise outlive its expiry by renewing itself.
        if isinstance(request.successful_authenticator, ApiTokenAuthentication):
            raise PermissionDenied("Tokens are made in the browser (API tokens page), not with another token.")
        data = TokenCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        new = tokens.token_create(
            user=request.user,
            name=data.validated_data["name"],
            days=data.validated_data["days"],
            ip_address=self.client_ip(),
        )
        new.token.secret = new.secret  # for the serializer only; never saved
        return Response(TokenCreatedSerializer(new.token).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: ApiToken) -> None:
        tokens.token_revoke(token=instance, by=self.request.user, ip_address=self.client_ip())


# --- projects and memberships --------------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="Projects you may see (member, steward of their site, or admin)"),
    retrieve=extend_schema(summary="One project"),
)
class ProjectViewSet(RestrictedReadOnlyViewSet):
    model = Project
    serializer_class = ProjectSerializer
    filterset_fields = ["title"]

    def restrict(self, user: User) -> QuerySet[Project]:
        return (
            selectors.project_visible_q(user)
            .select_related("principal_investigator")
            .prefetch_related("sources")
            .order_by("title", "id")
        )

    @extend_schema(
        summary="Running projects you may ask to join (titles only)", responses=ProjectTitleSerializer(many=True)
    )
    @action(detail=False, methods=["get"], serializer_class=ProjectTitleSerializer)
    def joinable(self, request: Request) -> Response:
        queryset = selectors.project_join_candidates(request.user).order_by("title", "id")
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(ProjectTitleSerializer(page, many=True).data)


class MembershipViewSet(RestrictedGenericViewSet):
    """``projects/{project_pk}/memberships/``: the project's members (and, for its owner and stewards, the
    requests to decide); POST asks to join; approve / reject / revoke decide on one membership."""

    model = ProjectMembership
    serializer_class = MembershipSerializer

    def restrict(self, user: User) -> QuerySet[ProjectMembership]:
        project = selectors.project_get_for_user(user=user, pk=self.kwargs["project_pk"])
        memberships = project.memberships.select_related("user", "owner_approved_by", "steward_approved_by")
        if not (approvals.is_project_owner(user, project) or approvals.is_project_steward(user, project)):
            # Members see who is in the project, not who asked to be.
            memberships = memberships.filter(status=MembershipStatus.APPROVED)
        return memberships.order_by("requested_at", "id")

    @extend_schema(summary="Members of a project you may see (and the requests, for its deciders)")
    def list(self, request: Request, project_pk: int) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(MembershipSerializer(page, many=True).data)

    @extend_schema(
        summary="Ask to join a running project (its owner and a steward of its site then decide)",
        request=None,
        responses={201: MembershipSerializer},
    )
    def create(self, request: Request, project_pk: int) -> Response:
        project = selectors.project_joinable_get(user=request.user, pk=project_pk)
        membership = services.membership_request(project=project, user=request.user, ip_address=self.client_ip())
        return Response(MembershipSerializer(membership).data, status=status.HTTP_201_CREATED)

    def _decided(self, membership: ProjectMembership) -> Response:
        membership.refresh_from_db()
        return Response(MembershipSerializer(membership).data)

    def action_object(self) -> ProjectMembership:
        """The membership to decide on, reached through its project as on the decision pages: the list shows
        members only the approved memberships, yet deciding on a request of a project one sees is refused by the
        service (403, with the rules of ``accounts.approvals``), not answered 404."""
        membership = selectors.membership_get_for_decider(user=self.request.user, pk=self.kwargs["pk"])
        if membership.project_id != int(self.kwargs["project_pk"]):
            raise Http404("No such request.")
        return membership

    @extend_schema(
        summary="Give your approval (the owner's step or the steward's)", request=None, responses=MembershipSerializer
    )
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, project_pk: int, pk: int) -> Response:
        membership = self.get_object()
        services.membership_approve(membership=membership, approver=request.user, ip_address=self.client_ip())
        return self._decided(membership)

    @extend_schema(summary="Reject a request, with a reason", request=ReasonSerializer, responses=MembershipSerializer)
    @action(detail=True, methods=["post"])
    def reject(self, request: Request, project_pk: int, pk: int) -> Response:
        membership = self.get_object()
        reason = _reason(request)
        services.membership_reject(
            membership=membership, rejecter=request.user, reason=reason, ip_address=self.client_ip()
        )
        return self._decided(membership)

    @extend_schema(
        summary="End an approved membership, with a reason", request=ReasonSerializer, responses=MembershipSerializer
    )
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, project_pk: int, pk: int) -> Response:
        membership = self.get_object()
        reason = _reason(request)
        services.membership_revoke(
            membership=membership, revoked_by=request.user, reason=reason, ip_address=self.client_ip()
        )
        return self._decided(membership)


def _reason(request: Request) -> str:
    data = ReasonSerializer(data=request.data)
    data.is_valid(raise_exception=True)
    return data.validated_data["reason"]


# --- the pending-account queue -------------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="Accounts waiting for approval (admins; stewards for their organisation)"),
    retrieve=extend_schema(summary="One pending account"),
)
class PendingAccountViewSet(RestrictedReadOnlyViewSet):
    model = User
    serializer_class = PendingAccountSerializer

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        # As on the approvals page: for anybody else the queue does not exist.
        if not approvals.can_review_accounts(request.user):
            raise Http404("No such page.")

    def restrict(self, user: User) -> QuerySet[User]:
        return selectors.accounts_pending_review(user).select_related("organisation")

    @extend_schema(
        summary="Approve with an organisation and a role (needs a verified e-mail address)",
        request=AccountApproveSerializer,
        responses={200: PendingAccountSerializer, 403: OpenApiResponse(description="Not yours to approve so.")},
    )
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: int) -> Response:
        account = self.get_object()
        data = AccountApproveSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        organisation = Organisation.objects.filter(name=data.validated_data["organisation"]).first()
        if organisation is None:
            raise ValidationError({"organisation": ["There is no organisation of that name."]})
        services.account_approve(
            user=account,
            organisation=organisation,
            role=data.validated_data["role"],
            decided_by=request.user,
            ip_address=self.client_ip(),
        )
        return Response(PendingAccountSerializer(_with_verified(account)).data)

    @extend_schema(
        summary="Reject with a reason the person is told", request=ReasonSerializer, responses=PendingAccountSerializer
    )
    @action(detail=True, methods=["post"])
    def reject(self, request: Request, pk: int) -> Response:
        account = self.get_object()
        reason = _reason(request)
        services.account_reject(user=account, reason=reason, decided_by=request.user, ip_address=self.client_ip())
        return Response(PendingAccountSerializer(_with_verified(account)).data)


def _with_verified(account: User) -> User:
    from allauth.account.models import EmailAddress

    account.refresh_from_db()
    account.email_verified = EmailAddress.objects.filter(user=account, verified=True).exists()
    return account
