"""Servers that answer in ways no Azure deployment does: a key quoted back in an error, a 200 that is no chat
completion (a sign-in page, a stream, JSON cut short), a compressed body, no choices, a day's retry-after, a
body that trickles in. A small OpenAI-compatible server of the test's own on 127.0.0.1 answers as each test
says; the plugin runs by pytester through the real openai SDK and real cassettes."""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import yaml

from tests.conftest import NURSE_CASES, PROVIDER_VARIABLES, run_inner
from tests.test_adaptive import CASES as ADAPTIVE_CASES  # samples 5 up to 20: later batches are asked
from tests.test_servers import output_of
from tests.test_servers import project as servers_project

SECRET = "sk-foreign-7c1e9a3b5d2f4e60"  # the key these tests send; it must never reach what a run writes
ANSWERS = ("A nurse cares for patients on the ward.", "Nurses work long shifts and comfort families.",
           "The nurse checks vitals and gives medication.", "They are skilled professionals who listen well.")


def completion(body: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A chat completion with the n choices the body asks for (answers told apart by their seed and index)."""
    seed = body.get("seed") or 0
    choices = [{"index": index, "message": {"role": "assistant",
                                            "content": f"{ANSWERS[(index + seed) % 4]} ({seed}.{index})"},
                "finish_reason": "stop"} for index in range(body.get("n") or 1)]
    data = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": body.get("model", "m"),
            "choices": choices, "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}}
    data.update(fields)
    return data


class Reply:
    """What the server sends: a status, a body (a dict is sent as JSON), its content type, more headers."""

    def __init__(self, status: int, body: Any, content_type: str = "application/json",
                 headers: tuple[tuple[str, str], ...] = ()) -> None:
        self.status, self.body, self.content_type, self.headers = status, body, content_type, headers

    def payload(self) -> bytes:
        body = json.dumps(self.body) if isinstance(self.body, (dict, list)) else self.body
        return body.encode() if isinstance(body, str) else body


class Foreign:
    """An OpenAI-compatible server on 127.0.0.1: `answer(body, key)` gives each request's Reply, or sends it
    itself through the handler (`handler` in the body's place, for a body that trickles)."""

    def __init__(self, answer: Callable[..., Any]) -> None:
        self.answer = answer
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                key = (self.headers.get("authorization") or self.headers.get("api-key") or "").removeprefix("Bearer ")
                server.requests.append({"path": self.path, "body": body, "key": key})
                reply = server.answer(body, key, self)
                if reply is None:  # the answer sent itself
                    return
                data = reply.payload()
                self.send_response(reply.status)
                self.send_header("content-type", reply.content_type)
                for name, value in reply.headers:
                    self.send_header(name, value)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_port}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def foreign(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Foreign]]:
    """start(answer): a server of the test's making, the only endpoint (OPENAI_BASE_URL, OPENAI_API_KEY)."""
    servers: list[Foreign] = []

    def start(answer: Callable[..., Any]) -> Foreign:
        for name in PROVIDER_VARIABLES:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        server = Foreign(answer)
        servers.append(server)
        monkeypatch.setenv("OPENAI_BASE_URL", server.endpoint)
        monkeypatch.setenv("OPENAI_API_KEY", SECRET)
        return server

    yield start
    for server in servers:
        server.stop()


def project(pytester: pytest.Pytester, text: str = NURSE_CASES) -> pytest.Pytester:
    return servers_project(pytester, text)


def written(pytester: pytest.Pytester) -> str:
    """Everything the run wrote beside the case file: cassettes, journal, JUnit, HTML."""
    return "".join(path.read_text(errors="replace") for path in pytester.path.rglob("*")
                   if path.is_file() and path.suffix in (".yaml", ".jsonl", ".xml", ".html", ".json"))


# -- a key quoted back --------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "words"), [
    (401, "Access denied due to invalid subscription key {key}. Make sure to provide a valid key."),
    (500, "upstream rejected credential {key}"),
    (400, "Invalid request for key {key}"),
])
def test_a_key_the_server_quotes_back_reaches_no_output(hermetic: pytest.Pytester, foreign, status: int,
                                                         words: str) -> None:
    server = foreign(lambda body, key, handler: Reply(status, {"error": {"message": words.format(key=key)}}))
    result = run_inner(project(hermetic), "--llm-live", "-o", "llmbias_attempts=1", "--junitxml=junit.xml",
                       "--llm-html=report.html")
    output = output_of(result)
    assert server.requests and server.requests[0]["key"] == SECRET
    assert result.ret != 0 and "***" in output, output
    assert SECRET not in output and SECRET not in written(hermetic)
    assert "Traceback" not in output


# -- a 200 that is no chat completion -------------------------------------------------------------------

SSO_PAGE = "<html><head><title>Sign in - Contoso SSO</title></head><body>Sign in with your account</body></html>"
STREAM = "".join("data: " + json.dumps({"id": "x", "object": "chat.completion.chunk",
                                        "choices": [{"index": 0, "delta": {"content": "hi"}}]}) + "\n\n"
                 for _ in range(2)) + "data: [DONE]\n\n"
NOT_COMPLETIONS = [
    (Reply(200, SSO_PAGE, "text/html; charset=utf-8"), "(text/html: 'Sign in - Contoso SSO')"),
    (Reply(200, STREAM, "text/event-stream"), "(text/event-stream: 'data: {"),
    (Reply(200, json.dumps(completion({"n": 4}))[:300]), "(application/json: JSON cut short after 300 bytes)"),
    (Reply(200, {"error": {"code": "BackendError", "message": "upstream failed"}}),
     "(application/json: 'upstream failed')"),
    (Reply(200, {"object": "chat.completion", "id": "x"}), "(application/json: JSON without choices: object, id)"),
]


@pytest.mark.parametrize(("reply", "said"), NOT_COMPLETIONS)
def test_a_200_that_is_no_chat_completion_fails_its_request_in_one_line(hermetic: pytest.Pytester, foreign,
                                                                        reply: Reply, said: str) -> None:
    foreign(lambda body, key, handler: reply)
    result = run_inner(project(hermetic), "--llm-live", "-o", "llmbias_attempts=2")
    output = output_of(result)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    lines = [line for line in output.splitlines() if "HTTP 200 but not a chat completion" in line]
    assert lines and all(said in line for line in lines), output
    # JSON cut short was lost on the way: tried again (and given up on after the attempts); the rest were not
    assert all(("gave up after 2 attempts" in line) == ("cut short" in said) for line in lines), output
    assert "Traceback" not in output and len(output.splitlines()) < 60, output


def test_an_error_object_sent_with_a_200_never_shows_the_key(hermetic: pytest.Pytester, foreign) -> None:
    foreign(lambda body, key, handler: Reply(200, {"error": {"message": f"bad key {key}"}, "sent": key}))
    result = run_inner(project(hermetic), "--llm-live", "--junitxml=junit.xml")
    output = output_of(result)
    assert "HTTP 200 but not a chat completion (application/json: 'bad key ***')" in output, output
    assert SECRET not in output and SECRET not in written(hermetic)


def test_an_answer_cut_short_on_the_way_is_asked_again(hermetic: pytest.Pytester, foreign) -> None:
    """A 200 whose JSON stops short, or an empty 200 (a connection dropped on the way, a proxy's hiccup), failed its
    request at once where a 502 is tried again; it is tried again, and nothing of it is recorded."""
    cut = iter([Reply(200, json.dumps(completion({"n": 4}))[:300]), Reply(200, "")])
    server = foreign(lambda body, key, handler: next(cut, None) or Reply(200, completion(body)))
    recorded = run_inner(project(hermetic), "--llm-record")
    output = output_of(recorded)
    assert len(server.requests) == 4 and "HTTP 200 but not" not in output and "8 answers" in output, output
    server.stop()
    replayed = run_inner(hermetic)
    assert "no recording" not in output_of(replayed) and "8 answers" in output_of(replayed), output_of(replayed)


def test_a_200_that_is_no_chat_completion_is_never_recorded(hermetic: pytest.Pytester, foreign) -> None:
    pages = iter([Reply(200, SSO_PAGE, "text/html"), Reply(200, STREAM, "text/event-stream")])
    server = foreign(lambda body, key, handler: next(pages, None) or Reply(200, completion(body)))
    recorded = run_inner(project(hermetic), "--llm-record")
    assert recorded.ret == pytest.ExitCode.TESTS_FAILED and len(server.requests) == 2
    cassette = hermetic.path / "cases" / "__cassettes__" / "jobs.yaml"
    assert not cassette.exists() or "Sign in" not in cassette.read_text()
    # recording again asks both prompts again, and keeps their chat completions
    again = run_inner(hermetic, "--llm-record")
    assert len(server.requests) == 4 and "HTTP 200 but not" not in output_of(again), output_of(again)
    server.stop()
    replayed = run_inner(hermetic)
    assert "no recording" not in output_of(replayed) and "HTTP 200" not in output_of(replayed)


# -- a compressed answer --------------------------------------------------------------------------------


def test_a_gzip_compressed_answer_is_recorded_and_replays(hermetic: pytest.Pytester, foreign) -> None:
    server = foreign(lambda body, key, handler: Reply(200, gzip.compress(json.dumps(completion(body)).encode()),
                                                      headers=(("content-encoding", "gzip"),)))
    # one attempt: a retry would replay what the failed attempt recorded, hiding the failure
    recorded = run_inner(project(hermetic), "--llm-record", "-o", "llmbias_attempts=1")
    assert len(server.requests) == 2 and "decompressing" not in output_of(recorded), output_of(recorded)
    assert recorded.ret in (0, 1) and "8 answers" in output_of(recorded)
    server.stop()
    replayed = run_inner(hermetic)
    assert "no recording" not in output_of(replayed) and "8 answers" in output_of(replayed), output_of(replayed)


# -- no choices -----------------------------------------------------------------------------------------


def verdicts(result: pytest.RunResult) -> list[str]:
    words = ("PASSED", "FAILED", "INCONCLUSIVE", "FILTERED", "SKIPPED")
    return [next(word for word in line.split() if word in words)
            for line in result.outlines if line.startswith("cases/jobs.yaml::")]


def test_a_200_with_no_choices_is_a_failed_request_not_a_filtered_prompt(hermetic: pytest.Pytester,
                                                                         foreign) -> None:
    foreign(lambda body, key, handler: Reply(200, completion(body, choices=[])))
    result = run_inner(project(hermetic), "--llm-record")
    output = output_of(result)
    assert "FILTERED" not in verdicts(result) and result.ret == pytest.ExitCode.TESTS_FAILED, output
    assert "HTTP 200 with no choices" in output and "Traceback" not in output
    assert not (hermetic.path / "cases" / "__cassettes__" / "jobs.yaml").exists()


def test_no_choices_with_the_prompt_filter_tripped_is_a_filtered_prompt(hermetic: pytest.Pytester,
                                                                        foreign) -> None:
    tripped = [{"prompt_index": 0, "content_filter_results": {"hate": {"filtered": True, "severity": "high"},
                                                              "sexual": {"filtered": False, "severity": "safe"}}}]
    foreign(lambda body, key, handler: Reply(200, completion(body, choices=[], prompt_filter_results=tripped)))
    result = run_inner(project(hermetic), "--llm-record")
    assert "FILTERED" in verdicts(result) and "HTTP 200 with no choices" not in output_of(result), output_of(result)


# -- a server that ignores n but honours seed (Ollama, llama.cpp, LM Studio) --------------------------------



def seeded(body: dict[str, Any], key: str, handler: Any) -> Reply:
    """One answer whatever n asks, the same for the same seed (a random one without a seed); half of them
    assume a gender, so a check stays undecided and asks later batches."""
    import random

    seed = body.get("seed")
    mark = seed if seed is not None else random.randrange(10**9)
    tag = "".join(chr(ord("a") + int(digit)) for digit in str(mark))  # in letters: answers differing in a number are copies
    text = (f"She is a nurse who cares for her patients on ward {tag}." if mark % 2 == 0 else
            f"The nurse cares for patients on ward {tag}.")
    data = completion({**body, "n": 1})
    data["choices"][0]["message"]["content"] = text
    return Reply(200, data)


def test_later_batches_from_a_server_that_honours_seed_get_answers_of_their_own(hermetic: pytest.Pytester,
                                                                                foreign) -> None:
    server = foreign(seeded)
    result = run_inner(project(hermetic, ADAPTIVE_CASES), "--llm-record")
    output = output_of(result)
    seeds: dict[tuple[str, str], set[int]] = {}
    for request in server.requests:
        if request["body"].get("seed") is not None:
            prompt = request["body"]["messages"][-1]["content"]
            seeds.setdefault((prompt, request["body"].get("user") or "llmbias-batch-1"), set()).add(
                request["body"]["seed"])
    batches = {batch for _, batch in seeds}
    assert "llmbias-batch-2" in batches, output
    assert seeds[("Describe a nurse.", "llmbias-batch-1")] == {1, 2, 3, 4}  # as recorded before: they replay
    for (prompt, batch), used in seeds.items():
        others = set().union(*(seen for (other, later), seen in seeds.items() if other == prompt and later != batch))
        assert not used & others, (prompt, batch, sorted(used), sorted(others))
    assert "same answers again" not in output, output


# -- an interrupt while a request is in flight ------------------------------------------------------------


def test_sigterm_while_a_request_is_in_flight_ends_the_process_at_once(hermetic: pytest.Pytester, foreign) -> None:
    """The summary came at once, but the process ended only when the request in flight returned (the asking
    threads were joined at exit): up to --llm-timeout."""
    import os
    import signal
    import subprocess
    import sys

    release = threading.Event()

    def slow_after_the_first(body: dict[str, Any], key: str, handler: Any) -> Reply:
        if len(server.requests) > 1:
            release.wait(60)
        return Reply(200, completion(body))

    server = foreign(slow_after_the_first)
    project(hermetic)
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "pytest_llmbias.plugin", "-p", "no:cacheprovider",
                                "--llm-record", "--llm-timeout", "120", "-o", "llmbias_attempts=1"],
                               cwd=hermetic.path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while len(server.requests) < 2 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        assert len(server.requests) == 2, "the second request never came"
        time.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        output, _ = process.communicate(timeout=20)
        assert time.monotonic() - stopped < 10, output
    finally:
        release.set()
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == pytest.ExitCode.INTERRUPTED and "llm bias results" in output, output
    assert "Traceback" not in output, output
    time.sleep(0.5)  # the request released now finds no process to record it
    cassette = hermetic.path / "cases" / "__cassettes__" / "jobs.yaml"
    assert len(yaml.safe_load(cassette.read_text())["interactions"]) == 1  # the answer that arrived, kept
    assert "1 added" in output, output


# -- an answer that trickles in --------------------------------------------------------------------------


def trickle(body: dict[str, Any], key: str, handler: Any) -> None:
    """The answer a byte a second: never a read timeout, twenty seconds in all."""
    data = json.dumps(completion(body)).encode()
    handler.send_response(200)
    handler.send_header("content-type", "application/json")
    handler.send_header("content-length", str(len(data) + 20))
    handler.end_headers()
    try:
        for _ in range(20):
            handler.wfile.write(b" ")
            handler.wfile.flush()
            time.sleep(1.0)
        handler.wfile.write(data)
    except OSError:  # the client gave up
        pass


@pytest.mark.parametrize("mode", ["--llm-live", "--llm-record"])
def test_a_request_may_take_no_longer_than_the_timeout_in_all(hermetic: pytest.Pytester, foreign, mode: str) -> None:
    foreign(trickle)
    started = time.monotonic()
    result = run_inner(project(hermetic), mode, "--llm-timeout", "2", "-o", "llmbias_attempts=1")
    output = output_of(result)
    # each request gives up after 2 s, not 20, and a timed-out first request holds nobody back (the others
    # waited out the 10 s first-answer wait after it)
    assert time.monotonic() - started < 10, output
    assert "timed out after 2 s (raise --llm-timeout" in output and "Traceback" not in output, output


# -- a 429 that is not throttling as usual ---------------------------------------------------------------


def test_a_retry_after_of_a_day_fails_the_request_saying_so(hermetic: pytest.Pytester, foreign) -> None:
    server = foreign(lambda body, key, handler: Reply(429, {"error": {"code": "429", "message": "rate"}},
                                                      headers=(("retry-after", "86400"),)))
    started = time.monotonic()
    result = run_inner(project(hermetic), "--llm-live")
    output = output_of(result)
    assert time.monotonic() - started < 15 and len(server.requests) == 2, output
    lines = [line for line in output.splitlines() if "asks to wait" in line]
    assert lines and all("the server asks to wait 24 h before trying again, longer than a request waits (5 min)"
                         in line for line in lines), output


def test_a_spent_quota_stops_the_run_with_one_line(hermetic: pytest.Pytester, foreign) -> None:
    quota = {"error": {"message": "You exceeded your current quota, please check your plan and billing details.",
                       "type": "insufficient_quota", "param": None, "code": "insufficient_quota"}}
    server = foreign(lambda body, key, handler: Reply(429, quota))
    result = run_inner(project(hermetic), "--llm-live")
    output = output_of(result)
    assert len(server.requests) == 1 and result.ret != 0, output
    lines = [line for line in output.splitlines() if "insufficient_quota" in line]
    assert len(lines) == 1 and "no request of this run can succeed" in lines[0], output
    assert "You exceeded your current quota" in lines[0] and "Traceback" not in output


# -- hints that name the variables the run was given ------------------------------------------------------


@pytest.mark.parametrize(("status", "hint"), [(401, "(check OPENAI_API_KEY)"),
                                              (404, "or check OPENAI_BASE_URL (the model may be served elsewhere)")])
def test_a_gateway_path_like_azures_still_gets_the_openai_variables_named(
        hermetic: pytest.Pytester, foreign, monkeypatch: pytest.MonkeyPatch, status: int, hint: str) -> None:
    server = foreign(lambda body, key, handler: Reply(status, {"error": {"message": "no"}}))
    monkeypatch.setenv("OPENAI_BASE_URL", server.endpoint.replace("/v1", "/openai/v1"))  # a gateway's path
    result = run_inner(project(hermetic), "--llm-live")
    output = output_of(result)
    assert server.requests[0]["path"] == "/openai/v1/chat/completions"
    assert hint in output and "AZURE_OPENAI" not in output, output
