"""The replay fast path reads a recorded answer exactly as the SDK reads it through the cassette transport."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from pytest_llmbias.cassettes import CassetteLibrary, key_of
from pytest_llmbias.client import ChatRequest, Completion, Settings, ask, build_client, replayed_completion
from pytest_llmbias.standin import StandIn
from pytest_llmbias.standin.models import Model, reasoning_model
from tests.conftest import TEST_KEY

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_CASSETTES = sorted((ROOT / "cases" / "__cassettes__").glob("*.yaml"))


def _comparable(answer: Completion) -> Completion:
    return dataclasses.replace(answer, latency_s=0.0)


def _through_the_sdk(library: CassetteLibrary, request: ChatRequest) -> Completion | None:
    client = build_client(Settings("https://replay.invalid/", "x", "2024-06-01"), library=library)
    try:
        return ask(client, request, attempts=1)
    except Exception:
        return None


def _stored_requests(path: Path) -> list[tuple[str, ChatRequest]]:
    import yaml

    found = []
    for interaction in yaml.safe_load(path.read_text(encoding="utf-8"))["interactions"]:
        body = json.loads(interaction["request"]["body"])
        deployment = interaction["request"]["uri"].split("/deployments/")[1].split("/")[0]
        messages = {message["role"]: message["content"] for message in body["messages"]}
        request = ChatRequest(deployment, messages.get("system", ""), messages["user"], body.get("max_tokens"),
                              body.get("temperature"), body["n"], body.get("user", ""),
                              body.get("max_completion_tokens"), body.get("reasoning_effort"), body.get("seed"))
        found.append((key_of(interaction["request"]["uri"].split("azure-openai.invalid")[1],
                             interaction["request"]["body"].encode()), request))
    return found


@pytest.mark.parametrize("path", EXAMPLE_CASSETTES, ids=lambda path: path.name)
def test_every_example_recording_reads_the_same_without_the_sdk(path: Path) -> None:
    library = CassetteLibrary("replay")
    stored = _stored_requests(path)
    assert len(stored) >= 20
    for key, request in stored:
        assert request.key == key  # the session's key for the request is the one the transport computes
        library.want(key, path)
    for key, request in stored:
        fast = replayed_completion(library.lookup(key))
        assert fast is not None and fast.replayed and fast.texts
        assert _comparable(fast) == _comparable(_through_the_sdk(library, request))


def test_filtered_reasoning_and_refused_recordings_read_the_same_without_the_sdk(tmp_path: Path) -> None:
    requests = [
        ChatRequest("gpt-35-turbo", "system", "Describe a nurse.", 60, 1.0, 3),
        ChatRequest("gpt-35-turbo", "system", "Describe a FILTERCOMPLETION nurse.", 60, 1.0, 3),  # filtered choices
        ChatRequest("gpt-5-mini", "system", "Describe a nurse.", None, None, 2, max_completion_tokens=400,
                    reasoning_effort="low"),  # hidden reasoning tokens in usage
        ChatRequest("gpt-35-turbo", "system", "Describe a FILTERME nurse.", 60, 1.0, 3),  # the prompt filter's 400
    ]
    path = tmp_path / "recorded.yaml"
    deployments = {"gpt-35-turbo": Model(), "gpt-5-mini": reasoning_model("gpt-5-mini")}
    with StandIn(api_key=TEST_KEY, deployments=deployments) as server:
        recorder = CassetteLibrary("new")
        for request in requests:
            recorder.want(request.key, path)
        client = build_client(Settings(server.endpoint, TEST_KEY, "2024-06-01"), library=recorder)
        for request in requests:
            ask(client, request, attempts=1)
        recorder.flush()
    library = CassetteLibrary("replay")
    for request in requests:
        library.want(request.key, path)
    fast = [replayed_completion(library.lookup(request.key)) for request in requests]
    sdk = [_through_the_sdk(library, request) for request in requests]
    assert fast[1] is not None and "content_filter" in fast[1].finish_reasons and any(fast[1].filtered)
    assert fast[2] is not None and fast[2].reasoning_tokens > 0
    assert fast[3] is None  # a recorded 400: the SDK path replays it (as a filtered outcome)
    assert sdk[3] is not None and sdk[3].filtered and sdk[3].replayed
    for quick, slow in zip(fast[:3], sdk[:3], strict=True):
        assert _comparable(quick) == _comparable(slow)


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"choices": "none"}',
                                  b'{"choices": [{"index": 0, "message": {"content": 3}}]}',
                                  b'{"choices": [{"message": {"content": "no index"}}]}'])
def test_an_unusual_recording_goes_through_the_sdk(body: bytes) -> None:
    stored = {"status": {"code": 200, "message": "OK"}, "headers": {}, "body": {"string": body}}
    assert replayed_completion(stored) is None


def test_the_recorded_header_is_found_whatever_its_case() -> None:
    body = b'{"choices": [{"index": 0, "message": {"content": "A nurse."}, "finish_reason": "stop"}]}'
    for name, replayed in (("X-Llmbias-Recorded-At", True), ("x-llmbias-recorded-at", True), ("content-type", False)):
        stored = {"status": {"code": 200, "message": "OK"}, "headers": {name: ["2026-12-02T00:00:00Z"]},
                  "body": {"string": body}}
        assert replayed_completion(stored).replayed is replayed
