"""The target config: where it is found, what it holds, and one-line errors for bad input."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_rollout.backends.local.commands import local_command
from pytest_rollout.config import TargetConfig
from pytest_rollout.config_file import (
    find_config_file,
    load_config,
    load_target_config,
    parse_config,
)
from pytest_rollout.errors import ConfigError
from pytest_rollout.load.version import ResponseView

REPO = Path(__file__).resolve().parents[2]

MINIMAL = """\
manifests = ["k8s"]

[images."example/shop"]
command = ["{python}", "-m", "shop", "--host", "{host}", "--port", "{port}"]

[[requests]]
path = "/"

[version]
header = "X-Version"
"""


@pytest.fixture(autouse=True)
def _project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A foreign project: its own manifests, its paths shown relative to it.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "k8s").mkdir()
    (tmp_path / "k8s" / "app.yaml").write_text(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: shop\n"
    )


def write(text: str, name: str = "rollout.toml") -> Path:
    path = Path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def load(text: str) -> TargetConfig:
    return load_config(write(text))


def error(text: str, name: str = "rollout.toml") -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(write(text, name))
    message = str(caught.value)
    assert "\n" not in message
    return message


# --- the reference service's own config ----------------------------------------------------


def test_the_repository_config_loads_with_every_release_variant() -> None:
    config = load_target_config([REPO])
    assert config.source == REPO / "rollout.toml"
    assert {"good", "slow-boot", "bad", "checkout-broken", "smoke-fail", "subtle", "slow"} <= set(
        config.variants
    )
    assert set(config.manifest_sets) == {
        "readiness-with-probe",
        "readiness-without-probe",
        "bad-canary",
        "smoke-gate",
        "business-gate",
        "expand-contract",
        "big-bang-migration",
        "canary-judge-fixed-step",
        "canary-judge-fixed-1s",
        "canary-judge-sequential",
        "basic-canary",
        "blue-green",
        "strategy-cost-canary",
        "strategy-cost-canary-default",
        "strategy-cost-blue-green",
        "strategy-cost-rolling",
    }
    for name in config.manifest_sets:
        assert config.load_manifests(name), name
    assert config.image("pytest-rollout/reference-service:dev").cwd == REPO
    assert [(r.method, r.path) for r in config.requests] == [
        ("GET", "/"),
        ("POST", "/checkout"),
        ("GET", "/orders/{order}"),
    ]
    assert config.backend_env("kube")["SERVICE_DATABASE_URL"].startswith("postgresql+psycopg://")


def test_the_config_code_does_not_know_the_reference_service() -> None:
    source = (REPO / "pytest_rollout" / "config.py").read_text().lower()
    for name in ("reference-service", "reference_service", "service_version", "checkout"):
        assert name not in source


# --- finding the file ------------------------------------------------------------------------


def test_rollout_toml_wins_over_pyproject(tmp_path: Path) -> None:
    write(MINIMAL)
    write(
        "[tool.pytest-rollout]\nmanifests = []\n",
        "pyproject.toml",
    )
    assert find_config_file([tmp_path]) == tmp_path / "rollout.toml"
    assert load_target_config([tmp_path]).source.name == "rollout.toml"


def test_pyproject_table_is_used_without_rollout_toml(tmp_path: Path) -> None:
    text = "[project]\nname = 'shop'\n\n" + MINIMAL.replace(
        'manifests = ["k8s"]', '[tool.pytest-rollout]\nmanifests = ["k8s"]'
    ).replace("[images.", "[tool.pytest-rollout.images.").replace(
        "[[requests]]", "[[tool.pytest-rollout.requests]]"
    ).replace("[version]", "[tool.pytest-rollout.version]")
    write(text, "pyproject.toml")
    config = load_target_config([tmp_path])
    assert config.source == tmp_path / "pyproject.toml"
    assert config.manifest_paths() == (tmp_path / "k8s" / "app.yaml",)


def test_pyproject_without_the_table_is_no_config(tmp_path: Path) -> None:
    write("[project]\nname = 'shop'\n", "pyproject.toml")
    assert find_config_file([tmp_path]) is None
    with pytest.raises(ConfigError) as caught:
        load_target_config([tmp_path])
    assert str(caught.value) == (
        f"no target config found from {tmp_path} (or their parents): write rollout.toml there "
        "or add a [tool.pytest-rollout] table to pyproject.toml, or pass --rollout-config PATH"
    )


def test_the_nearest_config_above_a_start_wins(tmp_path: Path) -> None:
    write(MINIMAL)
    nested = tmp_path / "services" / "shop" / "tests"
    nested.mkdir(parents=True)
    assert find_config_file([nested]) == tmp_path / "rollout.toml"
    write(MINIMAL, "services/shop/rollout.toml")
    assert find_config_file([nested]) == tmp_path / "services" / "shop" / "rollout.toml"
    # The first start that finds one wins: the invocation directory before the rootdir.
    assert find_config_file([tmp_path, nested]) == tmp_path / "rollout.toml"


def test_an_explicit_file_wins_and_must_exist(tmp_path: Path) -> None:
    write(MINIMAL)
    other = write(MINIMAL.replace('"X-Version"', '"X-Build"'), "target.toml")
    other_config = load_target_config([tmp_path], explicit=other.resolve())
    assert other_config.version.header == "X-Build"
    with pytest.raises(ConfigError, match=r"^nope\.toml: target config file not found$"):
        load_target_config([tmp_path], explicit=Path("nope.toml"))
    write("[project]\n", "ci/pyproject.toml")
    with pytest.raises(ConfigError, match=r"^ci/pyproject\.toml: no \[tool\.pytest-rollout\]"):
        load_target_config([tmp_path], explicit=Path("ci/pyproject.toml"))


def test_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "deploy" / "k8s").mkdir(parents=True)
    (tmp_path / "deploy" / "k8s" / "x.yml").write_text(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\n"
    )
    config = load_config(write(MINIMAL, "deploy/rollout.toml"))
    assert config.manifest_paths() == (tmp_path / "deploy" / "k8s" / "x.yml",)
    assert config.root == tmp_path / "deploy"


def test_invalid_toml_names_the_file() -> None:
    assert error("manifests = [\n").startswith("rollout.toml: invalid TOML: ")


# --- the example error, and unknown or missing keys ------------------------------------------


def test_a_wrong_type_names_file_table_key_and_types() -> None:
    message = error(MINIMAL + "[variants.bad]\nenv = { SERVICE_ERROR_RATE = 0 }\n")
    assert message == (
        "rollout.toml: [variants.bad].env.SERVICE_ERROR_RATE: expected a string, got integer"
    )


def test_in_pyproject_the_table_prefix_is_shown() -> None:
    text = (
        "[tool.pytest-rollout]\n"
        + MINIMAL.replace("[images.", "[tool.pytest-rollout.images.")
        .replace("[[requests]]", "[[tool.pytest-rollout.requests]]")
        .replace("[version]", "[tool.pytest-rollout.version]")
        + "[tool.pytest-rollout.variants.bad]\nenv = { RATE = 0.5 }\n"
    )
    assert error(text, "pyproject.toml") == (
        "pyproject.toml: [tool.pytest-rollout.variants.bad].env.RATE: expected a string, got float"
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            "colour = 'blue'\n",
            "rollout.toml: [version]: unknown key 'colour'; allowed: header, json",
        ),
        (
            "[variants.bad]\nenn = { A = '1' }\n",
            "rollout.toml: [variants.bad]: unknown key 'enn'; allowed: containers, description, "
            "env, version",
        ),
        (
            "[variants.bad.containers.app]\nimg = 'x/y:1'\n",
            "rollout.toml: [variants.bad.containers.app]: unknown key 'img'; allowed: env, image",
        ),
        (
            "[backends.docker]\nenv = {}\n",
            "rollout.toml: [backends]: unknown key 'docker'; allowed: kube, local",
        ),
        (
            "[backends.local]\nenvironment = {}\n",
            "rollout.toml: [backends.local]: unknown key 'environment'; allowed: env",
        ),
        (
            '[images."example/shop".build]\ncontext = "."\nfile = "Dockerfile"\n',
            "rollout.toml: [images.\"example/shop\"].build: unknown key 'file'; allowed: "
            "context, dockerfile",
        ),
    ],
)
def test_unknown_keys_are_rejected_by_name(extra: str, message: str) -> None:
    assert error(MINIMAL + extra) == message


def test_an_unknown_top_level_key_is_rejected() -> None:
    assert error("target = 'shop'\n" + MINIMAL) == (
        "rollout.toml: unknown key 'target'; allowed: backends, experiments, images, manifests, "
        "prometheus, requests, serving, variants, version"
    )


def test_a_missing_section_is_named() -> None:
    text = MINIMAL.replace('[version]\nheader = "X-Version"\n', "")
    assert error(text) == "rollout.toml: missing required key 'version'"


# --- manifests ---------------------------------------------------------------------------------


def test_manifest_sets_by_name_glob_and_directory(tmp_path: Path) -> None:
    (tmp_path / "k8s" / "b.yaml").write_text("apiVersion: v1\nkind: Service\nmetadata: {name: b}\n")
    (tmp_path / "k8s" / "notes.txt").write_text("not a manifest")
    text = MINIMAL.replace(
        'manifests = ["k8s"]',
        '[manifests]\nall = ["k8s"]\none = ["k8s/b.yaml", "k8s/*.yaml"]\n',
    )
    # Table headers must come before the other tables' keys; move [manifests] to the end.
    body = text.split("[manifests]")
    config = load(body[0] + "[manifests]" + body[1])
    k8s = tmp_path / "k8s"
    assert config.manifest_paths("all") == (k8s / "app.yaml", k8s / "b.yaml")
    assert config.manifest_paths("one") == (k8s / "b.yaml", k8s / "app.yaml")  # no repeats
    with pytest.raises(ConfigError) as caught:
        config.manifest_paths()
    assert str(caught.value) == "rollout.toml: no manifest set 'default'; sets: all, one"


@pytest.mark.parametrize(
    ("manifests", "message"),
    [
        ('["k8s/*.json"]', "rollout.toml: manifests[0]: 'k8s/*.json' matches no file"),
        ('["k8s", "gone.yaml"]', "rollout.toml: manifests[1]: 'gone.yaml': no such file"),
        ('["empty"]', "rollout.toml: manifests[0]: directory 'empty' holds no .yaml or .yml"),
        ("[]", "rollout.toml: manifests: expected at least one of paths or globs"),
        ('"k8s"', "rollout.toml: [manifests]: expected an array of paths or a table of named"),
        ("[1]", "rollout.toml: manifests[0]: expected a string, got integer"),
    ],
)
def test_bad_manifest_entries(tmp_path: Path, manifests: str, message: str) -> None:
    (tmp_path / "empty").mkdir()
    text = MINIMAL.replace('manifests = ["k8s"]', f"manifests = {manifests}")
    assert error(text).startswith(message)


def test_manifest_set_names_are_checked() -> None:
    text = MINIMAL.replace('manifests = ["k8s"]', "") + '[manifests]\nBad_Name = ["k8s"]\n'
    assert error(text).startswith(
        "rollout.toml: [manifests]: manifest set name 'Bad_Name': expected lowercase letters"
    )


# --- images and local commands ---------------------------------------------------------------


def test_local_command_renders_placeholders_and_layers_env(tmp_path: Path) -> None:
    config = load(
        MINIMAL.replace(
            '"{port}"]',
            '"{port}", "--admin", "{port:admin}", "--literal", "{{x}}"]\n'
            'env = { HOME_DIR = "{data_dir}/home", SHARED = "image" }',
        )
        + '[backends.local]\nenv = { SHARED = "backend", DB = "sqlite:///{data_dir}/db" }\n'
        + '[backends.kube]\nenv = { DB = "postgres://{host}" }\n'
    )
    command = local_command(
        config,
        "example/shop:1.2",
        host="127.0.3.4",
        port=8080,
        ports={"http": 8080, "admin": 9000},
        data_dir=tmp_path / "ns",
        container_env={"SHARED": "manifest", "MODE": "fast"},
        python="/usr/bin/python3",
    )
    assert command.argv == (
        "/usr/bin/python3", "-m", "shop", "--host", "127.0.3.4", "--port", "8080",
        "--admin", "9000", "--literal", "{x}",
    )  # fmt: skip
    assert dict(command.env) == {
        "HOME_DIR": f"{tmp_path}/ns/home",
        "SHARED": "backend",  # image < manifest < backend
        "MODE": "fast",
        "DB": f"sqlite:///{tmp_path}/ns/db",
    }
    assert command.cwd == tmp_path
    assert config.backend_env("kube") == {"DB": "postgres://{host}"}  # literal on kube


def test_a_missing_port_is_named_when_rendering(tmp_path: Path) -> None:
    config = load(MINIMAL.replace('"{port}"]', '"{port:metrics}"]'))
    with pytest.raises(ConfigError) as caught:
        local_command(
            config,
            "example/shop",
            host="127.0.0.2",
            port=None,
            ports={"http": 80},
            data_dir=tmp_path,
            container_env={},
        )
    assert str(caught.value) == (
        'rollout.toml: [images."example/shop"]: cannot fill {port:metrics} in '
        "'{port:metrics}': the container has no port named 'metrics' (named ports: http)"
    )


def test_images_match_exactly_or_by_repository() -> None:
    config = load(
        MINIMAL
        + '[images."example/shop:debug"]\ncommand = ["shop-debug"]\n'
        + '[images."registry:5000/team/api"]\ncommand = ["api"]\n'
    )
    assert config.image("example/shop:debug").command == ("shop-debug",)
    assert config.image("example/shop:1.0").image == "example/shop"
    assert config.image("example/shop@sha256:" + "a" * 64).image == "example/shop"
    assert config.image("registry:5000/team/api:v3").command == ("api",)
    with pytest.raises(ConfigError) as caught:
        config.image("example/shopping:1")
    assert str(caught.value) == (
        "rollout.toml: no [images] entry runs image 'example/shopping:1'; entries: "
        "example/shop, example/shop:debug, registry:5000/team/api"
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ('"{python}"', '"{pyhton}"'),
            'rollout.toml: [images."example/shop"].command[0]: unknown placeholder {pyhton}; '
            "allowed: {host}, {port}, {port:NAME}, {python}, {data_dir}",
        ),
        (
            ('"{python}"', '"x}"'),
            "rollout.toml: [images.\"example/shop\"].command[0]: unmatched '}' in 'x}'; write }} "
            "for a literal brace",
        ),
        (
            ("command = [", 'command = "python" #['),
            'rollout.toml: [images."example/shop"].command: expected an array of command '
            "arguments, got string",
        ),
        (
            ('[images."example/shop"]', '[images."Example Shop"]'),
            'rollout.toml: [images."Example Shop"]: expected an image reference',
        ),
        (
            ('"{port}"]', '"{port}"]\ncwd = "src"'),
            "rollout.toml: [images.\"example/shop\"].cwd: directory 'src' not found",
        ),
    ],
)
def test_bad_image_entries(change: tuple[str, str], message: str) -> None:
    assert error(MINIMAL.replace(*change)).startswith(message)


# --- requests and version ------------------------------------------------------------------


def test_requests_become_load_routes() -> None:
    config = load(
        MINIMAL.replace(
            '[[requests]]\npath = "/"\n',
            '[[requests]]\npath = "/"\nweight = 3\n\n'
            '[[requests]]\nname = "buy"\nmethod = "post"\npath = "/orders"\n'
            'json = { item = "book", tags = ["a"] }\n',
        )
    )
    index, buy = config.requests
    assert (index.name, index.method, index.weight, index.json_body) == ("GET /", "GET", 3.0, None)
    assert (buy.name, buy.method, buy.path) == ("buy", "POST", "/orders")
    assert buy.encoded_body() == b'{"item":"book","tags":["a"]}'


@pytest.mark.parametrize(
    ("request_text", "message"),
    [
        ('path = "/"\nmethod = "FETCH"', "requests[0].method: expected one of DELETE, GET, HEAD"),
        ('path = "orders"', "requests[0].path: expected a path starting with '/', got 'orders'"),
        ('path = "/"\nweight = 0', "requests[0].weight: expected a positive number, got 0"),
        (
            'path = "/"\nweight = true',
            "requests[0].weight: expected a positive number, got boolean",
        ),
        ('path = "/"\njson = { a = 1 }', "requests[0].json: a GET request has no body; allowed "),
        ('method = "GET"', "requests[0]: missing required key 'path'"),
        (
            'path = "/"\nheaders = {}',
            "requests[0]: unknown key 'headers'; allowed: capture, json, method",
        ),
    ],
)
def test_bad_requests(request_text: str, message: str) -> None:
    text = MINIMAL.replace('[[requests]]\npath = "/"\n', f"[[requests]]\n{request_text}\n")
    assert error(text).startswith(f"rollout.toml: {message}")


def test_request_names_are_unique() -> None:
    text = MINIMAL.replace('[[requests]]\npath = "/"\n', '[[requests]]\npath = "/"\n' * 2)
    assert error(text) == "rollout.toml: requests[1].name: request name 'GET /' is used twice"


def test_version_from_header_then_json_field() -> None:
    config = load(MINIMAL.replace('header = "X-Version"', 'header = "X-Version"\njson = "b.v"'))
    extract = config.version.extractor()
    assert extract(ResponseView(200, {"X-Version": "v2"}, b'{"b": {"v": "v9"}}')) == "v2"
    assert extract(ResponseView(200, {}, b'{"b": {"v": "v9"}}')) == "v9"
    assert extract(ResponseView(502, {}, b"<html>bad gateway</html>")) is None
    only_json = load(MINIMAL.replace('header = "X-Version"', 'json = "version"'))
    assert only_json.version.extractor()(ResponseView(200, {}, b'{"version": 3}')) == "3"


@pytest.mark.parametrize(
    ("version", "message"),
    [
        ("", "[version]: expected 'header' (a response header) and/or 'json' (a body field)"),
        ('header = "X Version"', "[version].header: expected an HTTP header name"),
        ('json = "a..b"', "[version].json: expected a field name, dotted for nested objects"),
    ],
)
def test_bad_version_sources(version: str, message: str) -> None:
    text = MINIMAL.replace('header = "X-Version"', version)
    assert error(text).startswith(f"rollout.toml: {message}")


# --- variants ----------------------------------------------------------------------------------

POD_SPEC: dict[str, Any] = {
    "containers": [
        {
            "name": "app",
            "image": "example/shop:1",
            "env": [
                {"name": "VERSION", "value": "v1"},
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
            ],
        },
        {"name": "proxy", "image": "example/proxy:1"},
    ]
}


def test_a_variant_overrides_env_and_images_per_container() -> None:
    config = load(
        MINIMAL
        + "[variants.bad]\n"
        + 'description = "fails"\n'
        + 'env = { VERSION = "v2-bad", TOKEN = "t", RATE = "0.5" }\n'
        + '[variants.bad.containers.proxy]\nimage = "example/proxy:2"\nenv = { RATE = "0" }\n'
    )
    variant = config.variant("bad")
    assert variant.description == "fails"
    spec = variant.apply(POD_SPEC)
    app, proxy = spec["containers"]
    assert app["image"] == "example/shop:1"
    assert app["env"] == [
        {"name": "VERSION", "value": "v2-bad"},
        {"name": "TOKEN", "value": "t"},
        {"name": "RATE", "value": "0.5"},
    ]
    assert proxy == {
        "name": "proxy",
        "image": "example/proxy:2",
        "env": [
            {"name": "VERSION", "value": "v2-bad"},
            {"name": "TOKEN", "value": "t"},
            {"name": "RATE", "value": "0"},  # the container's own env wins
        ],
    }
    assert POD_SPEC["containers"][0]["env"][0]["value"] == "v1"  # the input is untouched


def test_a_variant_changes_init_containers_too() -> None:
    config = load(
        MINIMAL
        + '[variants.v2]\nenv = { VERSION = "v2" }\n'
        + '[variants.v2.containers.migrate]\nenv = { TARGET = "0002" }\n'
    )
    pod_spec = {**POD_SPEC, "initContainers": [{"name": "migrate", "image": "example/shop:1"}]}
    spec = config.variant("v2").apply(pod_spec)
    assert spec["initContainers"] == [
        {
            "name": "migrate",
            "image": "example/shop:1",
            "env": [{"name": "VERSION", "value": "v2"}, {"name": "TARGET", "value": "0002"}],
        }
    ]
    assert spec["containers"][0]["env"][0] == {"name": "VERSION", "value": "v2"}


def test_a_variant_naming_a_missing_container_fails_on_apply() -> None:
    config = load(MINIMAL + '[variants.v2.containers.web]\nimage = "example/web:2"\n')
    with pytest.raises(ConfigError) as caught:
        config.variant("v2").apply(POD_SPEC)
    assert str(caught.value) == (
        "rollout.toml: [variants.v2]: container 'web' is not in the pod template "
        "(containers: app, proxy)"
    )


def test_unknown_variant_lists_the_known_ones() -> None:
    config = load(MINIMAL + '[variants.good]\nenv = { V = "2" }\n')
    with pytest.raises(ConfigError, match=r"^rollout\.toml: no variant 'gud'; variants: good$"):
        config.variant("gud")


@pytest.mark.parametrize(
    ("variant", "message"),
    [
        ("[variants.Bad]\nenv = { A = '1' }", "[variants]: variant name 'Bad': expected lowercase"),
        ("[variants.noop]\ndescription = 'x'", "[variants.noop]: a variant must change something"),
        ("[variants.v.containers.app]\n", "[variants.v.containers.app]: expected 'image' and/or"),
        ("[variants.v]\nenv = { '1 A' = 'x' }", "[variants.v].env: '1 A' is not an environment"),
        (
            "[variants.v.containers.app]\nimage = 'Shop:1'",
            "[variants.v.containers.app].image: expected an image reference, got 'Shop:1'",
        ),
    ],
)
def test_bad_variants(variant: str, message: str) -> None:
    assert error(MINIMAL + variant + "\n").startswith(f"rollout.toml: {message}")


# --- properties --------------------------------------------------------------------------------

toml_values = st.one_of(
    st.integers(),
    st.floats(allow_nan=False),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=toml_values)
def test_any_non_string_env_value_is_one_line_naming_the_key(value: object) -> None:
    data = {
        "manifests": ["k8s"],
        "images": {"example/shop": {"command": ["shop"]}},
        "requests": [{"path": "/"}],
        "version": {"header": "X-Version"},
        "variants": {"v": {"env": {"RATE": value}}},
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(data, source=Path("rollout.toml"))
    message = str(caught.value)
    assert message.startswith("rollout.toml: [variants.v].env.RATE: expected a string, got ")
    assert "\n" not in message


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=30))
def test_any_command_argument_is_accepted_and_rendered_or_rejected_cleanly(text: str) -> None:
    data = {
        "manifests": ["k8s"],
        "images": {"example/shop": {"command": ["shop", text]}},
        "requests": [{"path": "/"}],
        "version": {"header": "X-Version"},
    }
    outcome: TargetConfig | ConfigError
    try:
        outcome = parse_config(data, source=Path("rollout.toml"))
    except ConfigError as exc:
        outcome = exc
    if isinstance(outcome, ConfigError):
        assert str(outcome).startswith('rollout.toml: [images."example/shop"].command[1]: ')
        assert "{" in text or "}" in text
        return
    command = local_command(
        outcome,
        "example/shop",
        host="127.0.0.9",
        port=1,
        ports={},
        data_dir=Path("/d"),
        container_env={},
        python="py",
    )
    if "{" not in text and "}" not in text:
        assert command.argv[1] == text


# --- serving, prometheus, variant versions, experiments ----------------------------------------


def test_serving_defaults_to_the_first_request_of_the_mix() -> None:
    config = load(MINIMAL)
    assert (config.serving.method, config.serving.path, config.serving.status) == ("GET", "/", None)
    assert config.serving.accepts(204)
    assert not config.serving.accepts(404)


def test_serving_can_name_its_own_check() -> None:
    config = load(MINIMAL + '[serving]\npath = "/health/ready"\nstatus = 204\n')
    assert config.serving.describe() == "GET /health/ready to answer 204"
    assert error(MINIMAL + '[serving]\npath = "health"\n') == (
        "rollout.toml: [serving].path: expected a path starting with '/', got 'health'"
    )
    assert error(MINIMAL + '[serving]\npath = "/"\nmethod = "POST"\n') == (
        "rollout.toml: [serving].method: expected GET or HEAD, got 'POST'"
    )


def test_prometheus_addresses_are_server_urls() -> None:
    config = load(MINIMAL + '[prometheus]\naddresses = ["http://prometheus.monitoring:9090"]\n')
    assert config.prometheus_addresses == ("http://prometheus.monitoring:9090",)
    assert error(MINIMAL + '[prometheus]\naddresses = ["prometheus:9090"]\n') == (
        "rollout.toml: [prometheus].addresses[0]: expected an http(s) URL such as "
        "'http://prometheus.monitoring:9090', got 'prometheus:9090'"
    )
    assert error(MINIMAL + '[prometheus]\naddresses = ["http://p:9090/api"]\n') == (
        "rollout.toml: [prometheus].addresses[0]: expected a server address without a path, "
        "got 'http://p:9090/api'"
    )


def test_a_variant_may_say_its_version() -> None:
    config = load(MINIMAL + '[variants.bad]\nversion = "v2-bad"\nenv = { E = "1" }\n')
    assert config.variant("bad").version == "v2-bad"


def test_experiments_are_kept_raw_for_collection() -> None:
    config = load(MINIMAL + '[experiments.x]\nkind = "anything"\n')
    assert dict(config.experiments["x"]) == {"kind": "anything"}
    assert error(MINIMAL + "[experiments.Bad_Name]\n") == (
        "rollout.toml: [experiments]: experiment name 'Bad_Name': expected lowercase letters, "
        "digits and '-' (at most 63, starting and ending with a letter or digit)"
    )
