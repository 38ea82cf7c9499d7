"""A slice of KCD-7 (the Korean Classification of Diseases, 7th revision) in the synthetic vocabulary: the codes a
Korean hospital records for the conditions the generator simulates, each mapped ('Maps to') to the standard
SNOMED concept the generator writes.

KCD-7 is ICD-10 with Korean extensions (a fifth character where ICD-10 stops, e.g. 0 closed / 1 open for
fractures). The OHDSI vocabularies carry it as the source vocabulary ``KCD7``: non-standard concepts of class
``KCD7 code``, named with the classification's English titles, codes written with their dot ("E11.9"), domain by
code. Hospitals often store the code without its dot ("E119"); the concept search accepts both.

The codes, titles and mapping targets are the classification's and the vocabularies' public facts. The concept
ids are not: the ids Athena gives KCD7 concepts could not be checked here, so these rows take ids from OMOP's
range for site-defined concepts (2,000,000,000 and up) rather than guessed ones. A site that loads the real
vocabulary gets the real ids; nothing in the portal depends on them.

Where the demo ships no concept as precise as the code (acute myocardial infarction, a closed fracture of the
femoral neck), the code maps to the demo's broader concept that the generator writes, which is what an uphill
mapping does. Conditions whose codes have no sensible target among the demo's concepts (atrial fibrillation and
flutter, depressive episode, lung cancer, DVT, viral pharyngitis, ...) are left out rather than mapped loosely.
"""

from __future__ import annotations

#: The concept id of the first KCD7 row; the rest follow in the order of ``KCD7_CODES``.
KCD7_FIRST_ID = 2_000_700_001
KCD7_CLASS = "KCD7 code"
KCD7_VOCABULARY = ("KCD7", "Korean Classification of Diseases, 7th Revision (Statistics Korea)", "", "KCD-7", 0)

#: (code, English title, Korean title, standard concept it maps to). Domain: Condition for every code here.
KCD7_CODES: tuple[tuple[str, str, str, int], ...] = (
    ("E11", "Non-insulin-dependent diabetes mellitus", "인슐린-비의존 당뇨병", 201826),
    ("E11.9", "Non-insulin-dependent diabetes mellitus without complications",
     "합병증을 동반하지 않은 인슐린-비의존 당뇨병", 201826),
    ("I10", "Essential (primary) hypertension", "본태성(원발성) 고혈압", 320128),
    ("E78.5", "Hyperlipidaemia, unspecified", "상세불명의 고지질혈증", 432867),
    ("N18.3", "Chronic kidney disease, stage 3", "만성 콩팥(신장)병, 3기", 443597),
    ("I25.1", "Atherosclerotic heart disease", "죽상경화성 심장병", 317576),
    ("I50.9", "Heart failure, unspecified", "상세불명의 심부전", 316139),
    ("J44.9", "Chronic obstructive pulmonary disease, unspecified", "상세불명의 만성 폐쇄성 폐질환", 255573),
    ("J45.9", "Asthma, unspecified", "상세불명의 천식", 317009),
    ("M19.9", "Arthrosis, unspecified", "상세불명의 관절증", 80180),
    ("E03.9", "Hypothyroidism, unspecified", "상세불명의 갑상선기능저하증", 140673),
    ("M81.9", "Osteoporosis, unspecified", "상세불명의 골다공증", 80502),
    ("M10.9", "Gout, unspecified", "상세불명의 통풍", 440674),
    ("G30.9", "Alzheimer's disease, unspecified", "상세불명의 알츠하이머병", 378419),
    ("M06.9", "Rheumatoid arthritis, unspecified", "상세불명의 류마티스관절염", 80809),
    ("C50.9", "Malignant neoplasm of breast, unspecified", "상세불명의 유방의 악성 신생물", 4112853),
    ("C18.9", "Malignant neoplasm of colon, unspecified", "상세불명의 결장의 악성 신생물", 4180790),
    ("K21.9", "Gastro-oesophageal reflux disease without oesophagitis", "식도염을 동반하지 않은 위-식도역류병", 318800),
    ("J18.9", "Pneumonia, unspecified", "상세불명의 폐렴", 255848),
    ("J20.9", "Acute bronchitis, unspecified", "상세불명의 급성 기관지염", 260139),
    ("N39.0", "Urinary tract infection, site not specified", "부위가 명시되지 않은 요로감염", 81902),
    ("N30.9", "Cystitis, unspecified", "상세불명의 방광염", 195588),
    ("S72.00", "Fracture of neck of femur, closed", "대퇴골 경부의 골절, 폐쇄성", 4230399),
    ("S52.90", "Fracture of forearm, part unspecified, closed", "아래팔의 상세불명 부분의 골절, 폐쇄성", 4278672),
    ("K92.2", "Gastrointestinal haemorrhage, unspecified", "상세불명의 위장출혈", 192671),
    ("I21", "Acute myocardial infarction", "급성 심근경색증", 4329847),
    ("I21.9", "Acute myocardial infarction, unspecified", "상세불명의 급성 심근경색증", 4329847),
    ("I64", "Stroke, not specified as haemorrhage or infarction", "출혈 또는 경색증으로 명시되지 않은 뇌졸중", 381316),
    ("K37", "Unspecified appendicitis", "상세불명의 충수염", 440448),
    ("K81.0", "Acute cholecystitis", "급성 담낭염", 198809),
    ("S93.4", "Sprain and strain of ankle", "발목의 염좌 및 긴장", 81151),
    ("A41.9", "Sepsis, unspecified", "상세불명의 패혈증", 132797),
)  # fmt: skip


ConceptRow = tuple[int, str, str, str, str, str, str, str, str]


def kcd7_concept_rows(valid_start: str, valid_end: str) -> tuple[ConceptRow, ...]:
    """The KCD7 rows as concept rows of the synthetic vocabulary (non-standard, English titles)."""
    return tuple(
        (KCD7_FIRST_ID + i, name, "Condition", "KCD7", KCD7_CLASS, "", code, valid_start, valid_end)
        for i, (code, name, _korean, _target) in enumerate(KCD7_CODES)
    )


def kcd7_maps() -> tuple[tuple[int, int], ...]:
    """(KCD7 concept, standard concept) 'Maps to' pairs."""
    return tuple((KCD7_FIRST_ID + i, target) for i, (_code, _name, _korean, target) in enumerate(KCD7_CODES))
