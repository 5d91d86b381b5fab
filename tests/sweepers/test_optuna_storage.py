"""Optuna storages shared by several workers: race-free creation on a new sqlite file, journal files, paths."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest

from cnnexp.sweepers.optuna_storage import absolute_storage, create_or_load_study, open_storage

WORKER = textwrap.dedent("""
    import sys, time
    from cnnexp.sweepers.optuna_storage import create_or_load_study, open_storage
    start = float(sys.argv[2])
    while time.time() < start:  # every worker opens the new file at the same moment
        time.sleep(0.001)
    study = create_or_load_study(open_storage(sys.argv[1]), "race", ["maximize"])
    trial = study.ask()
    study.tell(trial, 0.5)
""")


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["sqlite", "journal"])
def test_workers_starting_together_on_a_new_study_all_succeed(tmp_path, scheme):
    """Without open_storage's retries, the sqlite case fails (IntegrityError on the schema's version table)."""
    import time

    url = f"sqlite:///{tmp_path}/new/dir/study.db" if scheme == "sqlite" else f"journal:{tmp_path}/new/study.journal"
    start = time.time() + 6.0  # after the imports of every worker (a loaded 2-core machine)
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, url, str(start)], stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    study = optuna.load_study(study_name="race", storage=open_storage(url))
    assert len(study.trials) == 3 and len(optuna.get_all_study_names(open_storage(url))) == 1


def test_relative_paths_are_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert absolute_storage("sqlite:///outputs/a.db") == f"sqlite:///{tmp_path}/outputs/a.db"
    assert absolute_storage("sqlite:///x.db?timeout=3") == f"sqlite:///{tmp_path}/x.db?timeout=3"
    assert absolute_storage("journal:j/s.journal") == f"journal:{tmp_path}/j/s.journal"
    for url in [None, "sqlite:///:memory:", "postgresql://u@h/db"]:
        assert absolute_storage(url) == url


def test_a_second_invocation_resumes_the_study(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    first = create_or_load_study(open_storage(url), "s", ["minimize"])
    first.tell(first.ask(), 1.0)
    again = create_or_load_study(open_storage(url), "s", ["minimize"])
    assert len(again.trials) == 1 and Path(f"{tmp_path}/s.db").is_file()
