"""Cassettes: one vcrpy cassette per case file, an indexed lookup, scrubbing, atomic incremental writes.

The files are ordinary vcrpy cassettes (vcrpy's YAML serializer and Request model), so vcrpy itself
replays them. The SDK reaches them through `CassetteTransport`, an HTTP transport handed to the
openai client: unlike vcrpy's global patch it lets many cassettes be used at once from many threads,
finds a request by a dictionary look-up instead of comparing it with every stored one, and in replay
mode has no network transport at all.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .wire import RECORDED_HEADER, REDACTED, completion_from_body, request_key, secrets_in

# Beside each case file, like syrupy's __snapshots__: easy to find, review and delete, never collected.
CASSETTE_DIR = "__cassettes__"
MODES = ("replay", "new", "all")
KEPT_REQUEST_HEADERS = {"content-type"}
KEPT_RESPONSE_HEADERS = {"content-type"}
RECORDED_ORIGIN = "https://azure-openai.invalid"
# Response headers about the body as it was sent, not as read: dropped when it is handed on decoded.
DECODED_AWAY = {"content-encoding", "content-length", "transfer-encoding"}


def _recordable(status: int, content: bytes) -> bool:
    """Answers worth replaying: a 200 chat completion with at least one choice (or none, the content filter
    saying it withheld them), and the content-filter 400 (a stable outcome). Throttling, auth failures, server faults, other 400s (a parameter the deployment refuses:
    the run stops, or asks again another way) and a 200 that is no chat completion (a sign-in page, a
    stream, JSON cut short) would replay as faults for ever, so they are never written."""
    if status not in (200, 400):
        return False
    try:
        body = json.loads(content)
    except ValueError:
        return False
    if status == 200:
        answer = completion_from_body(body, latency=0.0, replayed=False)
        return answer is not None and bool(answer.texts or answer.filtered)
    inner = body.get("error", body) if isinstance(body, dict) else None
    return isinstance(inner, dict) and inner.get("code") == "content_filter"


# Batching of incremental writes: a killed run loses at most this much of what it recorded.
FLUSH_SECONDS = 1.0



def _umask() -> int:
    current = os.umask(0o022)  # read at import, before any thread: os.umask can only be read by setting it
    os.umask(current)
    return current


_UMASK = _umask()

class CassetteMiss(Exception):
    """No recording for a request in replay mode (raised inside the transport, before any network)."""

    def __init__(self, key: str, paths: Iterable[Path]) -> None:
        self.key, self.paths = key, tuple(paths)
        super().__init__(f"no recording for this request in {', '.join(map(str, self.paths)) or 'any cassette'}")


class CassetteUnreadable(Exception):
    """A cassette file that is not a vcrpy cassette (cut short, a merge conflict, another format): one line."""

    def __init__(self, path: Path, problem: BaseException) -> None:
        mark = getattr(problem, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        cause = " ".join(str(getattr(problem, "problem", None) or problem).split()) or type(problem).__name__
        shown = _shown_path(path)
        super().__init__(f"{shown}{where}: not a readable cassette ({cause}): restore it from version control, or "
                         f"delete it and record again with --llm-record")


def _shown_path(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive
        return str(path)


class TransportNotIntercepted(Exception):
    """The installed openai SDK does not send through the transport the cassette layer gives it."""


def cassette_path(case_file: Path, cassette_dir: str | None = None) -> Path:
    folder = Path(cassette_dir) if cassette_dir else case_file.parent / CASSETTE_DIR
    return folder / f"{case_file.stem}.yaml"


def key_of(path: str, body: bytes) -> str:
    """Deployment + canonical JSON body; host, port, api-version and the endpoint's shape are
    ignored, so a cassette replays whichever endpoint recorded it."""
    deployment = path.rstrip("/").split("/deployments/", 1)[-1].split("/", 1)[0]
    try:
        parsed = json.loads(body or b"{}")
    except ValueError:
        return f"{deployment}\n{body!r}"
    if isinstance(parsed, dict):
        # The classic path carries the deployment; the v1, OpenAI and Databricks shapes carry it as
        # "model" (and SDK versions differ on echoing it on the classic path).
        model = parsed.pop("model", None)
        if "/deployments/" not in path and isinstance(model, str):
            deployment = model
    return request_key(deployment, parsed)


def llm_request(r1: Any, r2: Any) -> bool:
    """A vcrpy matcher with the same identity, for users who replay these cassettes with vcrpy itself."""
    return (r1.method == r2.method
            and key_of(r1.path, r1.body_bytes or b"") == key_of(r2.path, r2.body_bytes or b""))


class Cassette:
    """One cassette file: interactions in order, an index by request key, and dirty tracking."""

    def __init__(self, path: Path, mode: str) -> None:
        self.path, self.mode = path, mode
        self._requests: list[Any] = []
        self._responses: list[dict[str, Any]] = []
        self._index: dict[str, int] = {}
        self._replaced: set[str] = set()    # keys re-recorded in "all" mode
        self._dirty = False
        self._last_flush = 0.0
        self._seen_mtime: int | None = None  # the file as we last read or wrote it
        self._lock = threading.Lock()
        self._load()
        self._loaded = set(self._index)  # what the file held before this run
        self.dropped = 0                  # recordings keep_only removed in this run

    def _load(self) -> None:
        for key, request, response in self._read():
            self._index[key] = len(self._requests)
            self._requests.append(request)
            self._responses.append(response)

    def _read(self) -> list[tuple[str, Any, dict[str, Any]]]:
        if not self.path.is_file():
            return []
        from vcr.serialize import deserialize
        from vcr.serializers import yamlserializer

        self._seen_mtime = self.path.stat().st_mtime_ns
        try:
            loaded = deserialize(self.path.read_text(encoding="utf-8"), yamlserializer)
            return [(key_of(request.path, request.body_bytes or b""), request, response)
                    for request, response in zip(loaded[0], loaded[1])]
        except Exception as problem:  # YAML, encoding, or a document without vcrpy's shape
            raise CassetteUnreadable(self.path, problem) from None

    def _merge_from_disk(self) -> None:
        # Another process (a pytest-xdist worker) wrote this cassette since we read it: keep its
        # interactions. Ours win where this process recorded the request; elsewhere the file is the newer
        # (a worker that re-recorded an answer in "all" mode replaces the one this process loaded).
        for key, request, response in self._read():
            position = self._index.get(key)
            if position is None:
                self._index[key] = len(self._requests)
                self._requests.append(request)
                self._responses.append(response)
            elif key not in self._replaced:
                self._requests[position], self._responses[position] = request, response

    def __len__(self) -> int:
        return len(self._requests)

    def counts(self) -> dict[str, int]:
        """What this run did to the file: interactions added, re-recorded, kept as they were, dropped."""
        with self._lock:
            present = set(self._index)
            added = len((self._replaced & present) - self._loaded)
            rerecorded = len(self._replaced & present & self._loaded)
            return {"added": added, "re-recorded": rerecorded,
                    "kept": len(present) - added - rerecorded, "dropped": self.dropped}

    def key_sets(self) -> dict[str, list[str]]:
        """The request keys the file holds now, held before this run, and recorded by this run (a pytest-xdist
        worker hands them to the controller, which counts the run's cassettes from every worker's)."""
        with self._lock:
            return {"present": sorted(self._index), "loaded": sorted(self._loaded),
                    "recorded": sorted(self._replaced)}

    def recorded_now(self, key: str) -> bool:
        """Whether the cassette holds an answer of this run for `key` (in "all" mode an older one does not count)."""
        with self._lock:
            return key in self._index and (self.mode != "all" or key in self._replaced)

    def lookup(self, key: str) -> dict[str, Any] | None:
        if self.mode == "all" and key not in self._replaced:
            return None
        position = self._index.get(key)
        return None if position is None else self._responses[position]

    def entry(self, key: str) -> tuple[Any, dict[str, Any]] | None:
        """The recorded request and response of `key`, whatever the mode."""
        with self._lock:
            position = self._index.get(key)
            return None if position is None else (self._requests[position], self._responses[position])

    def record(self, key: str, request: Any, response: dict[str, Any]) -> None:
        with self._lock:
            position = self._index.get(key)
            if position is None:
                self._index[key] = len(self._requests)
                self._requests.append(request)
                self._responses.append(response)
            else:  # re-recorded ("all"): the new answer takes the old one's place
                self._requests[position], self._responses[position] = request, response
            self._replaced.add(key)
            self._dirty = True
            if time.monotonic() - self._last_flush >= FLUSH_SECONDS:
                self._write()

    def flush(self) -> None:
        with self._lock:
            if self._dirty:
                self._write()

    def keep_only(self, keys: set[str]) -> int:
        """Drop recordings no case asks for any more (a changed prompt leaves its old one); how many."""
        with self._lock:
            kept = [(key, self._requests[i], self._responses[i]) for key, i in self._index.items() if key in keys]
            dropped = len(self._requests) - len(kept)
            if dropped:
                self._requests = [request for _, request, _ in kept]
                self._responses = [response for _, _, response in kept]
                self._index = {key: i for i, (key, _, _) in enumerate(kept)}
                self._seen_mtime = None if not self.path.is_file() else self.path.stat().st_mtime_ns
                self._dirty = True
            self.dropped += dropped
            return dropped

    def _write(self) -> None:
        import fcntl

        from vcr.serialize import serialize
        from vcr.serializers import yamlserializer

        self.path.parent.mkdir(parents=True, exist_ok=True)
        folder = os.open(self.path.parent, os.O_RDONLY)
        try:
            fcntl.flock(folder, fcntl.LOCK_EX)  # one writer per folder at a time, across processes
            if self.path.is_file() and self.path.stat().st_mtime_ns != self._seen_mtime:
                self._merge_from_disk()
            text = serialize({"requests": self._requests, "responses": self._responses}, yamlserializer)
            # Atomic: a killed run leaves the old file or the new one, never half of one.
            handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
            try:
                with os.fdopen(handle, "w", encoding="utf-8") as out:
                    out.write(text)
                # mkstemp's file is the owner's alone (0600): a cassette is committed and shared, so it takes
                # the old file's mode, else a new file's under the process's umask (0644 at the usual 022)
                os.chmod(temporary, self.path.stat().st_mode & 0o777 if self.path.is_file() else 0o666 & ~_UMASK)
                os.replace(temporary, self.path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
            self._seen_mtime = self.path.stat().st_mtime_ns
        finally:
            os.close(folder)  # closing releases the lock
        self._dirty = False
        self._last_flush = time.monotonic()


class CassetteLibrary:
    """All cassettes of a run, and which of them wants each request key."""

    def __init__(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"cassette mode must be one of {MODES}")
        self.mode = mode
        if mode != "replay":
            # vcrpy's modules, imported here in one thread: several fetching threads importing them
            # for the first time at once see vcr.serialize half-initialised (ImportError)
            import vcr.request  # noqa: F401
            import vcr.serialize  # noqa: F401
            import vcr.serializers.yamlserializer  # noqa: F401
        self._cassettes: dict[Path, Cassette] = {}
        self._wanted: dict[str, list[Cassette]] = {}
        self._lock = threading.Lock()
        self._closed = False

    def cassette(self, path: Path) -> Cassette:
        with self._lock:
            if path not in self._cassettes:
                self._cassettes[path] = Cassette(path, self.mode)
            return self._cassettes[path]

    def want(self, key: str, path: Path) -> None:
        """Declare that the cassette at `path` holds (or will hold) the answer to `key`. Recording new
        answers, a cassette that lacks a recording another wanting cassette holds gets a copy: a prompt
        two case files share is asked once, and each file's cassette replays on its own."""
        cassette = self.cassette(path)
        with self._lock:
            wanting = self._wanted.setdefault(key, [])
            if cassette in wanting:
                return
            wanting.append(cassette)
            others = [other for other in wanting if other is not cassette]
        if self.mode != "new" or cassette.entry(key) is not None:
            return
        for other in others:
            found = other.entry(key)
            if found is not None:
                cassette.record(key, *found)
                return

    def lookup(self, key: str) -> dict[str, Any] | None:
        for cassette in self._wanted.get(key, ()):
            found = cassette.lookup(key)
            if found is not None:
                return found
        return None

    def cassettes(self) -> list[Cassette]:
        with self._lock:
            return list(self._cassettes.values())

    def paths_for(self, key: str) -> list[Path]:
        return [cassette.path for cassette in self._wanted.get(key, ())]

    def record(self, key: str, request: Any, response: dict[str, Any]) -> None:
        if self._closed:  # the run has ended: its summary counted what the cassettes hold
            return
        for cassette in self._wanted.get(key, ()):
            cassette.record(key, request, response)

    def flush(self) -> None:
        for cassette in list(self._cassettes.values()):
            cassette.flush()

    def close(self) -> None:
        """Write what was recorded, and record nothing more (an interrupted run's request still in flight)."""
        self._closed = True
        self.flush()


def _scrubbed_request(method: str, url: str, body: bytes, headers: Any) -> Any:
    from vcr.request import Request

    # Keys, tokens, SDK platform headers: nothing but the content type reaches the cassette.
    kept = {name: value for name, value in headers.items() if name.lower() in KEPT_REQUEST_HEADERS}
    # Matching ignores host and api-version: keep neither, so no resource name reaches the file.
    # (openai 1.x joins an endpoint ending in "/" into "//openai/...": one slash is kept.)
    path = re.sub("/{2,}", "/", urlsplit(url).path)
    return Request(method, RECORDED_ORIGIN + path, body, kept)


def _stored_response(status: int, reason: str, headers: Any, content: bytes) -> dict[str, Any]:
    kept = {name: [value] for name, value in headers.items() if name.lower() in KEPT_RESPONSE_HEADERS}
    kept[RECORDED_HEADER] = [datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")]
    return {"status": {"code": status, "message": reason}, "headers": kept, "body": {"string": content}}


def make_transport(library: CassetteLibrary, httpx_module: Any, network: Any = None) -> Any:
    """An httpx/httpx2 transport that answers from `library` and, when recording, asks `network`."""

    class CassetteTransport(httpx_module.BaseTransport):
        def handle_request(self, request: Any) -> Any:
            body = request.read()
            key = key_of(request.url.path, body)
            stored = library.lookup(key)
            if stored is not None:
                return httpx_module.Response(
                    stored["status"]["code"],
                    headers=[(name, value) for name, values in stored["headers"].items() for value in values],
                    content=stored["body"]["string"], request=request)
            if library.mode == "replay" or network is None:
                raise CassetteMiss(key, library.paths_for(key))
            response = network.handle_request(request)
            content = response.read()
            response.close()
            for secret in secrets_in(request.headers):  # quoted back in an error body: never recorded
                content = content.replace(secret.encode(), REDACTED.encode())
            if _recordable(response.status_code, content):
                library.record(key, _scrubbed_request(request.method, str(request.url), body, request.headers),
                               _stored_response(response.status_code, response.reason_phrase,
                                                response.headers, content))
            # `content` is decoded: a Content-Encoding (gzip) or the length of the encoded body would make the
            # SDK's client decode it again
            headers = [(name, value) for name, value in response.headers.multi_items()
                       if name.lower() not in DECODED_AWAY]
            return httpx_module.Response(response.status_code, headers=headers, content=content, request=request)

        def close(self) -> None:
            if network is not None:
                network.close()

    return CassetteTransport()


def is_cassette_miss(error: BaseException) -> bool:
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, CassetteMiss):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
