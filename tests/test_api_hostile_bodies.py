"""Bodies and queries a hostile (or merely curious) client sends answer 400 saying what is wrong, never 500, and
start nothing."""

from __future__ import annotations

import base64
import json

import pytest

from test_api_handler import call, executions, moto_aws, post, sfn, submit  # noqa: F401 - the moto fixtures

DEEP = 100_000


@pytest.mark.parametrize("body, message", [
    ("[" * DEEP + "]" * DEEP, "nested too deeply"),
    ('{"videoId": ' + "[" * DEEP + "]" * DEEP + "}", "nested too deeply"),
    ('{"videoId": "clip-1", "videoId": "clip-2"}', "repeats a field"),
    ('{"videoId": "clip-1", "videoId": "clip-1"}', "repeats a field"),
    ('{"videoId": ' + "9" * 5000 + "}", "videoId must be a string"),  # valid JSON, beyond int()'s 4,300 digits
    ('{"videoId": "clip-1", "": "x"}', 'unexpected field(s): ""'),
    ('{"videoId": "clip-1", " ": "x"}', 'unexpected field(s): " "'),
], ids=["deeply nested body", "deeply nested videoId", "two videoIds", "the same videoId twice",
        "a 5,000-digit number", "a field with an empty name", "a field named by a space"])
def test_hostile_body_answers_400_and_starts_nothing(sfn, body, message):  # noqa: F811
    code, answer = post(body)
    assert code == 400 and message in answer["message"], answer
    assert executions(sfn) == []


def test_a_valid_body_with_unique_fields_is_still_accepted(sfn):  # noqa: F811
    assert post(json.dumps({"videoId": "clip-1"}))[0] == 202


def token(start: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(start).encode()).decode()


def list_videos(**query: str) -> tuple[int, dict]:
    return call({"httpMethod": "GET", "resource": "/videos", "queryStringParameters": query})


VALID_KEY = {"videoId": {"S": "clip-1"}, "attempt": {"N": "1"}, "status": {"S": "QUEUED"}, "seq": {"N": "1"}}
# Tokens of the right outer shape whose key botocore would refuse before sending (a 500 until they were checked).
FORGED_KEYS = {
    "a number where text belongs": {**VALID_KEY, "videoId": {"S": 5}},
    "a type DynamoDB does not have": {**VALID_KEY, "videoId": {"BOGUS": "x"}},
    "two types in one value": {**VALID_KEY, "seq": {"N": "1", "S": "1"}},
    "a value that is not typed": {**VALID_KEY, "attempt": "1"},
    "a number that is not digits": {**VALID_KEY, "seq": {"N": "1e999"}},
    "an attribute that is not a key": {**VALID_KEY, "owner": {"S": "me"}},
    "a key attribute missing": {k: v for k, v in VALID_KEY.items() if k != "seq"},
    "a list for a key": [VALID_KEY],
}


@pytest.mark.parametrize("key", FORGED_KEYS.values(), ids=FORGED_KEYS.keys())
def test_a_forged_page_token_answers_400_not_500(sfn, key):  # noqa: F811
    code, answer = list_videos(status="QUEUED", next=token({"status": "QUEUED", "key": key}))
    assert (code, answer["message"]) == (400, "next is not a token this API returned"), answer


def test_a_token_the_api_returned_still_pages(sfn):  # noqa: F811
    for n in range(3):
        submit(f"clip-{n}")
    code, first = list_videos(status="RUNNING", limit="1")
    assert code == 200 and first["next"], first
    code, second = list_videos(status="RUNNING", limit="1", next=first["next"])
    assert code == 200 and second["jobs"] and second["jobs"] != first["jobs"], second


def test_empty_query_values_mean_not_given_as_in_the_documented_example(sfn):  # noqa: F811
    """`GET /videos?status=&limit=&next=` (docs/job-control.md) lists like `GET /videos`."""
    submit("clip-1")
    assert list_videos(status="", limit="", next="") == list_videos()
    assert list_videos(status="", limit="", next="")[0] == 200


PART_SHA = "0" * 64
HOSTILE_PART_BODIES = {
    "no parts": {"parts": []},
    "101 parts": {"parts": [{"partNumber": n, "sha256": PART_SHA} for n in range(1, 102)]},
    "parts not a list": {"parts": {"partNumber": 1, "sha256": PART_SHA}},
    "part number 0": {"parts": [{"partNumber": 0, "sha256": PART_SHA}]},
    "part number beyond S3's 10,000": {"parts": [{"partNumber": 10_001, "sha256": PART_SHA}]},
    "part number as text": {"parts": [{"partNumber": "1", "sha256": PART_SHA}]},
    "checksum in base64": {"parts": [{"partNumber": 1, "sha256": "A" * 43 + "="}]},
    "checksum missing": {"parts": [{"partNumber": 1}]},
    "a field more in a part": {"parts": [{"partNumber": 1, "sha256": PART_SHA, "etag": "x"}]},
    "a field more in the body": {"parts": [{"partNumber": 1, "sha256": PART_SHA}], "uploadId": "x"},
}


@pytest.mark.parametrize("body", HOSTILE_PART_BODIES.values(), ids=HOSTILE_PART_BODIES.keys())
def test_a_hostile_part_urls_body_is_refused_by_api_gateways_model_and_by_the_handler_alike(body):
    """POST /videos/{videoId}/upload/parts: what the route's model (contract.PART_URLS_SCHEMA, checked by API
    Gateway before the function runs) refuses, the function refuses too with its own message, so a test against
    the handler alone (tests/test_uploads.py) stands for the deployed API."""
    import jsonschema
    from jobs import uploads

    from jobs_harness import contract

    assert not jsonschema.Draft4Validator(contract.PART_URLS_SCHEMA).is_valid(body)
    assert uploads.parts_error(body, contract.S3_MAX_PARTS)


def test_a_valid_part_urls_body_passes_the_model_and_the_handler():
    import jsonschema
    from jobs import uploads

    from jobs_harness import contract

    body = {"parts": [{"partNumber": n, "sha256": PART_SHA} for n in (1, 7, contract.PART_URLS_PER_PAGE)]}
    assert jsonschema.Draft4Validator(contract.PART_URLS_SCHEMA).is_valid(body)
    assert uploads.parts_error(body, contract.S3_MAX_PARTS) is None
