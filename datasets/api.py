"""The dataset-request endpoints of the API: the HTML flow's every step, through the same selectors and services.

Who sees what is ``selectors.requests_for_user`` (requester, the stewards of its sites, admins; anybody else 404).
Acting on a visible request one may not act on answers 403 with the reason, as on the pages: submitting or
withdrawing somebody else's request, deciding another site or one's own request, downloading somebody else's
dataset. Each action names its rule in ``datasets.rules`` (``object_rules``), asked by the base viewset when the
action reaches its object, and by the service again. A request in the wrong state answers 409. The approval
document is a multipart upload checked by the service (type by content, size), so the API accepts exactly what
the form accepts.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from django.http import FileResponse, Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.exceptions import ApiError
from accounts.api.fields import StrictCharField, StrictIntegerField
from accounts.api.parsers import LimitedJSONParser, RequestTooLarge
from accounts.api.schema import ErrorSerializer
from accounts.api.viewsets import RestrictedGenericViewSet
from accounts.models import User
from datasets import rules, selectors, services
from datasets.choices import LegalBasis, OutputFormat, RequestState
from datasets.errors import DatasetError, DownloadRefused, InvalidTransition
from datasets.models import DatasetRequest, Extract, SiteReview
from datasets.services import MAX_REASON_CHARS, MAX_WINDOW_DAYS
from jobs.choices import JobState

SOURCE_KEY = r"[A-Za-z0-9_.-]+"


class LimitedMultiPartParser(MultiPartParser):
    """Multipart (the create call with its document): refused with 413 when the declared body is larger than a
    document at its limit plus the ordinary JSON limit, before anything is read."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict[str, Any] | None = None) -> Any:
        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        limit = int(settings.SOYANG_DATASET_MAX_UPLOAD_BYTES) + int(settings.SOYANG_API_MAX_BODY_BYTES)
        try:
            if declared and int(declared) > limit:
                raise RequestTooLarge()
        except ValueError:
            raise ValidationError("The Content-Length header is not a number.") from None
        return super().parse(stream, media_type, parser_context)


def _refused(exc: Exception) -> Exception:
    """A service's refusal as the API's error: 400 for bad input, 403 for a forbidden act, 409 for a wrong state."""
    if isinstance(exc, InvalidTransition):
        return ApiError(409, "conflict", str(exc))
    if isinstance(exc, DjangoValidationError):
        return ValidationError({"non_field_errors": [str(m) for m in exc.messages]})
    if isinstance(exc, DjangoPermissionDenied):
        return PermissionDenied(str(exc))
    return ApiError(409, "conflict", str(exc))


# --- serializers -------------------------------------------------------------------------------------------------


class TransitionSerializer(serializers.Serializer):
    from_state = serializers.CharField(allow_blank=True)
    to_state = serializers.CharField()
    actor = serializers.CharField(source="actor.username", allow_null=True, default=None)
    note = serializers.CharField(allow_blank=True)
    at = serializers.DateTimeField()


class ReviewSerializer(serializers.Serializer):
    source = serializers.CharField(source="source.key")
    site = serializers.CharField(source="source.name")
    projection_state = serializers.CharField(
        source="projection.state", help_text=f"The site's projection job: one of {', '.join(JobState.values)}."
    )
    decision = serializers.CharField()
    reviewer = serializers.CharField(source="reviewer.username", allow_null=True, default=None)
    reason = serializers.CharField(allow_blank=True)
    decided_at = serializers.DateTimeField(allow_null=True)
    approved_selection = serializers.SerializerMethodField()
    approved_days_before = serializers.SerializerMethodField()
    approved_days_after = serializers.SerializerMethodField()
    cohort_persons = serializers.SerializerMethodField(
        help_text="For the site's stewards (exact) and admins (perturbed, '<n' when hidden) only; else null."
    )
    projected_rows = serializers.SerializerMethodField(help_text="Rows per table, as cohort_persons.")
    counts_rule = serializers.SerializerMethodField(help_text="The rule the two above were shown under, in words.")
    projection_error = serializers.SerializerMethodField()

    def _counts_visible(self, review: SiteReview) -> bool:
        return bool(rules.can_see_review_counts(self.context["request"].user, review))

    def _counts(self, review: SiteReview) -> dict[str, Any]:
        return rules.review_counts_as_seen_by(self.context["request"].user, review) or {}

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_approved_selection(self, review: SiteReview) -> dict[str, list[str]]:
        return review.approved_selection()

    def get_approved_days_before(self, review: SiteReview) -> int:
        return review.approved_window()[0]

    def get_approved_days_after(self, review: SiteReview) -> int:
        return review.approved_window()[1]

    @extend_schema_field(serializers.JSONField(allow_null=True))
    def get_cohort_persons(self, review: SiteReview) -> int | str | None:
        value: int | str | None = self._counts(review).get("cohort_persons")
        return value

    @extend_schema_field(serializers.DictField(child=serializers.JSONField(), allow_null=True))
    def get_projected_rows(self, review: SiteReview) -> dict[str, int | str] | None:
        value: dict[str, int | str] | None = self._counts(review).get("projected_rows")
        return value

    def get_counts_rule(self, review: SiteReview) -> str:
        return str(self._counts(review).get("rule", ""))

    def get_projection_error(self, review: SiteReview) -> str:
        return review.projection_error if self._counts_visible(review) else ""


class ExtractSerializer(serializers.Serializer):
    source = serializers.CharField(source="source.key")
    state = serializers.CharField(help_text=f"The site's extraction job: one of {', '.join(JobState.values)}.")
    size_bytes = serializers.IntegerField(allow_null=True)
    sha256 = serializers.CharField(allow_blank=True, help_text="Of the plain zip you download.")
    download_count = serializers.IntegerField()
    max_downloads = serializers.IntegerField()
    expires_at = serializers.DateTimeField(allow_null=True)
    files_deleted_at = serializers.DateTimeField(
        allow_null=True, help_text="When its file was deleted (revocation, expiry, another site's failure)."
    )
    manifest = serializers.SerializerMethodField(
        help_text="As in the file: the cohort size as the portal shows it to the requester's role, the "
        "generalization applied for k-anonymity. The site's stewards and admins also get `stewards_only`: the exact "
        "cohort size and the persons suppressed."
    )

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_manifest(self, extract: Extract) -> dict[str, Any]:
        return rules.manifest_as_seen_by(self.context["request"].user, extract)


class DatasetRequestSerializer(serializers.ModelSerializer):
    definition = serializers.IntegerField(source="version.definition_id", read_only=True)
    version = serializers.IntegerField(source="version.number", read_only=True)
    requester = serializers.CharField(source="requester.username", read_only=True)
    state = serializers.CharField(read_only=True, help_text=f"One of: {', '.join(RequestState.values)}.")
    sites = serializers.SerializerMethodField()
    has_document = serializers.SerializerMethodField()

    class Meta:
        model = DatasetRequest
        fields = [
            "id",
            "state",
            "definition",
            "version",
            "project",
            "requester",
            "sites",
            "selection",
            "days_before",
            "days_after",
            "purpose",
            "legal_basis",
            "retention_days",
            "output_format",
            "has_document",
            "reason",
            "expires_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_sites(self, request: DatasetRequest) -> list[str]:
        return [s.key for s in request.sites.order_by("key")]

    def get_has_document(self, request: DatasetRequest) -> bool:
        return bool(request.document_path)


class DatasetRequestDetailSerializer(DatasetRequestSerializer):
    reviews = serializers.SerializerMethodField()
    extracts = serializers.SerializerMethodField()

    class Meta(DatasetRequestSerializer.Meta):
        fields = [*DatasetRequestSerializer.Meta.fields, "reviews", "extracts"]
        read_only_fields = fields

    @extend_schema_field(ReviewSerializer(many=True))
    def get_reviews(self, request: DatasetRequest) -> list[dict[str, Any]]:
        reviews = request.reviews.select_related("source", "reviewer", "request", "projection")
        return ReviewSerializer(reviews, many=True, context=self.context).data

    @extend_schema_field(ExtractSerializer(many=True))
    def get_extracts(self, request: DatasetRequest) -> list[dict[str, Any]]:
        return ExtractSerializer(request.extracts.select_related("source"), many=True, context=self.context).data


class DatasetRequestCreateSerializer(serializers.Serializer):
    """Multipart (with the document) or JSON (a draft without one; attach it before submitting is not offered
    by the API, so submit needs the multipart call). Numbers are accepted as form text in multipart."""

    definition = serializers.IntegerField(min_value=1, max_value=2**31 - 1, help_text="A definition of your project.")
    sites = serializers.ListField(
        child=StrictCharField(max_length=40, single_line=True),
        min_length=1,
        max_length=100,
        help_text="Keys of the project's sites to ask (see sources/).",
    )
    selection = serializers.JSONField(
        help_text='Tables and columns, e.g. {"person": ["year_of_birth"], "drug_exposure": ["drug_concept_id"]}.'
    )
    days_before = serializers.IntegerField(min_value=0, max_value=MAX_WINDOW_DAYS, default=365)
    days_after = serializers.IntegerField(min_value=0, max_value=MAX_WINDOW_DAYS, default=365)
    purpose = StrictCharField(max_length=5000)
    legal_basis = serializers.ChoiceField(choices=LegalBasis.choices)
    retention_days = serializers.IntegerField(min_value=1, max_value=365, default=7)
    output_format = serializers.ChoiceField(choices=OutputFormat.choices, default=OutputFormat.CSV)
    document = serializers.FileField(
        required=False, help_text="The IRB approval or data-use agreement: PDF, PNG or JPEG, size-limited."
    )
    submit = serializers.BooleanField(default=False, help_text="Submit at once (needs the document).")

    def validate_selection(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise serializers.ValidationError("The selection maps table names to lists of column names.")
        if not value:
            raise serializers.ValidationError("Choose at least one table.")
        return value

    def validate_purpose(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("State the purpose of the request.")
        return value


class ApproveSerializer(serializers.Serializer):
    selection = serializers.JSONField(
        required=False, help_text="Narrow to these tables and columns (a subset of the request's); omit to keep all."
    )
    days_before = StrictIntegerField(required=False, min_value=0, max_value=MAX_WINDOW_DAYS)
    days_after = StrictIntegerField(required=False, min_value=0, max_value=MAX_WINDOW_DAYS)
    reason = StrictCharField(required=False, allow_blank=True, max_length=MAX_REASON_CHARS, default="")

    def validate_selection(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise serializers.ValidationError("The selection maps table names to lists of column names.")
        if not value:
            raise serializers.ValidationError("Choose at least one table.")
        return value


class DatasetReasonSerializer(serializers.Serializer):
    reason = StrictCharField(max_length=MAX_REASON_CHARS)

    def validate_reason(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("Give the reason.")
        return value.strip()


class DatasetWithdrawSerializer(serializers.Serializer):
    reason = StrictCharField(
        required=False,
        allow_blank=True,
        max_length=MAX_REASON_CHARS,
        default="",
        help_text="Why you withdraw it (optional); the stewards of its sites read it.",
    )


# --- the viewset -------------------------------------------------------------------------------------------------


class StateFilterMixin:
    def filter_queryset(self, queryset: QuerySet) -> QuerySet:
        state = self.request.query_params.get("state")  # type: ignore[attr-defined]
        if state is not None:
            if state not in RequestState.values:
                raise ValidationError({"state": [f"Unknown state; one of {', '.join(RequestState.values)}."]})
            queryset = queryset.filter(state=state)
        return queryset


GONE = OpenApiResponse(ErrorSerializer, description="Not (or no longer) available: expired, used up, not ready.")
CONFLICT = OpenApiResponse(ErrorSerializer, description="The request is not in a state that allows this.")


def _review_action(verb: str, *, summary: str, request: type) -> Callable[[Callable[..., Any]], Any]:
    """A site's decision on a request, POST .../reviews/<site key>/<verb>: the route and schema both verbs share."""

    def decorate(view: Callable[..., Any]) -> Any:
        routed = action(
            detail=True,
            methods=["post"],
            url_path=rf"reviews/(?P<source>{SOURCE_KEY})/{verb}",
            url_name=f"review-{verb}",
        )(view)
        return extend_schema(
            summary=summary, request=request, responses={200: DatasetRequestDetailSerializer, 409: CONFLICT}
        )(routed)

    return decorate


@extend_schema_view(
    list=extend_schema(
        summary="Dataset requests you may see (yours; your sites' as a steward; all as an admin)",
        parameters=[OpenApiParameter("state", str, enum=RequestState.values, required=False)],
    ),
    retrieve=extend_schema(summary="One request with its per-site reviews and extracts"),
)
class DatasetRequestViewSet(
    StateFilterMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, RestrictedGenericViewSet
):
    model = DatasetRequest
    parser_classes = [LimitedJSONParser, LimitedMultiPartParser]
    action_needs = {
        "submit": "submit",
        "withdraw": "withdraw",
        "revoke": "revoke",
        "review_approve": "decide",
        "review_reject": "decide",
        "download": "download",
    }
    # A request in the wrong state is the service's 409, asked after these.
    object_rules = {
        "submit": rules.can_submit,
        "withdraw": rules.can_withdraw,
        "revoke": rules.can_revoke,
        "decide": rules.can_decide_review,
        "download": rules.can_download,
    }

    def restrict(self, user: User) -> QuerySet[DatasetRequest]:
        return selectors.requests_for_user(user).prefetch_related("sites")

    def get_serializer_class(self) -> type:
        return DatasetRequestDetailSerializer if self.action == "retrieve" else DatasetRequestSerializer

    def action_object(self) -> DatasetRequest | SiteReview | Extract:
        """The request; for a decision its review at the site named in the URL, for a download the site's extract
        (404 when the request asks no such site, or has no dataset of it)."""
        dataset_request = super().action_object()
        if self.need == "decide":
            review = dataset_request.reviews.select_related("source").filter(source__key=self.kwargs["source"]).first()
            if review is None:
                raise Http404("The request asks no site with this key.")
            review.request = dataset_request
            return review
        if self.need == "download":
            extract = (
                dataset_request.extracts.select_related("source").filter(source__key=self.kwargs["source"]).first()
            )
            if extract is None:
                raise Http404("No dataset of this site for the request.")
            extract.request = dataset_request
            return extract
        return dataset_request

    def _detail(self, dataset_request: DatasetRequest, code: int = status.HTTP_200_OK) -> Response:
        fresh = selectors.request_get_for_user(self.request.user, dataset_request.pk)
        return Response(DatasetRequestDetailSerializer(fresh, context=self.get_serializer_context()).data, status=code)

    @extend_schema(
        summary="Request a dataset (a draft, or submitted at once with submit=true)",
        request={
            "multipart/form-data": DatasetRequestCreateSerializer,
            "application/json": DatasetRequestCreateSerializer,
        },
        responses={201: DatasetRequestDetailSerializer},
    )
    def create(self, request: Request) -> Response:
        data = DatasetRequestCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        if values["submit"] and values.get("document") is None:
            raise ValidationError({"document": ["Attach the IRB approval or data-use agreement to submit."]})
        definition = selectors.definitions_requestable(request.user).filter(pk=values["definition"]).first()
        if definition is None:
            raise ValidationError({"definition": ["You may request datasets of no definition with this id."]})
        offered = {s.key: s for s in definition.project.sources.filter(is_active=True)}
        unknown = sorted({key for key in values["sites"] if key not in offered})
        if unknown:
            raise ValidationError({"sites": [f"Not an active site of the project: {', '.join(unknown[:10])}."]})
        try:
            dataset_request = services.request_create(
                requester=request.user,
                definition=definition,
                sites=[offered[key] for key in dict.fromkeys(values["sites"])],
                selection=values["selection"],
                days_before=values["days_before"],
                days_after=values["days_after"],
                purpose=values["purpose"],
                legal_basis=values["legal_basis"],
                retention_days=values["retention_days"],
                output_format=values["output_format"],
                document=values.get("document"),
                submit=values["submit"],
                ip_address=self.client_ip(),
            )
        except (DjangoValidationError, DjangoPermissionDenied, DatasetError) as exc:
            raise _refused(exc) from None
        return self._detail(dataset_request, status.HTTP_201_CREATED)

    @extend_schema(
        summary="Submit your draft: each site projects it for its stewards",
        request=None,
        responses={200: DatasetRequestDetailSerializer, 409: CONFLICT},
    )
    @action(detail=True, methods=["post"])
    def submit(self, request: Request, pk: int) -> Response:
        dataset_request = self.get_object()
        try:
            services.request_submit(request=dataset_request, user=request.user)
        except (DjangoValidationError, DatasetError) as exc:
            raise _refused(exc) from None
        return self._detail(dataset_request)

    def _decide(self, review: SiteReview, **decision: Any) -> Response:
        try:
            services.review_decide(review=review, steward=self.request.user, ip_address=self.client_ip(), **decision)
        except (DjangoValidationError, DjangoPermissionDenied, DatasetError) as exc:
            raise _refused(exc) from None
        return self._detail(review.request)

    @_review_action(
        "approve",
        summary="Approve for your site, optionally narrowing the columns or the window (the site's stewards)",
        request=ApproveSerializer,
    )
    def review_approve(self, request: Request, pk: int, source: str) -> Response:
        review = self.get_object()
        data = ApproveSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        return self._decide(
            review,
            approve=True,
            reason=values["reason"],
            narrowed_selection=values.get("selection"),
            narrowed_days_before=values.get("days_before"),
            narrowed_days_after=values.get("days_after"),
        )

    @_review_action(
        "reject",
        summary="Reject for your site with a reason (the site's stewards); the request is rejected",
        request=DatasetReasonSerializer,
    )
    def review_reject(self, request: Request, pk: int, source: str) -> Response:
        review = self.get_object()
        data = DatasetReasonSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return self._decide(review, approve=False, reason=data.validated_data["reason"])

    @extend_schema(
        summary="Revoke with a reason (a steward of one of its sites, or an admin); its files are deleted",
        request=DatasetReasonSerializer,
        responses={200: DatasetRequestDetailSerializer, 409: CONFLICT},
    )
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: int) -> Response:
        return self._close(request, body=DatasetReasonSerializer, service=services.request_revoke)

    @extend_schema(
        summary="Withdraw your request until the sites approve it (draft, submitted or under review)",
        request=DatasetWithdrawSerializer,
        responses={200: DatasetRequestDetailSerializer, 409: CONFLICT},
    )
    @action(detail=True, methods=["post"])
    def withdraw(self, request: Request, pk: int) -> Response:
        return self._close(request, body=DatasetWithdrawSerializer, service=services.request_withdraw)

    def _close(
        self, request: Request, *, body: type[serializers.Serializer], service: Callable[..., DatasetRequest]
    ) -> Response:
        """Revoke or withdraw (who may is the action's rule): the reason from the body, the service; its refusals
        in the error shape."""
        dataset_request = self.get_object()
        data = body(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            service(
                request=dataset_request,
                user=request.user,
                reason=data.validated_data["reason"],
                ip_address=self.client_ip(),
            )
        except (DjangoValidationError, DjangoPermissionDenied, DatasetError) as exc:
            raise _refused(exc) from None
        return self._detail(dataset_request)

    @extend_schema(summary="The request's timeline: every state change", responses=TransitionSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None)
    def timeline(self, request: Request, pk: int) -> Response:
        dataset_request = self.get_object()
        transitions = dataset_request.transitions.select_related("actor")
        return Response(TransitionSerializer(transitions, many=True).data)

    @extend_schema(
        summary="The approval document (looking at it is audited)",
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY, 410: GONE},
    )
    @action(detail=True, methods=["get"])
    def document(self, request: Request, pk: int) -> Any:
        dataset_request = self.get_object()
        try:
            path = services.document_viewed(request=dataset_request, user=request.user, ip_address=self.client_ip())
        except DownloadRefused as exc:
            raise ApiError(410, "gone", str(exc)) from None
        response = FileResponse(path.open("rb"), content_type="application/octet-stream")
        response["Content-Disposition"] = f'attachment; filename="request-{dataset_request.pk}-document{path.suffix}"'
        return response

    @extend_schema(
        summary="Download a site's dataset (the requester only; counted, limited and audited)",
        request=None,
        responses={(200, "application/zip"): OpenApiTypes.BINARY, 410: GONE},
    )
    @action(
        detail=True,
        methods=["post"],
        url_path=rf"extracts/(?P<source>{SOURCE_KEY})/download",
        url_name="download",
    )
    def download(self, request: Request, pk: int, source: str) -> Any:
        # A POST, as on the page: link prefetchers and scanners never use up one of the limited downloads.
        extract = self.get_object()
        try:
            data, filename = services.download_open(extract=extract, user=request.user, ip_address=self.client_ip())
        except DownloadRefused as exc:
            raise ApiError(410, "gone", str(exc)) from None
        except DjangoPermissionDenied as exc:
            raise PermissionDenied(str(exc)) from None
        return FileResponse(io.BytesIO(data), as_attachment=True, filename=filename, content_type="application/zip")
