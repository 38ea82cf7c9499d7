"""API views of the cohorts app. Every object is reached through the selectors the HTML views use, so the two
answer alike: others' objects 404, anonymous 401, results only through ``run_request_result_for_user``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import django_filters
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.exceptions import ApiError
from accounts.api.schema import ErrorSerializer
from accounts.api.viewsets import CHANGE, RestrictedGenericViewSet, RestrictedReadOnlyViewSet, refusing
from accounts.models import Project, User
from accounts.permissions import is_admin, projects_for_user, user_can
from cohorts.api.serializers import (
    ComparisonCreateSerializer,
    DefinitionCreateSerializer,
    DefinitionDetailSerializer,
    DefinitionImportSerializer,
    DefinitionSerializer,
    RunCreateSerializer,
    RunRequestSerializer,
    RunResultSerializer,
    RunSetCreateSerializer,
    SharedSerializer,
    ShareSerializer,
    SourceSerializer,
    VersionCreateSerializer,
    VersionSerializer,
)
from cohorts.definitions import selectors as definition_selectors
from cohorts.definitions import services as definition_services
from cohorts.definitions.models import CohortDefinition
from cohorts.expression import ExpressionError
from cohorts.runs import comparison_selectors, comparison_services
from cohorts.runs import selectors as run_selectors
from cohorts.runs import services as run_services
from cohorts.runs.choices import RunKind
from cohorts.runs.errors import BrokerUnavailable, RunLimitReached, RunNotCancellable, SourceNotReady
from cohorts.runs.models import Comparison, RunRequest
from warehouse.models import Source


def _expression_refused(exc: ExpressionError) -> ValidationError:
    """The parser's (path, message) pairs as field errors under ``expression.<path>``."""
    fields: dict[str, list[str]] = {}
    for path, message in exc.errors[:100]:
        fields.setdefault(f"expression.{path}" if path else "expression", []).append(message)
    return ValidationError(fields)


# --- sources -----------------------------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="Sites you may count on (through your running projects), with their privacy rule"),
    retrieve=extend_schema(summary="One site"),
)
class SourceViewSet(RestrictedReadOnlyViewSet):
    model = Source
    serializer_class = SourceSerializer
    filterset_fields = ["key"]

    def restrict(self, user: User) -> QuerySet[Source]:
        sources = Source.objects.select_related("organisation")
        if is_admin(user):
            return sources.order_by("key")
        allowed = Source.objects.filter(projects__in=projects_for_user(user)).values("pk")
        return sources.filter(pk__in=allowed).order_by("key")


# --- definitions -------------------------------------------------------------------------------------------------


class DefinitionFilter(django_filters.FilterSet):
    project = django_filters.NumberFilter(field_name="project_id")
    search = django_filters.CharFilter(method="filter_search", label="Text in the name or description")
    owner = django_filters.CharFilter(field_name="owner__username", lookup_expr="iexact")

    class Meta:
        model = CohortDefinition
        fields = ["project", "search", "owner"]

    def filter_search(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        from django.db.models import Q

        value = value.strip()[:200]
        return queryset.filter(Q(name__icontains=value) | Q(description__icontains=value)) if value else queryset


@extend_schema_view(
    list=extend_schema(summary="Cohort definitions you may see"),
    retrieve=extend_schema(summary="One definition with its latest expression"),
)
class DefinitionViewSet(RestrictedReadOnlyViewSet):
    model = CohortDefinition
    filterset_class = DefinitionFilter
    action_needs = {"share": "share"}
    object_rules = {
        # Saving a version (POST versions/) changes the definition: the owner's, and admins'.
        CHANGE: refusing(
            lambda user, definition: user_can(user, "change_cohortdefinition", definition),
            "Only the owner saves new versions; import a copy to change it.",
        ),
    }

    def restrict(self, user: User) -> QuerySet[CohortDefinition]:
        # The list page's selector: permission-filtered, with the latest version number annotated (no N+1).
        return definition_selectors.definitions_listed_for_user(user)

    def get_serializer_class(self) -> type:
        return DefinitionDetailSerializer if self.action == "retrieve" else DefinitionSerializer

    def action_object(self) -> CohortDefinition:
        definition = super().action_object()
        if self.need == "share":
            # Without the share permission the definition is as good as missing, as on the page (404, not 403).
            return definition_selectors.definition_get_for_user(
                self.request.user, definition.pk, codename="share_cohortdefinition"
            )
        return definition

    def _project(self, project_id: int | None) -> Project | None:
        if project_id is None:
            return None
        project = projects_for_user(self.request.user).filter(pk=project_id).first()
        if project is None:
            raise ValidationError({"project": ["You work in no project with this id."]})
        return project

    def _create(self, serializer_class: type) -> Response:
        if not definition_selectors.definition_create_allowed(self.request.user):
            raise PermissionDenied("Your role does not create cohort definitions.")
        data = serializer_class(data=self.request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        try:
            definition = definition_services.definition_create_for_user(
                owner=self.request.user,
                name=values["name"],
                description=values["description"],
                project=self._project(values["project"]),
                expression=values["expression"],
            )
        except ExpressionError as exc:
            raise _expression_refused(exc) from None
        body = DefinitionDetailSerializer(definition, context=self.get_serializer_context()).data
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Create a definition from an expression (researchers, stewards, admins)",
        request=DefinitionCreateSerializer,
        responses={201: DefinitionDetailSerializer},
    )
    def create(self, request: Request) -> Response:
        return self._create(DefinitionCreateSerializer)

    @extend_schema(
        summary="Import an ATLAS JSON export as a new definition",
        request=DefinitionImportSerializer,
        responses={201: DefinitionDetailSerializer},
    )
    @action(detail=False, methods=["post"], url_path="import")
    def import_atlas(self, request: Request) -> Response:
        return self._create(DefinitionImportSerializer)

    @extend_schema(
        summary="The ATLAS JSON of a version, exactly as saved (the latest unless ?version=n)",
        parameters=[OpenApiParameter("version", OpenApiTypes.INT, required=False)],
        responses={200: OpenApiTypes.OBJECT},
    )
    @action(detail=True, methods=["get"])
    def export(self, request: Request, pk: int) -> Response:
        definition = self.get_object()
        number = request.query_params.get("version")
        version = (
            definition_selectors.definition_version_get(definition, number)
            if number is not None
            else definition.versions.order_by("-number").first()
        )
        if version is None:
            raise Http404("No such version.")
        return Response(version.expression)

    @extend_schema(summary="Every version, newest first", responses=VersionSerializer(many=True), methods=["GET"])
    @extend_schema(
        summary="Save a new version (the owner)",
        request=VersionCreateSerializer,
        responses={201: VersionSerializer},
        methods=["POST"],
    )
    @action(detail=True, methods=["get", "post"], serializer_class=VersionSerializer)
    def versions(self, request: Request, pk: int) -> Response:
        definition = self.get_object()
        if request.method == "GET":
            page = self.paginate_queryset(definition_selectors.definition_versions(definition))
            return self.get_paginated_response(VersionSerializer(page, many=True).data)
        data = VersionCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            version = definition_services.definition_save_version(
                definition=definition,
                expression=data.validated_data["expression"],
                author=request.user,
                note=data.validated_data["note"],
            )
        except ExpressionError as exc:
            raise _expression_refused(exc) from None
        return Response(VersionSerializer(version).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Share with a project you work in, or one person (needs the share permission)",
        request=ShareSerializer,
        responses={200: SharedSerializer},
    )
    @action(detail=True, methods=["post"])
    def share(self, request: Request, pk: int) -> Response:
        definition = self.get_object()
        data = ShareSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if "project" in data.validated_data:
            project = (
                definition_selectors.share_candidates(request.user, definition)["projects"]
                .filter(pk=data.validated_data["project"])
                .first()
            )
            if project is None:
                raise ValidationError({"project": ["Choose a project you work in (the definition's own, if any)."]})
            definition_services.definition_share(
                definition=definition, by=request.user, to_project=project, ip_address=self.client_ip()
            )
        else:
            # One message for unknown and not-allowed people: the API must not tell which user names exist.
            recipient = User.objects.filter(username=data.validated_data["username"].strip()).first()
            if recipient is None or recipient.pk == request.user.pk:
                raise ValidationError({"username": ["No such person can receive this definition."]})
            try:
                definition_services.definition_share(
                    definition=definition, by=request.user, to_user=recipient, ip_address=self.client_ip()
                )
            except DjangoValidationError:
                raise ValidationError({"username": ["No such person can receive this definition."]}) from None
        shares = definition_selectors.definition_shares(definition)
        return Response(
            {"projects": [p.pk for p in shares["projects"]], "users": [u.username for u in shares["users"]]}
        )


# --- runs --------------------------------------------------------------------------------------------------------


class RunFilter(django_filters.FilterSet):
    definition = django_filters.NumberFilter(field_name="definition_id")
    kind = django_filters.ChoiceFilter(choices=[(k.value, k.label) for k in RunKind])

    class Meta:
        model = RunRequest
        fields = ["definition", "kind"]


@contextmanager
def _count_refusals() -> Iterator[None]:
    """The services' refusals to start a count, as API answers: the user's limit 429, no broker 503, a site not
    ready 400 on ``sources``."""
    try:
        yield
    except RunLimitReached as exc:
        raise ApiError(429, "run_limit", str(exc)) from None
    except BrokerUnavailable as exc:
        raise ApiError(503, "service_unavailable", str(exc)) from None
    except SourceNotReady as exc:
        raise ValidationError({"sources": [str(exc)]}) from None


def _result(request: Request, run_request: RunRequest) -> dict[str, Any]:
    result = run_selectors.run_request_result_for_user(request.user, run_request)
    result["can_cancel"] = run_request.requested_by_id == request.user.pk and not (
        result["finished"] or result["cancelled"]
    )
    return result


@extend_schema_view(list=extend_schema(summary="Your counts, newest first"))
class RunViewSet(mixins.ListModelMixin, RestrictedGenericViewSet):
    model = RunRequest
    serializer_class = RunRequestSerializer
    filterset_class = RunFilter
    action_needs = {"cancel": "cancel"}
    object_rules = {
        "cancel": refusing(
            lambda user, run_request: run_request.requested_by_id == user.pk,
            "Only the person who asked for a count can cancel it.",
        ),
    }

    def restrict(self, user: User) -> QuerySet[RunRequest]:
        return run_selectors.run_requests_for_user(user)

    def action_object(self) -> RunRequest:
        # Not only the caller's own requests: a count of a definition shared with them is visible, as on the page.
        return run_selectors.run_request_get_for_user(self.request.user, self.kwargs["pk"])

    @extend_schema(
        summary="Start a count, attrition or demographics of a definition's latest version on chosen sites",
        request=RunCreateSerializer,
        responses={
            201: RunResultSerializer,
            503: OpenApiResponse(ErrorSerializer, description="The task queue is not reachable."),
        },
    )
    def create(self, request: Request) -> Response:
        data = RunCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        definition = definition_selectors.definition_get_for_user(
            request.user, values["definition"], codename=definition_selectors.RUN
        )
        offered = {s.key: s for s in run_selectors.sources_for_user_and_definition(request.user, definition)}
        unknown = sorted({key for key in values["sources"] if key not in offered})
        if unknown:
            raise ValidationError(
                {
                    "sources": [
                        f"You cannot count this definition on: {', '.join(unknown[:10])}. A site is offered once "
                        "your project may count on it and its data is loaded (manage.py load_omop) or its existing "
                        "CDM attached (manage.py attach_source KEY)."
                    ]
                }
            )
        version = definition.latest_version()
        if version is None:
            raise Http404("This definition has no version to run.")
        sources = [offered[key] for key in dict.fromkeys(values["sources"])]
        with _count_refusals():
            run_request = run_services.run_request_create(
                user=request.user, version=version, sources=sources, kind=values["kind"]
            )
        return Response(_result(request, run_request), status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Count a set of definitions together (a study's cohorts): one count per definition, one pass per site",
        request=RunSetCreateSerializer,
        responses={
            201: RunResultSerializer(many=True),
            503: OpenApiResponse(ErrorSerializer, description="The task queue is not reachable."),
        },
    )
    @action(detail=False, methods=["post"], url_path="set")
    def create_set(self, request: Request) -> Response:
        data = RunSetCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        keys = list(dict.fromkeys(values["sources"]))
        versions, sources, refused = [], {}, []
        for definition_id in dict.fromkeys(values["definitions"]):
            definition = definition_selectors.definition_get_for_user(
                request.user, definition_id, codename=definition_selectors.RUN
            )
            offered = {s.key: s for s in run_selectors.sources_for_user_and_definition(request.user, definition)}
            missing = [key for key in keys if key not in offered]
            if missing:
                refused.append(f"definition {definition.pk}: {', '.join(missing[:10])}")
                continue
            version = definition.latest_version()
            if version is None:
                refused.append(f"definition {definition.pk}: no version to count")
                continue
            versions.append(version)
            sources.update({key: offered[key] for key in keys})
        if refused:
            raise ValidationError(
                {"sources": [f"You cannot count every definition on every site chosen: {'; '.join(refused[:20])}."]}
            )
        with _count_refusals():
            run_requests = run_services.run_set_create(
                user=request.user, versions=versions, sources=[sources[key] for key in keys], kind=values["kind"]
            )
        return Response([_result(request, r) for r in run_requests], status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Compare 2-4 definitions: persons in every combination of their cohorts, per site and merged",
        request=ComparisonCreateSerializer,
        responses={
            201: OpenApiTypes.OBJECT,
            503: OpenApiResponse(ErrorSerializer, description="The task queue is not reachable."),
        },
    )
    @action(detail=False, methods=["post"], url_path="compare")
    def create_comparison(self, request: Request) -> Response:
        """The same rules as the page (``cohorts.runs.comparison_views.comparison_new``): a definition the caller
        may not run is 404; a site where they may not count every definition, 400 on ``sources``. The answer is
        the comparison's state (``comparisons/{id}/`` follows it)."""
        data = ComparisonCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        ids = list(dict.fromkeys(values["definitions"]))
        if len(ids) != len(values["definitions"]):
            raise ValidationError({"definitions": ["Choose each definition once."]})
        definitions = [
            definition_selectors.definition_get_for_user(request.user, pk, codename=definition_selectors.RUN)
            for pk in ids
        ]
        offered = {s.key: s for s in run_selectors.sources_for_user_and_definitions(request.user, definitions)}
        keys = list(dict.fromkeys(values["sources"]))
        unknown = [key for key in keys if key not in offered]
        if unknown:
            raise ValidationError(
                {"sources": [f"You cannot count every one of these definitions on: {', '.join(unknown[:10])}."]}
            )
        versions = [d.latest_version() for d in definitions]
        if any(version is None for version in versions):
            raise ValidationError({"definitions": ["A definition has no version to compare."]})
        with _count_refusals():
            comparison = comparison_services.comparison_create(
                user=request.user, versions=versions, sources=[offered[key] for key in keys]
            )
        result = comparison_selectors.comparison_result_for_user(request.user, comparison)
        return Response(result, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="State and results of a count (privacy applied; reading a finished result is audited)",
        responses=RunResultSerializer,
    )
    def retrieve(self, request: Request, pk: int) -> Response:
        run_request = self.get_object()
        result = _result(request, run_request)
        if result["finished"]:
            run_services.run_result_viewed(request=run_request, user=request.user, ip_address=self.client_ip())
        return Response(result)

    @extend_schema(
        summary="Cancel your count",
        request=None,
        responses={200: RunResultSerializer, 409: OpenApiResponse(ErrorSerializer, description="Already finished.")},
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: int) -> Response:
        run_request = self.get_object()
        try:
            run_services.run_request_cancel(request=run_request, user=request.user)
        except RunNotCancellable as exc:
            raise ApiError(409, "conflict", str(exc)) from None
        return Response(_result(request, run_request))


@extend_schema_view(retrieve=extend_schema(summary="State and protected result of your comparison"))
class ComparisonViewSet(RestrictedGenericViewSet):
    """Your comparisons (started with ``runs/compare/``): each is its requester's alone, visible while they may
    count every one of its definitions on one of its sites (``cohorts.runs.comparison_selectors``); anybody else's
    answers 404 as a missing one."""

    model = Comparison
    serializer_class = ComparisonCreateSerializer  # the schema's; answers are the protected result itself
    action_needs = {"cancel": "cancel"}
    # Reaching a comparison already needs being its requester (404 otherwise); the rule says so for the write.
    object_rules = {
        "cancel": refusing(
            lambda user, comparison: comparison.requested_by_id == user.pk,
            "Only the person who asked for a comparison can cancel it.",
        ),
    }

    def restrict(self, user: User) -> QuerySet[Comparison]:
        return Comparison.objects.filter(requested_by=user) if user.is_authenticated else Comparison.objects.none()

    def action_object(self) -> Comparison:
        return comparison_selectors.comparison_get_for_user(self.request.user, self.kwargs["pk"])

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def retrieve(self, request: Request, pk: int) -> Response:
        comparison = self.get_object()
        result = comparison_selectors.comparison_result_for_user(request.user, comparison)
        if result["finished"]:
            comparison_services.comparison_viewed(comparison=comparison, user=request.user, ip_address=self.client_ip())
        return Response(result)

    @extend_schema(
        summary="Cancel your comparison",
        request=None,
        responses={200: OpenApiTypes.OBJECT, 409: OpenApiResponse(ErrorSerializer, description="Already finished.")},
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: int) -> Response:
        comparison = self.get_object()
        try:
            comparison_services.comparison_cancel(comparison=comparison, user=request.user)
        except RunNotCancellable as exc:
            raise ApiError(409, "conflict", str(exc)) from None
        return Response(comparison_selectors.comparison_result_for_user(request.user, comparison))
