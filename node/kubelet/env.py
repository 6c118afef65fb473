"""A container's environment, and $(VAR) expansion, as the kubelet builds them.

Order and precedence follow Kubernetes: the Service variables first (see
`service_env`), then envFrom sources (later ones win), then `env` entries in
order; a `value` may refer to variables defined before it, Service ones
included, as $(NAME) ($$(NAME) escapes). command and args are expanded with
the final environment. A missing ConfigMap, Secret or key that is not
optional is a ConfigError (status reason CreateContainerConfigError).
"""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, Decimal
from typing import Any

from kubelite.client import APIStatusError, AsyncClient
from kubelite.objects import quantity


class ConfigError(Exception):
    pass


_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, env: dict[str, str]) -> str:
    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env[name] if name in env else m.group(0)

    return _REF.sub(sub, text)


def field_value(pod: Any, path: str, node_ip: str) -> str:
    md = pod.metadata
    simple = {
        "metadata.name": md.name, "metadata.namespace": md.namespace, "metadata.uid": md.uid,
        "spec.nodeName": pod.spec.nodeName, "spec.serviceAccountName":
            pod.spec.serviceAccountName, "status.hostIP": node_ip,
        "status.podIP": pod.status.podIP,
    }
    if path in simple:
        return str(simple[path])
    m = re.fullmatch(r"metadata\.(labels|annotations)\['([^']*)'\]", path)
    if m:
        src = md.labels if m.group(1) == "labels" else md.annotations
        return str(src.get(m.group(2), ""))
    if path in ("metadata.labels", "metadata.annotations"):
        src = md.labels if path == "metadata.labels" else md.annotations
        return "\n".join(f'{k}="{v}"' for k, v in sorted(src.items()))
    raise ConfigError(f'unsupported fieldRef fieldPath "{path}"')


def resource_value(pod: Any, container: Any, ref: Any) -> str:
    target = container
    if ref.containerName:
        target = next((c for c in pod.spec.containers if c.name == ref.containerName), None)
        if target is None:
            raise ConfigError(f'resourceFieldRef: container "{ref.containerName}" not found')
    kind, _, name = ref.resource.partition(".")
    source = target.resources.limits if kind == "limits" else target.resources.requests
    q = source.get(name)
    if q is None:
        return "0"
    divisor = quantity.parse(ref.divisor.string) if ref.divisor.string else Decimal(1)
    value = quantity.parse(q.string) / divisor
    return str(int(value.to_integral_value(rounding=ROUND_CEILING)))


class _Objects:
    """ConfigMaps and Secrets of one namespace, fetched once per container start."""

    def __init__(self, client: AsyncClient, namespace: str) -> None:
        self.client = client
        self.namespace = namespace
        self.cache: dict[tuple[str, str], Any] = {}

    async def get(self, resource: str, name: str, optional: bool) -> Any | None:
        key = (resource, name)
        if key not in self.cache:
            try:
                self.cache[key] = await self.client.get(resource, name, self.namespace)
            except APIStatusError as e:
                if not e.not_found:
                    raise
                self.cache[key] = None
        obj = self.cache[key]
        if obj is None and not optional:
            singular = "configmap" if resource == "configmaps" else "secret"
            raise ConfigError(f'{singular} "{name}" not found')
        return obj


def _data(obj: Any, resource: str) -> dict[str, str]:
    if resource == "configmaps":
        return dict(obj.data)
    return {k: v.decode(errors="replace") for k, v in obj.data.items()}


# ---- Service discovery variables ---------------------------------------------

MASTER_SERVICES = {"kubernetes"}  # from `default`, into every pod, as Kubernetes does


def env_name(service: str) -> str:
    """`my-svc` -> `MY_SVC` (Kubernetes' makeEnvVariableName)."""
    return service.upper().replace("-", "_")


def _has_ip(svc: Any) -> bool:
    return svc.spec.clusterIP not in ("", "None")


def visible_services(services: list[Any], namespace: str, enable_links: bool) -> list[Any]:
    """Which Services a pod in `namespace` gets variables for (kubelet's getServiceEnvVarMap).

    Those with a cluster IP (not headless, not ExternalName) in the pod's
    namespace when enableServiceLinks is on, and `kubernetes` from `default`
    always, unless the pod's namespace has its own of that name.
    """
    chosen: dict[str, Any] = {}
    for svc in services:
        if not _has_ip(svc) or not svc.spec.ports:
            continue
        name = svc.metadata.name
        if svc.metadata.namespace == "default" and name in MASTER_SERVICES:
            chosen.setdefault(name, svc)
        elif svc.metadata.namespace == namespace and enable_links:
            chosen[name] = svc
    return [chosen[k] for k in sorted(chosen)]


def service_env(services: list[Any]) -> dict[str, str]:
    """The variables for these Services, as Kubernetes' envvars.FromServices:

        WEB_SERVICE_HOST=10.96.4.2   WEB_SERVICE_PORT=80   WEB_SERVICE_PORT_HTTP=80
        WEB_PORT=tcp://10.96.4.2:80  WEB_PORT_80_TCP=tcp://10.96.4.2:80
        WEB_PORT_80_TCP_PROTO=tcp    WEB_PORT_80_TCP_PORT=80   WEB_PORT_80_TCP_ADDR=10.96.4.2
    """
    env: dict[str, str] = {}
    for svc in services:
        if not _has_ip(svc) or not svc.spec.ports:
            continue
        prefix, ip = env_name(svc.metadata.name), svc.spec.clusterIP
        env[f"{prefix}_SERVICE_HOST"] = ip
        env[f"{prefix}_SERVICE_PORT"] = str(svc.spec.ports[0].port)
        for sp in svc.spec.ports:
            if sp.name:
                env[f"{prefix}_SERVICE_PORT_{env_name(sp.name)}"] = str(sp.port)
        host = f"[{ip}]" if ":" in ip else ip
        for i, sp in enumerate(svc.spec.ports):
            proto = (sp.protocol or "TCP").lower()
            url = f"{proto}://{host}:{sp.port}"
            if i == 0:
                env[f"{prefix}_PORT"] = url
            base = f"{prefix}_PORT_{sp.port}_{proto.upper()}"
            env[base] = url
            env[f"{base}_PROTO"] = proto
            env[f"{base}_PORT"] = str(sp.port)
            env[f"{base}_ADDR"] = ip
    return env


async def build(pod: Any, container: Any, client: AsyncClient, node_ip: str, *,
                services: list[Any] | None = None) -> dict[str, str]:
    """The container's environment; `services`: every Service the node knows of."""
    objects = _Objects(client, pod.metadata.namespace)
    links = not pod.spec.HasField("enableServiceLinks") or pod.spec.enableServiceLinks
    env: dict[str, str] = service_env(
        visible_services(services or [], pod.metadata.namespace, links))
    for src in container.envFrom:
        if src.HasField("configMapRef"):
            ref, resource = src.configMapRef, "configmaps"
        elif src.HasField("secretRef"):
            ref, resource = src.secretRef, "secrets"
        else:
            continue
        obj = await objects.get(resource, ref.name, ref.HasField("optional") and ref.optional)
        if obj is not None:
            for k, v in _data(obj, resource).items():
                env[src.prefix + k] = v
    for e in container.env:
        if not e.HasField("valueFrom"):
            env[e.name] = expand(e.value, env)
            continue
        vf = e.valueFrom
        if vf.HasField("fieldRef"):
            env[e.name] = field_value(pod, vf.fieldRef.fieldPath, node_ip)
        elif vf.HasField("resourceFieldRef"):
            env[e.name] = resource_value(pod, container, vf.resourceFieldRef)
        elif vf.HasField("configMapKeyRef") or vf.HasField("secretKeyRef"):
            is_cm = vf.HasField("configMapKeyRef")
            ref = vf.configMapKeyRef if is_cm else vf.secretKeyRef
            resource = "configmaps" if is_cm else "secrets"
            optional = ref.HasField("optional") and ref.optional
            obj = await objects.get(resource, ref.name, optional)
            if obj is None:
                continue
            data = _data(obj, resource)
            if ref.key not in data:
                if optional:
                    continue
                what = "configmap" if is_cm else "secret"
                raise ConfigError(f'couldn\'t find key {ref.key} in {what.capitalize()} '
                                  f'{pod.metadata.namespace}/{ref.name}')
            env[e.name] = data[ref.key]
    return env
