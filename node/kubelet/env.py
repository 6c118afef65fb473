"""A container's environment, and $(VAR) expansion, as the kubelet builds them.

Order and precedence follow Kubernetes: envFrom sources first (later ones
win), then `env` entries in order; a `value` may refer to variables defined
before it as $(NAME) ($$(NAME) escapes). command and args are expanded with
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


async def build(pod: Any, container: Any, client: AsyncClient, node_ip: str) -> dict[str, str]:
    objects = _Objects(client, pod.metadata.namespace)
    env: dict[str, str] = {}
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
