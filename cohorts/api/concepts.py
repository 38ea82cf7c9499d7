"""API of the vocabulary (search, a concept with its hierarchy) and of concept sets (CRUD, resolved preview).

The vocabulary is public to every approved account; the counts per site inside its answers come through
``concept_counts_for_user`` only, as in search.json. Concept sets are reached through ``concept_sets_for_user``
and ``concept_set_get_for_user``: others' sets 404, a set one sees but may not change or delete 403.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.fields import StrictCharField, StrictIntegerField
from accounts.api.viewsets import CHANGE, DELETE, ObjectRule, RestrictedGenericViewSet
from accounts.models import User
from accounts.permissions import user_can
from cohorts.concept_sets import selectors as concept_set_selectors
from cohorts.concept_sets import services as concept_set_services
from cohorts.concept_sets.models import ConceptSet
from warehouse.vocabulary.hierarchy import concept_get, concept_hierarchy
from warehouse.vocabulary.search import INT_MAX, MAX_LIMIT, MAX_OFFSET, STANDARD_CHOICES, concept_as_dict


def _django_refusal(exc: DjangoValidationError) -> ValidationError:
    return ValidationError({"non_field_errors": [str(m) for m in exc.messages]})


# --- serializers (the JSON contract of search.json and <concept_id>.json) ----------------------------------------


class ConceptSerializer(serializers.Serializer):
    concept_id = serializers.IntegerField()
    concept_name = serializers.CharField()
    domain_id = serializers.CharField()
    vocabulary_id = serializers.CharField()
    concept_class_id = serializers.CharField()
    standard_concept = serializers.CharField(allow_null=True)
    concept_code = serializers.CharField()
    invalid_reason = serializers.CharField(allow_null=True)


class RelatedConceptSerializer(ConceptSerializer):
    min_levels_of_separation = serializers.IntegerField(required=False)


class SiteCountSerializer(serializers.Serializer):
    source = serializers.CharField()
    source_name = serializers.CharField()
    counted = serializers.BooleanField(help_text="Whether the site has counted its concepts yet.")
    records = serializers.JSONField(
        help_text="A number perturbed with its cell key, '<n' when under the site's threshold, 0 when the site "
        "counted and found none, null if the site has not counted yet."
    )
    persons = serializers.JSONField(help_text="As records (a cell of its own, with its own perturbation).")
    records_text = serializers.CharField(help_text="records in words for a table cell: the number, 'hidden (<n)', …")
    persons_text = serializers.CharField(help_text="persons in words, as records_text.")
    hidden = serializers.BooleanField(help_text="Whether either count is hidden.")
    rule = serializers.CharField(help_text="The site's rule that applied to these counts, in words.")


class MappingSerializer(serializers.Serializer):
    concept_id = serializers.IntegerField()
    concept_name = serializers.CharField()
    vocabulary_id = serializers.CharField()
    concept_code = serializers.CharField()


class CountedConceptSerializer(ConceptSerializer):
    counts = SiteCountSerializer(many=True, help_text="One entry per site you may see.")


class SearchHitSerializer(CountedConceptSerializer):
    maps_to = MappingSerializer(many=True, help_text="For a non-standard hit: the standard concepts it maps to.")
    mapped_from = MappingSerializer(
        many=True, help_text="For a code search: the source codes matching the text that map to this standard hit."
    )


# One object, not a list: the search answers search.json's payload even though it sits on the list route.
@extend_schema_serializer(many=False)
class SearchResultSerializer(serializers.Serializer):
    query = serializers.CharField()
    total_shown = serializers.IntegerField()
    results = SearchHitSerializer(many=True)
    limit = serializers.IntegerField()
    offset = serializers.IntegerField()
    count_legend = serializers.CharField(help_text="One line saying what the count cells mean.")


class ConceptDetailSerializer(CountedConceptSerializer):
    ancestors = RelatedConceptSerializer(many=True, help_text="Parents (one level).")
    descendants = RelatedConceptSerializer(many=True, help_text="Children (one level).")
    descendants_total = serializers.IntegerField()
    maps_to = RelatedConceptSerializer(many=True)
    mapped_from = RelatedConceptSerializer(many=True)


SEARCH_PARAMETERS = [
    OpenApiParameter("q", str, required=True, description="A concept name, code or id."),
    OpenApiParameter("domain", str, required=False),
    OpenApiParameter("vocabulary", str, required=False),
    OpenApiParameter("standard", str, enum=list(STANDARD_CHOICES), required=False),
    OpenApiParameter("invalid", bool, required=False, description="Include invalid concepts."),
    OpenApiParameter("limit", int, required=False, description=f"1 to {MAX_LIMIT} (25)."),
    OpenApiParameter("offset", int, required=False, description=f"0 to {MAX_OFFSET}."),
]


@extend_schema_view(
    list=extend_schema(
        summary="Search the vocabulary (as search.json), with counts per site you may see",
        parameters=SEARCH_PARAMETERS,
        responses=SearchResultSerializer,
    ),
    retrieve=extend_schema(
        summary="A concept with its parents, children, descendants total, mappings and counts",
        responses=ConceptDetailSerializer,
    ),
)
class ConceptViewSet(viewsets.ViewSet):
    # The vocabulary is not a per-object permission: any approved account reads it (the default permission).
    lookup_field = "concept_id"
    lookup_value_regex = r"[0-9]{1,10}"

    def list(self, request: Request) -> Response:
        try:
            payload = concept_set_selectors.concept_search_for_user(request.user, request.query_params)
        except ValueError as exc:
            raise ValidationError({"non_field_errors": [f"{str(exc)[:1].upper()}{str(exc)[1:]}."]}) from None
        return Response(payload)

    def retrieve(self, request: Request, concept_id: str) -> Response:
        number = int(concept_id)
        concept = concept_get(number) if number <= INT_MAX else None
        if concept is None:
            raise Http404(f"No concept with id {concept_id}.")
        counts = concept_set_selectors.concept_counts_for_user(request.user, [number])
        return Response({**concept_as_dict(concept), "counts": counts[number], **concept_hierarchy(number)})


# --- concept sets ------------------------------------------------------------------------------------------------


class ConceptSetSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", read_only=True)
    can_change = serializers.SerializerMethodField()

    class Meta:
        model = ConceptSet
        fields = [
            "id",
            "project",
            "name",
            "description",
            "expression",
            "created_by",
            "created_at",
            "updated_at",
            "can_change",
        ]
        read_only_fields = fields

    def get_can_change(self, concept_set: ConceptSet) -> bool:
        return user_can(self.context["request"].user, concept_set_selectors.CHANGE, concept_set)


class ConceptSetCreateSerializer(serializers.Serializer):
    project = StrictIntegerField(min_value=1, max_value=INT_MAX, help_text="A project where you are owner or analyst.")
    name = StrictCharField(max_length=200, single_line=True)
    description = StrictCharField(max_length=5000, required=False, allow_blank=True, default="")
    expression = serializers.JSONField(help_text='A Circe ConceptSet expression: {"items": [{"concept": ...}]}.')


class ConceptSetUpdateSerializer(serializers.Serializer):
    name = StrictCharField(max_length=200, single_line=True, required=False)
    description = StrictCharField(max_length=5000, required=False, allow_blank=True)
    expression = serializers.JSONField(required=False)


class ExpressionSerializer(serializers.Serializer):
    expression = serializers.JSONField(help_text='A Circe ConceptSet expression: {"items": [{"concept": ...}]}.')


class ResolvedSerializer(serializers.Serializer):
    size = serializers.IntegerField(help_text="How many concepts the set stands for.")
    concepts = ConceptSerializer(many=True, help_text=f"The first {concept_set_selectors.PREVIEW_SIZE}.")


def _holding(codename: str) -> ObjectRule:
    """The rule of changing or deleting a set one sees: ``concept_set_get_for_user`` holds it, with its refusal
    (PermissionDenied, so 403 with its reason)."""
    return lambda user, concept_set: concept_set_selectors.concept_set_get_for_user(user, concept_set.pk, codename)


@extend_schema_view(
    list=extend_schema(summary="Concept sets of your projects"),
    retrieve=extend_schema(summary="One concept set"),
    destroy=extend_schema(summary="Delete a concept set (its creator, admins)"),
)
class ConceptSetViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, RestrictedGenericViewSet
):
    model = ConceptSet
    serializer_class = ConceptSetSerializer
    filterset_fields = ["project"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    object_rules = {CHANGE: _holding(concept_set_selectors.CHANGE), DELETE: _holding(concept_set_selectors.DELETE)}

    def restrict(self, user: User) -> QuerySet[ConceptSet]:
        return concept_set_selectors.concept_sets_for_user(user)

    def _out(self, concept_set: ConceptSet, code: int = status.HTTP_200_OK) -> Response:
        return Response(ConceptSetSerializer(concept_set, context=self.get_serializer_context()).data, status=code)

    @extend_schema(
        summary="Save a concept set in a project of yours (owners and analysts)",
        request=ConceptSetCreateSerializer,
        responses={201: ConceptSetSerializer},
    )
    def create(self, request: Request) -> Response:
        projects = concept_set_selectors.concept_set_projects_for_user(request.user)
        if not projects.exists():
            raise PermissionDenied("You save concept sets in no project (owners and analysts of a project do).")
        data = ConceptSetCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        project = projects.filter(pk=values["project"]).first()
        if project is None:
            raise ValidationError({"project": ["Choose a project where you are owner or analyst."]})
        try:
            created = concept_set_services.concept_set_create(
                user=request.user,
                project=project,
                name=values["name"],
                description=values["description"],
                expression=values["expression"],
            )
        except DjangoValidationError as exc:
            raise _django_refusal(exc) from None
        return self._out(created, status.HTTP_201_CREATED)

    @extend_schema(
        summary="Change a concept set (the project's owners and analysts)",
        request=ConceptSetUpdateSerializer,
        responses={200: ConceptSetSerializer},
    )
    def partial_update(self, request: Request, pk: int) -> Response:
        concept_set = self.get_object()
        data = ConceptSetUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        try:
            concept_set_services.concept_set_update(
                user=request.user,
                concept_set=concept_set,
                name=values.get("name"),
                description=values.get("description"),
                expression=values.get("expression"),
            )
        except DjangoValidationError as exc:
            raise _django_refusal(exc) from None
        return self._out(concept_set)

    def destroy(self, request: Request, pk: int) -> Response:
        concept_set = self.get_object()
        concept_set_services.concept_set_delete(user=request.user, concept_set=concept_set)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(summary="The resolved set: its size and first concepts", responses=ResolvedSerializer)
    @action(detail=True, methods=["get"])
    def resolved(self, request: Request, pk: int) -> Response:
        concept_set = self.get_object()
        # Stored expressions were normalized when saved: resolved as they are (a concept since removed from the
        # vocabulary simply resolves to nothing, as on a site).
        return Response(concept_set_selectors.expression_resolve(concept_set.expression))

    @extend_schema(
        summary="Resolve an expression without saving it (the editor's preview)",
        request=ExpressionSerializer,
        responses=ResolvedSerializer,
    )
    @action(detail=False, methods=["post"])
    def resolve(self, request: Request) -> Response:
        data = ExpressionSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            expression = concept_set_services.expression_normalize(data.validated_data["expression"])
        except DjangoValidationError as exc:
            raise ValidationError({"expression": [str(m) for m in exc.messages]}) from None
        return Response(concept_set_selectors.expression_resolve(expression))
