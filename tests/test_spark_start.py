"""The local JVM's class-data archive: made once, promoted when its writer is gone, keyed to Java and Spark."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_llmbias.results import ClassDataArchive, cache_dir


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_first_run_dumps_to_a_part_file_and_names_its_writer(tmp_path: Path) -> None:
    archive = ClassDataArchive(tmp_path, "spark-x-java17-abc.jsa")
    option = archive.java_option()
    assert option.startswith("-XX:ArchiveClassesAtExit=") and option.endswith(".part")
    archive.started(subprocess.Popen([sys.executable, "-c", "pass"]))
    sidecars = list(tmp_path.glob("*.part.pid"))
    assert len(sidecars) == 1 and sidecars[0].read_text().isdigit()


def test_a_finished_part_becomes_the_archive_and_is_used(tmp_path: Path) -> None:
    archive = ClassDataArchive(tmp_path, "spark-x-java17-abc.jsa")
    part = tmp_path / "spark-x-java17-abc.jsa.1-2.part"
    part.write_bytes(b"archive bytes")
    Path(f"{part}.pid").write_text(str(_dead_pid()))
    option = archive.java_option()
    assert option == f"-XX:SharedArchiveFile={tmp_path / 'spark-x-java17-abc.jsa'} -Xshare:auto"
    assert (tmp_path / "spark-x-java17-abc.jsa").read_bytes() == b"archive bytes"
    assert not part.exists() and not Path(f"{part}.pid").exists()


def test_while_another_jvm_writes_it_nobody_dumps_a_second(tmp_path: Path) -> None:
    archive = ClassDataArchive(tmp_path, "spark-x-java17-abc.jsa")
    Path(tmp_path / "spark-x-java17-abc.jsa.1-2.part.pid").write_text(str(os.getpid()))  # alive
    assert archive.java_option() == ""


def test_a_writer_that_died_without_writing_leaves_nothing_behind(tmp_path: Path) -> None:
    archive = ClassDataArchive(tmp_path, "spark-x-java17-abc.jsa")
    sidecar = tmp_path / "spark-x-java17-abc.jsa.1-2.part.pid"
    sidecar.write_text(str(_dead_pid()))
    assert archive.java_option().startswith("-XX:ArchiveClassesAtExit=")  # this run makes it instead
    assert not sidecar.exists()


def test_cache_folder_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PYTEST_LLMBIAS_CACHE", "off")
    assert cache_dir() is None
    monkeypatch.setenv("PYTEST_LLMBIAS_CACHE", str(tmp_path))
    assert cache_dir() == tmp_path
    monkeypatch.delenv("PYTEST_LLMBIAS_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "pytest-llmbias"


def test_the_archive_name_carries_java_and_spark(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pytest.importorskip("pyspark")
    monkeypatch.setenv("PYTEST_LLMBIAS_CACHE", str(tmp_path))
    archive = ClassDataArchive.for_this_machine()
    if archive is None:
        pytest.skip("no Java 13+ here: no class-data archive")
    import pyspark

    assert archive.name.startswith(f"spark-{pyspark.__version__}-java") and archive.name.endswith(".jsa")


def test_parts_left_by_other_installs_and_killed_runs_are_cleaned_up(tmp_path: Path) -> None:
    """Each virtualenv's pyspark has an archive of its own: a part another install's JVM finished became nobody's
    archive, and a part whose writer was never named stayed forever (1 GB of cache after a few venvs)."""
    archive = ClassDataArchive(tmp_path, "spark-x-java17-abc.jsa")
    other = tmp_path / "spark-x-java17-def.jsa.1-2.part"  # another venv's JVM, finished two days ago
    other.write_bytes(b"other archive")
    Path(f"{other}.pid").write_text(str(_dead_pid()))
    os.utime(f"{other}.pid", (time.time() - 2 * 86400, time.time() - 2 * 86400))
    recent = tmp_path / "spark-x-java17-ghi.jsa.7-8.part"  # another venv's, just now: its JVM may live elsewhere
    recent.write_bytes(b"recent")
    Path(f"{recent}.pid").write_text(str(_dead_pid()))
    orphan = tmp_path / "spark-x-java17-abc.jsa.3-4.part"  # no sidecar, two hours old
    orphan.write_bytes(b"half")
    os.utime(orphan, (time.time() - 7200, time.time() - 7200))
    fresh = tmp_path / "spark-x-java17-abc.jsa.5-6.part"  # no sidecar yet, just made
    fresh.write_bytes(b"")
    archive.java_option()
    assert (tmp_path / "spark-x-java17-def.jsa").read_bytes() == b"other archive"
    assert not other.exists() and not Path(f"{other}.pid").exists()
    assert not orphan.exists() and fresh.exists()
    assert recent.exists() and Path(f"{recent}.pid").exists()
