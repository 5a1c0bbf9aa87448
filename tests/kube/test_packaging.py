"""The kube backend's install files ship inside the package: a wheel built from this tree has
every one of them, and the backend finds its own copy unless told otherwise."""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from pytest_rollout.backends.kube import resources
from pytest_rollout.errors import ConfigError

pytestmark = pytest.mark.slow  # starts real processes, or renders for seconds

REPO = Path(__file__).resolve().parents[2]
PACKAGE_DATA = REPO / "pytest_rollout" / "backends" / "kube" / "data"
MIN_SETUPTOOLS = (77,)


def _setuptools_version() -> tuple[int, ...]:
    try:
        text = importlib.metadata.version("setuptools")
    except importlib.metadata.PackageNotFoundError:
        return ()
    return tuple(int(part) for part in text.split(".")[:2] if part.isdigit())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """A wheel of a copy of this tree, built offline with the environment's setuptools (the
    copy keeps build directories out of the checkout)."""
    if _setuptools_version() < MIN_SETUPTOOLS:
        pytest.skip("setuptools >= 77 is needed to build the wheel (pip install -e '.[dev]')")
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(
        REPO / "pytest_rollout",
        source / "pytest_rollout",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [
            sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
            "--no-index", "--quiet", "--wheel-dir", str(out), str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    (built,) = out.glob("pytest_rollout-*.whl")
    return zipfile.ZipFile(built)


def test_every_install_file_is_in_the_wheel(wheel: zipfile.ZipFile) -> None:
    shipped = set(wheel.namelist())
    expected = {
        path.relative_to(REPO).as_posix() for path in PACKAGE_DATA.rglob("*") if path.is_file()
    }
    assert "pytest_rollout/backends/kube/data/kind-config.yaml" in expected
    assert "pytest_rollout/backends/kube/data/install/traefik.yaml" in expected
    assert expected <= shipped, sorted(expected - shipped)
    for name in expected:
        assert wheel.read(name) == (REPO / name).read_bytes(), name


def test_the_packaged_files_are_used_unless_the_environment_names_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(resources.FIXTURES_ENV, raising=False)
    assert resources.data_dir() == PACKAGE_DATA
    copy = tmp_path / "kube"
    shutil.copytree(PACKAGE_DATA, copy)
    monkeypatch.setenv(resources.FIXTURES_ENV, str(copy))
    assert resources.data_dir() == copy
    monkeypatch.setenv(resources.FIXTURES_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError) as info:
        resources.data_dir()
    message = str(info.value)
    assert "\n" not in message
    assert f"${resources.FIXTURES_ENV}={tmp_path / 'nowhere'}" in message
