"""pyproject's ranges, constraints/ci.txt's pins and the README's set-up command agree with each other."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

REPO = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
REGENERATE = ".venv/bin/pip freeze --exclude-editable | grep -v '^cnnexp' > constraints/ci.txt (see its header)"


def pins() -> dict[str, str]:
    """`{canonical name: version}` of constraints/ci.txt."""
    found = {}
    for line in (REPO / "constraints/ci.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints/ci.txt: {line!r} is not name==version"
            found[canonicalize_name(name)] = version
    return found


def requirements(extra: str | None = None, seen: set[str] | None = None) -> list[Requirement]:
    """The project's dependencies (`extra=None`) or an extra's, with `cnnexp[...]` self-references expanded."""
    seen = set() if seen is None else seen
    listed = PROJECT["dependencies"] if extra is None else PROJECT["optional-dependencies"][extra]
    found = []
    for text in listed:
        requirement = Requirement(text)
        if canonicalize_name(requirement.name) == "cnnexp":
            for inner in sorted(requirement.extras - seen):
                seen.add(inner)
                found += requirements(inner, seen)
        else:
            found.append(requirement)
    return found


def test_torch_and_torchvision_are_ranges_not_pins():
    for requirement in requirements():
        if requirement.name in ("torch", "torchvision"):
            assert len(requirement.specifier) >= 1 and not any(s.operator == "==" for s in requirement.specifier)


def test_every_pinned_ci_version_is_inside_the_projects_ranges():
    pinned = pins()
    for requirement in requirements() + requirements("dev"):
        version = pinned.get(canonicalize_name(requirement.name))
        if version is not None:
            assert requirement.specifier.contains(version, prereleases=True), \
                f"constraints/ci.txt pins {requirement.name}=={version}, outside {requirement}: regenerate: {REGENERATE}"


def test_constraints_pin_every_dependency_of_the_dev_install():
    pinned = pins()
    missing = sorted({r.name for r in requirements() + requirements("dev")
                      if canonicalize_name(r.name) not in pinned and (r.marker is None or r.marker.evaluate())})
    assert not missing, f"constraints/ci.txt lacks {missing}: regenerate it: {REGENERATE}"


def test_ci_runs_the_readmes_set_up_command_with_the_constraints():
    readme = (REPO / "README.md").read_text()
    first = re.search(r"```bash\n(.+?)\n```", readme, re.S).group(1).strip()
    assert "-c constraints/ci.txt" in first and first.startswith("python3 -m venv .venv")
    assert first in (REPO / ".ci/run").read_text().splitlines()
