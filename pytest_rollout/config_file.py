"""Finding and reading the target config file: TOML into the typed model of :mod:`.config`.

Where it is read from, first match wins:

1. an explicit path (a command-line option); a file named ``pyproject.toml`` is read for its
   ``[tool.pytest-rollout]`` table, any other file is the config as a whole;
2. the nearest ``rollout.toml``, or ``pyproject.toml`` with the table, searched from where
   pytest was invoked upwards, then from its ini file's directory, then its rootdir.

So a ``rollout.toml`` beside a ``pyproject.toml`` that also has the table wins. Relative paths
in the config are relative to the directory of the file they are written in. The format is in
the docstring of :mod:`pytest_rollout.config`; every key is checked here, and an unknown key is
an error naming the file, table and key.
"""

from __future__ import annotations

import glob
import math
import re
import tomllib
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pytest_rollout.backends.local.commands import check_template
from pytest_rollout.config import (
    BACKEND_NAMES,
    DEFAULT_MANIFEST_SET,
    BackendSettings,
    ContainerOverride,
    ImageBuild,
    ImageRun,
    ServingCheck,
    TargetConfig,
    Variant,
)
from pytest_rollout.errors import ConfigError
from pytest_rollout.load.mix import (
    HTTP_METHODS,
    Route,
    check_capture,
    first_uncaptured,
    path_names,
)
from pytest_rollout.load.version import FIELD_PATH, VersionSource
from pytest_rollout.manifests import display_path
from pytest_rollout.tomlcheck import (
    Where,
    check_json,
    check_keys,
    check_name,
    require_string,
    require_strings,
    require_table,
    toml_type,
)

CONFIG_FILE_NAME = "rollout.toml"
PYPROJECT_FILE_NAME = "pyproject.toml"
PYPROJECT_TABLE = ("tool", "pytest-rollout")

_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_IMAGE_REF = re.compile(
    r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@[a-z0-9]+:[a-f0-9]{32,})?"
)
_BODY_METHODS = ("DELETE", "PATCH", "POST", "PUT")


def find_config_file(starts: Sequence[Path], explicit: Path | None = None) -> Path | None:
    """The config file (see the module docstring), or None when there is none.

    Each directory of ``starts`` is searched, then its parents, as pytest searches for its ini
    file: the nearest ``rollout.toml``, or ``pyproject.toml`` with the table, wins.
    """
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(f"{display_path(explicit)}: target config file not found")
        return explicit
    seen: set[Path] = set()
    for start in starts:
        for directory in (start, *start.parents):
            if directory in seen:
                break
            seen.add(directory)
            candidate = directory / CONFIG_FILE_NAME
            if candidate.is_file():
                return candidate
            pyproject = directory / PYPROJECT_FILE_NAME
            if pyproject.is_file() and _pyproject_table(_read_toml(pyproject)) is not None:
                return pyproject
    return None


def load_target_config(starts: Sequence[Path], explicit: Path | None = None) -> TargetConfig:
    """The target config found from ``starts``; an error saying where to put one if none."""
    path = find_config_file(starts, explicit)
    if path is None:
        searched = ", ".join(str(start) for start in dict.fromkeys(starts))
        raise ConfigError(
            f"no target config found from {searched} (or their parents): write "
            f"{CONFIG_FILE_NAME} there or add a [{'.'.join(PYPROJECT_TABLE)}] table to "
            f"{PYPROJECT_FILE_NAME}, or pass --rollout-config PATH"
        )
    return load_config(path)


def load_config(path: Path) -> TargetConfig:
    """Read and validate the config file ``path``."""
    data = _read_toml(path)
    section: tuple[str, ...] = ()
    if path.name == PYPROJECT_FILE_NAME:
        table = _pyproject_table(data)
        if table is None:
            raise ConfigError(f"{display_path(path)}: no [{'.'.join(PYPROJECT_TABLE)}] table")
        data, section = table, PYPROJECT_TABLE
    return parse_config(data, source=path, section=section)


def parse_config(
    data: Mapping[str, Any], *, source: Path, section: tuple[str, ...] = ()
) -> TargetConfig:
    """Validate parsed TOML ``data`` read from ``source`` (under table ``section``)."""
    root = source.resolve().parent
    top = Where(display_path(source), section)
    check_keys(
        data,
        top,
        allowed=(
            "manifests",
            "images",
            "requests",
            "version",
            "variants",
            "backends",
            "serving",
            "prometheus",
            "experiments",
        ),
        required=("manifests", "images", "requests", "version"),
    )
    requests = _requests(data["requests"], top)
    return TargetConfig(
        source=source,
        root=root,
        manifest_sets=_manifest_sets(data["manifests"], top, root),
        images=_images(data["images"], top, root),
        requests=requests,
        version=_version(data["version"], top),
        variants=_variants(data.get("variants", {}), top),
        backends=_backends(data.get("backends", {}), top),
        serving=_serving(data.get("serving"), top, requests),
        prometheus_addresses=_prometheus(data.get("prometheus", {}), top),
        experiments=_experiments(data.get("experiments", {}), top),
        section=section,
    )


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as stream:
            return tomllib.load(stream)
    except OSError as exc:
        raise ConfigError(f"{display_path(path)}: cannot read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{display_path(path)}: invalid TOML: {exc}") from exc


def _pyproject_table(data: Mapping[str, Any]) -> dict[str, Any] | None:
    tool = data.get(PYPROJECT_TABLE[0])
    if not isinstance(tool, dict):
        return None
    table = tool.get(PYPROJECT_TABLE[1])
    return table if isinstance(table, dict) else None


# --- the sections ------------------------------------------------------------------------


def _manifest_sets(value: object, top: Where, root: Path) -> Mapping[str, tuple[Path, ...]]:
    if isinstance(value, list):
        where = top.key("manifests")
        return MappingProxyType({DEFAULT_MANIFEST_SET: _manifest_files(value, where, root)})
    where = top.section("manifests")
    table = require_table(value, where, expected="an array of paths or a table of named arrays")
    if not table:
        raise where.error("expected at least one manifest set")
    sets: dict[str, tuple[Path, ...]] = {}
    for name, entries in table.items():
        check_name(name, where, what="manifest set")
        sets[name] = _manifest_files(entries, where.key(name), root)
    return MappingProxyType(sets)


def _manifest_files(value: object, where: Where, root: Path) -> tuple[Path, ...]:
    entries = require_strings(value, where, what="paths or globs")
    files: dict[Path, None] = {}
    for index, entry in enumerate(entries):
        for path in _expand(entry, where.key(index), root):
            files.setdefault(path, None)
    return tuple(files)


def _expand(entry: str, where: Where, root: Path) -> list[Path]:
    relative_to = f"relative to {display_path(root)}"
    if any(char in entry for char in "*?["):
        matches = sorted(
            Path(found)
            for found in glob.glob(str(root / entry), recursive=True)
            if Path(found).is_file()
        )
        if not matches:
            raise where.error(f"{entry!r} matches no file ({relative_to})")
        return matches
    path = root / entry
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in (".yaml", ".yml"))
        if not files:
            raise where.error(f"directory {entry!r} holds no .yaml or .yml file ({relative_to})")
        return files
    if path.is_file():
        return [path]
    raise where.error(f"{entry!r}: no such file or directory ({relative_to})")


def _images(value: object, top: Where, root: Path) -> tuple[ImageRun, ...]:
    where = top.section("images")
    table = require_table(value, where)
    if not table:
        raise where.error("expected at least one image")
    runs = []
    for image, entry in table.items():
        here = where.section(image)
        if not _IMAGE_REF.fullmatch(image):
            raise here.error(
                "expected an image reference such as 'example/app' or 'example/app:1.0'"
            )
        spec = require_table(entry, here)
        check_keys(spec, here, allowed=("command", "cwd", "env", "build"), required=("command",))
        command = require_strings(
            spec["command"], here.key("command"), what="command arguments", empty_items=True
        )
        if not command[0]:
            raise here.key("command").key(0).error("expected a program, got an empty string")
        for index, arg in enumerate(command):
            check_template(arg, here.key("command").key(index))
        cwd = _directory(spec.get("cwd", "."), here.key("cwd"), root)
        env = _env(spec.get("env", {}), here.key("env"), templates=True)
        build = _build(spec["build"], here.key("build"), root) if "build" in spec else None
        runs.append(ImageRun(image, command, cwd, env, build, f"{here.label}: {here}"))
    return tuple(runs)


def _build(value: object, where: Where, root: Path) -> ImageBuild:
    # Only the kube backend builds images, so it checks that these paths exist, not the load:
    # a missing Dockerfile must not stop a local run.
    spec = require_table(value, where)
    check_keys(spec, where, allowed=("context", "dockerfile"))
    context = root / require_string(spec.get("context", "."), where.key("context"))
    dockerfile = None
    if "dockerfile" in spec:
        dockerfile = root / require_string(spec["dockerfile"], where.key("dockerfile"))
    return ImageBuild(context, dockerfile)


def _requests(value: object, top: Where) -> tuple[Route, ...]:
    where = top.key("requests")
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise where.error(f"expected an array of tables ([[requests]]), got {toml_type(value)}")
    if not value:
        raise where.error("expected at least one request")
    routes: list[Route] = []
    names: set[str] = set()
    for index, item in enumerate(value):
        here = where.key(index)
        check_keys(
            item,
            here,
            allowed=("name", "method", "path", "weight", "json", "capture"),
            required=("path",),
        )
        method = require_string(item.get("method", "GET"), here.key("method")).upper()
        if method not in HTTP_METHODS:
            raise here.key("method").error(
                f"expected one of {', '.join(sorted(HTTP_METHODS))}, got {item['method']!r}"
            )
        path = require_string(item["path"], here.key("path"))
        if not path.startswith("/"):
            raise here.key("path").error(f"expected a path starting with '/', got {path!r}")
        try:
            path_names(path)
        except ValueError as exc:
            raise here.key("path").error(str(exc)) from None
        capture = require_table(item.get("capture", {}), here.key("capture"))
        try:
            check_capture(method, capture)
        except ValueError as exc:
            raise here.key("capture").error(str(exc)) from None
        weight = item.get("weight", 1)
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise here.key("weight").error(f"expected a positive number, got {toml_type(weight)}")
        if not math.isfinite(weight) or weight <= 0:
            raise here.key("weight").error(f"expected a positive number, got {weight!r}")
        body = None
        if "json" in item:
            if method not in _BODY_METHODS:
                raise here.key("json").error(
                    f"a {method} request has no body; allowed with {', '.join(_BODY_METHODS)}"
                )
            body = item["json"]
            check_json(body, here.key("json"))
        name = require_string(item.get("name", f"{method} {path}"), here.key("name"))
        if name in names:
            raise here.key("name").error(f"request name {name!r} is used twice")
        names.add(name)
        routes.append(Route(name, method, path, body, float(weight), capture))
    uncaptured = first_uncaptured(routes)
    if uncaptured is not None:
        index, name = uncaptured
        raise (
            where.key(index)
            .key("path")
            .error(
                f"{{{name}}} is not captured by an earlier request; list first a [[requests]] "
                f'entry with capture = {{ {name} = "FIELD" }}'
            )
        )
    return tuple(routes)


def _version(value: object, top: Where) -> VersionSource:
    where = top.section("version")
    spec = require_table(value, where)
    check_keys(spec, where, allowed=("header", "json"))
    if not spec:
        raise where.error("expected 'header' (a response header) and/or 'json' (a body field)")
    header = None
    if "header" in spec:
        header = require_string(spec["header"], where.key("header"))
        if not _HEADER_NAME.fullmatch(header):
            raise where.key("header").error(f"expected an HTTP header name, got {header!r}")
    json_field = None
    if "json" in spec:
        json_field = require_string(spec["json"], where.key("json"))
        if not FIELD_PATH.fullmatch(json_field):
            raise where.key("json").error(
                f"expected a field name, dotted for nested objects (e.g. 'build.version'), "
                f"got {json_field!r}"
            )
    return VersionSource(header, json_field)


def _variants(value: object, top: Where) -> Mapping[str, Variant]:
    where = top.section("variants")
    table = require_table(value, where)
    variants: dict[str, Variant] = {}
    for name, entry in table.items():
        check_name(name, where, what="variant")
        here = where.section(name)
        spec = require_table(entry, here)
        check_keys(spec, here, allowed=("description", "version", "env", "containers"))
        description = require_string(
            spec.get("description", ""), here.key("description"), empty=True
        )
        env = _env(spec.get("env", {}), here.key("env"), templates=False)
        containers = _containers(spec.get("containers", {}), here)
        if not env and not containers:
            raise here.error("a variant must change something: give 'env' and/or 'containers'")
        version = None
        if "version" in spec:
            version = require_string(spec["version"], here.key("version"))
        variants[name] = Variant(
            name,
            description,
            env,
            MappingProxyType(containers),
            f"{here.label}: {here}",
            version=version,
        )
    return MappingProxyType(variants)


def _containers(value: object, variant: Where) -> dict[str, ContainerOverride]:
    where = variant.key("containers")
    table = require_table(value, where)
    overrides: dict[str, ContainerOverride] = {}
    for name, entry in table.items():
        check_name(name, where, what="container")
        here = variant.section("containers", name)
        spec = require_table(entry, here)
        check_keys(spec, here, allowed=("image", "env"))
        image = None
        if "image" in spec:
            image = require_string(spec["image"], here.key("image"))
            if not _IMAGE_REF.fullmatch(image):
                raise here.key("image").error(f"expected an image reference, got {image!r}")
        env = _env(spec.get("env", {}), here.key("env"), templates=False)
        if image is None and not env:
            raise here.error("expected 'image' and/or 'env'")
        overrides[name] = ContainerOverride(image, env)
    return overrides


def _serving(value: object, top: Where, requests: tuple[Route, ...]) -> ServingCheck:
    if value is None:
        first = requests[0]
        return ServingCheck(
            first.method, first.path, first.json_body, None, "the first [[requests]]"
        )
    where = top.section("serving")
    spec = require_table(value, where)
    check_keys(spec, where, allowed=("method", "path", "status"), required=("path",))
    method = require_string(spec.get("method", "GET"), where.key("method")).upper()
    if method not in ("GET", "HEAD"):
        raise where.key("method").error(f"expected GET or HEAD, got {spec['method']!r}")
    path = require_string(spec["path"], where.key("path"))
    if not path.startswith("/"):
        raise where.key("path").error(f"expected a path starting with '/', got {path!r}")
    status = spec.get("status", 200)
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise where.key("status").error(f"expected an HTTP status code, got {status!r}")
    return ServingCheck(method, path, None, status, f"{where.label}: {where}")


def _prometheus(value: object, top: Where) -> tuple[str, ...]:
    where = top.section("prometheus")
    spec = require_table(value, where)
    check_keys(spec, where, allowed=("addresses",))
    if "addresses" not in spec:
        return ()
    addresses = require_strings(spec["addresses"], where.key("addresses"), what="URLs")
    for index, address in enumerate(addresses):
        parts = urllib.parse.urlsplit(address)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise (
                where.key("addresses")
                .key(index)
                .error(
                    f"expected an http(s) URL such as 'http://prometheus.monitoring:9090', "
                    f"got {address!r}"
                )
            )
        if parts.path.strip("/") or parts.query or parts.fragment:
            raise (
                where.key("addresses")
                .key(index)
                .error(f"expected a server address without a path, got {address!r}")
            )
    return addresses


def _experiments(value: object, top: Where) -> Mapping[str, Mapping[str, Any]]:
    # Each experiment is validated when it is collected, so that one bad table is one
    # collection error and the others still run.
    where = top.section("experiments")
    spec = require_table(value, where)
    experiments: dict[str, Mapping[str, Any]] = {}
    for name, entry in spec.items():
        check_name(name, where, what="experiment")
        experiments[name] = MappingProxyType(require_table(entry, where.section(name)))
    return MappingProxyType(experiments)


def _backends(value: object, top: Where) -> Mapping[str, BackendSettings]:
    where = top.section("backends")
    table = require_table(value, where)
    check_keys(table, where, allowed=BACKEND_NAMES)
    backends: dict[str, BackendSettings] = {}
    for name in BACKEND_NAMES:
        here = where.section(name)
        spec = require_table(table.get(name, {}), here)
        check_keys(spec, here, allowed=("env",))
        env = _env(spec.get("env", {}), here.key("env"), templates=name == "local")
        backends[name] = BackendSettings(name, env, f"{here.label}: {here}")
    return MappingProxyType(backends)


# --- value checks --------------------------------------------------------------------------


def _directory(value: object, where: Where, root: Path) -> Path:
    text = require_string(value, where)
    path = root / text
    if not path.is_dir():
        raise where.error(f"directory {text!r} not found (relative to {display_path(root)})")
    return path


def _env(value: object, where: Where, *, templates: bool) -> Mapping[str, str]:
    table = require_table(value, where)
    env: dict[str, str] = {}
    for name, text in table.items():
        if not _ENV_NAME.fullmatch(name):
            raise where.error(
                f"{name!r} is not an environment variable name (letters, digits, '_', '-', '.')"
            )
        env[name] = require_string(text, where.key(name), empty=True)
        if templates:
            check_template(env[name], where.key(name))
    return MappingProxyType(env)
