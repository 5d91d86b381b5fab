"""The `cnnexp` command: subcommands dispatch to the `python -m` modules, train is the default, each has --help."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cnnexp import command
from cnnexp.command import SUBCOMMANDS, available, split

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("argv, expected", [
    ([], ("train", [])),
    (["+experiment=shapes", "trainer.max_epochs=1"], ("train", ["+experiment=shapes", "trainer.max_epochs=1"])),
    (["-m", "optimizer.lr=1e-3,3e-4"], ("train", ["-m", "optimizer.lr=1e-3,3e-4"])),
    (["--cfg", "job"], ("train", ["--cfg", "job"])),
    (["train", "--help"], ("train", ["--help"])),
    (["evaluate", "ckpt_path=a.ckpt"], ("evaluate", ["ckpt_path=a.ckpt"])),
    (["report", "--help"], ("report", ["--help"])),
    (["--help"], (None, [])),
    (["-h"], (None, [])),
    (["help"], (None, [])),
])
def test_the_first_word_picks_the_subcommand_and_train_is_the_default(argv, expected):
    assert split(argv) == expected


def test_the_overview_lists_every_subcommand(capsys):
    assert command.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert f"  {name} " in out


def test_a_subcommand_whose_module_is_missing_is_one_error_line(monkeypatch, capsys):
    monkeypatch.setitem(SUBCOMMANDS, "later", ("cnnexp.no_such_module", "a subcommand of a later version"))
    assert command.main(["later", "x=1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: `cnnexp later` is not in this version") and "cnnexp.no_such_module" in err
    assert err.count("\n") == 1


def run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.run(list(args), capture_output=True, text=True, timeout=300, env=env, cwd=REPO)


@pytest.mark.parametrize("name", list(SUBCOMMANDS))
def test_each_subcommand_prints_its_help(name):
    module = SUBCOMMANDS[name][0]
    if not available(module):
        pytest.skip(f"{module} is not in this version")
    result = run(sys.executable, "-m", "cnnexp.command", name, "--help")
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(result.stdout.splitlines()) >= 3
    assert not [line for line in result.stderr.splitlines() if line.startswith("error:") or "Traceback" in line]
    if name == "train":
        assert "== Config groups" in result.stdout


def test_the_installed_console_script_prints_the_overview():
    script = Path(sys.executable).with_name("cnnexp")
    if not script.exists():
        pytest.skip("the cnnexp console script is not installed in this environment (pip install -e . installs it)")
    result = run(str(script), "--help")
    assert result.returncode == 0 and "subcommands:" in result.stdout


def test_a_subcommand_without_its_own_help_shows_its_modules_docstring(monkeypatch, capsys):
    monkeypatch.setitem(SUBCOMMANDS, "fetch", ("cnnexp.data.download", "fetch an archive"))
    assert command.main(["fetch", "--help"]) == 0
    assert capsys.readouterr().out.startswith("Fetch a data set archive")
