"""Pod specs as the local backend reads them: one container, its init containers, probes,
ports, env and the preStop hook, with every manifest duration scaled.

What is accepted follows ``core/v1`` PodSpec and Container and the API server's validation
(``validateInitContainers``: ``lifecycle`` and the three probes are rejected on an init
container, names must be unique across all containers; a sidecar -- ``restartPolicy: Always`` on
an init container -- is unsupported). Every manifest duration is multiplied by the spec's
``time_scale`` (1 in experiments; tests use e.g. 0.1 to run integer manifests ten times faster).
Fields without meaning on one local node (``resources``, ``imagePullPolicy``,
``securityContext`` ...) are accepted and have no effect; any other field outside the subset is
a ConfigError.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pytest_rollout.backends.local.probes import (
    ExecAction,
    HTTPGetAction,
    ProbeKind,
    ProbeSpec,
    expand_references,
    parse_action,
)
from pytest_rollout.errors import ConfigError
from pytest_rollout.fieldcheck import LOCAL_BACKEND_LABEL, FieldRef
from pytest_rollout.manifests import FieldPath, Manifest
from pytest_rollout.names import is_dns_label

NODE_NAME = "local"
HOST_IP = "127.0.0.1"
DEFAULT_TERMINATION_GRACE_SECONDS = 30

RestartPolicy = Literal["Always", "OnFailure", "Never"]
_RESTART_POLICIES: tuple[RestartPolicy, ...] = ("Always", "OnFailure", "Never")

_CONTAINER_FIELDS = {
    "name",
    "image",
    "command",
    "args",
    "env",
    "ports",
    "readinessProbe",
    "livenessProbe",
    "startupProbe",
    "lifecycle",
}
# Accepted and without effect: on one local node they change nothing a test can observe.
_CONTAINER_INERT = {
    "imagePullPolicy",
    "resources",
    "securityContext",
    "terminationMessagePath",
    "terminationMessagePolicy",
}
# Init containers run to completion before the pod can be Ready: no probes, no hooks.
_INIT_FORBIDDEN = ("lifecycle", "livenessProbe", "readinessProbe", "startupProbe")
_INIT_CONTAINER_FIELDS = _CONTAINER_FIELDS - set(_INIT_FORBIDDEN)
_POD_FIELDS = {"containers", "initContainers", "terminationGracePeriodSeconds", "restartPolicy"}
_POD_INERT = {
    "affinity",
    "automountServiceAccountToken",
    "dnsPolicy",
    "enableServiceLinks",
    "imagePullSecrets",
    "nodeSelector",
    "priorityClassName",
    "schedulerName",
    "securityContext",
    "serviceAccount",
    "serviceAccountName",
    "tolerations",
    "topologySpreadConstraints",
}


def _pod_fields(name: str, namespace: str, uid: str, pod_ip: str) -> dict[str, str]:
    """The pod's own fields a ``fieldRef`` may name, with their values."""
    return {
        "metadata.name": name,
        "metadata.namespace": namespace,
        "metadata.uid": uid,
        "spec.nodeName": NODE_NAME,
        "status.hostIP": HOST_IP,
        "status.podIP": pod_ip,
    }


_FIELD_REFS = frozenset(_pod_fields("", "", "", ""))


# --- spec -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContainerPort:
    container_port: int
    name: str | None = None


@dataclass(frozen=True)
class EnvVar:
    """A container env entry: a literal ``value`` or a ``fieldRef`` to the pod's own fields."""

    name: str
    value: str = ""
    field_path: str | None = None


@dataclass(frozen=True)
class SleepAction:
    seconds: float


PreStopAction = HTTPGetAction | ExecAction | SleepAction


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    image: str
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[EnvVar, ...] = ()
    ports: tuple[ContainerPort, ...] = ()
    readiness_probe: ProbeSpec | None = None
    liveness_probe: ProbeSpec | None = None
    startup_probe: ProbeSpec | None = None
    pre_stop: PreStopAction | None = None

    @property
    def named_ports(self) -> dict[str, int]:
        return {p.name: p.container_port for p in self.ports if p.name}

    @property
    def port_numbers(self) -> tuple[int, ...]:
        return tuple(p.container_port for p in self.ports)

    def probe(self, kind: ProbeKind) -> ProbeSpec | None:
        return {
            ProbeKind.READINESS: self.readiness_probe,
            ProbeKind.LIVENESS: self.liveness_probe,
            ProbeKind.STARTUP: self.startup_probe,
        }[kind]

    @classmethod
    def from_manifest(
        cls, raw: object, *, where: FieldRef, time_scale: float = 1.0
    ) -> ContainerSpec:
        """Parse the container at ``where``; errors name the field and what is allowed."""
        spec = where.mapping(raw)
        where.only(spec, _CONTAINER_FIELDS, inert=_CONTAINER_INERT)
        name = spec.get("name")
        if not isinstance(name, str) or not is_dns_label(name):
            raise where.at("name").invalid("must be a DNS label", value=name)
        image = spec.get("image")
        if not isinstance(image, str) or not image:
            raise where.at("image").invalid("must be a non-empty string")
        ports = _parse_ports(spec.get("ports", []), where.at("ports"))
        named = {p.name: p.container_port for p in ports if p.name}
        probes: dict[ProbeKind, ProbeSpec | None] = {}
        for kind in ProbeKind:
            raw_probe = spec.get(kind.field)
            probes[kind] = (
                None
                if raw_probe is None
                else ProbeSpec.from_manifest(
                    raw_probe,
                    kind=kind,
                    where=where.at(kind.field),
                    ports=named,
                    time_scale=time_scale,
                )
            )
        return cls(
            name=name,
            image=image,
            command=_strings(spec.get("command", []), where.at("command")),
            args=_strings(spec.get("args", []), where.at("args")),
            env=_parse_env(spec.get("env", []), where.at("env")),
            ports=ports,
            readiness_probe=probes[ProbeKind.READINESS],
            liveness_probe=probes[ProbeKind.LIVENESS],
            startup_probe=probes[ProbeKind.STARTUP],
            pre_stop=_parse_lifecycle(
                spec.get("lifecycle"), where.at("lifecycle"), named, time_scale
            ),
        )


@dataclass(frozen=True)
class PodSpec:
    """A pod template's ``spec`` (one container and its init containers, in order), with
    durations in scaled seconds."""

    container: ContainerSpec
    termination_grace_period: float = float(DEFAULT_TERMINATION_GRACE_SECONDS)
    restart_policy: RestartPolicy = "Always"
    time_scale: float = 1.0
    init_containers: tuple[ContainerSpec, ...] = ()

    @classmethod
    def from_manifest(
        cls,
        raw: object,
        *,
        path: FieldPath = ("spec",),
        manifest: Manifest | None = None,
        time_scale: float = 1.0,
    ) -> PodSpec:
        """Parse the pod spec at ``path`` of ``manifest`` (when known: then every error names
        its file and line); errors name the field and what is allowed."""
        if not time_scale > 0:
            raise ConfigError(f"invalid: time_scale={time_scale}: must be greater than 0")
        where = FieldRef(path, manifest, LOCAL_BACKEND_LABEL)
        spec = where.mapping(raw)
        where.only(spec, _POD_FIELDS, inert=_POD_INERT)
        containers = spec.get("containers")
        if not isinstance(containers, list) or not containers:
            raise where.at("containers").invalid("must be a non-empty list")
        if len(containers) > 1:
            raise where.at("containers", 1).unsupported(
                reason="the local backend runs one container per pod"
            )
        grace = spec.get("terminationGracePeriodSeconds", DEFAULT_TERMINATION_GRACE_SECONDS)
        if isinstance(grace, bool) or not isinstance(grace, int) or grace < 0:
            raise where.at("terminationGracePeriodSeconds").invalid(
                "must be an integer >= 0", value=grace
            )
        policy = spec.get("restartPolicy", "Always")
        if policy not in _RESTART_POLICIES:
            raise where.at("restartPolicy").invalid(
                f"allowed: {', '.join(_RESTART_POLICIES)}", value=policy
            )
        init_containers = _parse_init_containers(
            spec.get("initContainers"), where.at("initContainers"), time_scale
        )
        container = ContainerSpec.from_manifest(
            containers[0], where=where.at("containers", 0), time_scale=time_scale
        )
        names = {container.name}
        for index, init in enumerate(init_containers):
            if init.name in names:
                raise where.at("initContainers", index, "name").invalid(
                    "Duplicate value (container names must be unique within a pod)",
                    value=init.name,
                )
            names.add(init.name)
        return cls(
            container=container,
            termination_grace_period=grace * time_scale,
            restart_policy=policy,
            time_scale=time_scale,
            init_containers=init_containers,
        )


def _parse_init_containers(
    raw: object, where: FieldRef, time_scale: float
) -> tuple[ContainerSpec, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise where.invalid("must be a list of containers")
    return tuple(
        _parse_init_container(item, where.at(index), time_scale) for index, item in enumerate(raw)
    )


def _parse_init_container(raw: object, where: FieldRef, time_scale: float) -> ContainerSpec:
    """A regular init container: a container without probes or lifecycle hooks."""
    spec = where.mapping(raw)
    if "restartPolicy" in spec:
        policy = spec["restartPolicy"]
        if policy == "Always":
            raise where.at("restartPolicy").unsupported(
                value=policy,
                reason="sidecar containers; the local backend runs init containers to completion "
                "only",
            )
        raise where.at("restartPolicy").invalid("allowed: Always", value=policy)
    for key in _INIT_FORBIDDEN:
        if key in spec:
            raise where.at(key).invalid(
                "must not be set for init containers (they run to completion before the pod "
                "can be Ready)"
            )
    where.only(spec, _INIT_CONTAINER_FIELDS, inert=_CONTAINER_INERT)
    return ContainerSpec.from_manifest(spec, where=where, time_scale=time_scale)


def _parse_ports(raw: object, where: FieldRef) -> tuple[ContainerPort, ...]:
    ports: list[ContainerPort] = []
    for here, entry in where.entries(raw):
        here.only(entry, ("containerPort", "name", "protocol"))
        number = entry.get("containerPort")
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= 65535:
            raise here.at("containerPort").invalid("must be an integer 1-65535")
        if entry.get("protocol", "TCP") != "TCP":
            raise here.at("protocol").unsupported(value=entry["protocol"], reason="TCP only")
        name = entry.get("name")
        if name is not None and not isinstance(name, str):
            raise here.at("name").invalid("must be a string")
        ports.append(ContainerPort(number, name))
    return tuple(ports)


def _parse_env(raw: object, where: FieldRef) -> tuple[EnvVar, ...]:
    env: list[EnvVar] = []
    for here, entry in where.entries(raw):
        name = entry.get("name")
        if not isinstance(name, str) or not name or "=" in name:
            raise here.at("name").invalid("must be a non-empty name without '='")
        here.only(entry, ("name", "value", "valueFrom"))
        if "valueFrom" in entry:
            env.append(EnvVar(name, field_path=_parse_field_ref(entry["valueFrom"], here)))
            continue
        value = entry.get("value", "")
        if not isinstance(value, str):
            raise here.at("value").invalid("must be a string (quote numbers in YAML)")
        env.append(EnvVar(name, value))
    return tuple(env)


def _parse_field_ref(raw: object, entry: FieldRef) -> str:
    where = entry.at("valueFrom")
    source = where.mapping(raw)
    where.only(source, ("fieldRef",))
    ref = where.at("fieldRef").mapping(source.get("fieldRef"))
    field_path = ref.get("fieldPath")
    if field_path not in _FIELD_REFS:
        raise where.at("fieldRef", "fieldPath").unsupported(sorted(_FIELD_REFS), value=field_path)
    return str(field_path)


def _parse_lifecycle(
    raw: object, where: FieldRef, ports: Mapping[str, int], time_scale: float
) -> PreStopAction | None:
    if raw is None:
        return None
    lifecycle = where.mapping(raw)
    where.only(lifecycle, ("preStop",))
    if "preStop" not in lifecycle:
        return None
    here = where.at("preStop")
    hook = here.mapping(lifecycle["preStop"])
    if "sleep" in hook and len(hook) == 1:
        sleep = here.at("sleep").mapping(hook["sleep"])
        seconds = sleep.get("seconds")
        if set(sleep) != {"seconds"} or isinstance(seconds, bool) or not isinstance(seconds, int):
            raise here.at("sleep").invalid("must be {seconds: <integer>}")
        if seconds < 0:
            raise here.at("sleep", "seconds").invalid("must be >= 0", value=seconds)
        return SleepAction(seconds * time_scale)
    hooks = frozenset({"httpGet", "exec", "sleep"})
    action = parse_action(hook, where=here, ports=ports, allowed=hooks)
    if not isinstance(action, (HTTPGetAction, ExecAction)):
        raise here.at("tcpSocket").unsupported(sorted(hooks))
    return action


def _strings(raw: object, where: FieldRef) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        raise where.invalid("must be a list of strings")
    return tuple(raw)


def container_environment(
    container: ContainerSpec,
    *,
    pod: str,
    namespace: str,
    uid: str,
    pod_ip: str,
    added: Mapping[str, str],
) -> dict[str, str]:
    """The environment a container starts with: this process's; ``POD_NAME``,
    ``POD_NAMESPACE``, ``POD_IP`` and ``HOSTNAME`` (so the process knows where to bind);
    ``added`` (the command resolver's); then the container's ``env`` -- ``value`` with
    ``$(VAR)`` expansion, or ``valueFrom.fieldRef`` for the pod's own fields."""
    env = dict(os.environ)
    env.update({"POD_NAME": pod, "POD_NAMESPACE": namespace, "POD_IP": pod_ip, "HOSTNAME": pod})
    env.update(added)
    fields = _pod_fields(pod, namespace, uid, pod_ip)
    declared: dict[str, str] = {}
    for var in container.env:
        if var.field_path is not None:
            declared[var.name] = fields[var.field_path]
        else:
            declared[var.name] = expand_references(var.value, declared)
    env.update(declared)
    return env
