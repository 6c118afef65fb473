"""Which container of a pod a logs or exec request means, decided as Kubernetes
does (the API server for the request, kubectl for its default), with their
messages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"


class ContainerChoiceError(ValueError):
    """The request names no container (and the pod has several) or a foreign one."""


def _names(values: Sequence[str]) -> str:
    return "[" + " ".join(values) + "]"


def choose(pod_name: str, containers: Sequence[str], init_containers: Sequence[str] = (),
           ephemeral_containers: Sequence[str] = (), container: str = "") -> str:
    """`container` if it is one of the pod's, else the pod's only app container."""
    if container:
        if container in containers or container in init_containers or \
                container in ephemeral_containers:
            return container
        raise ContainerChoiceError(f"container {container} is not valid for pod {pod_name}")
    if len(containers) == 1:
        return containers[0]
    message = (f"a container name must be specified for pod {pod_name}, "
               f"choose one of: {_names(containers)}")
    if init_containers:
        message += f" or one of the init containers: {_names(init_containers)}"
    if ephemeral_containers:
        message += f" or one of the ephemeral containers: {_names(ephemeral_containers)}"
    raise ContainerChoiceError(message)


def choose_in_pod(pod: Any, container: str = "") -> str:
    spec = pod.spec
    return choose(pod.metadata.name, [c.name for c in spec.containers],
                  [c.name for c in spec.initContainers],
                  [c.name for c in spec.ephemeralContainers], container)


def kubectl_default(pod: Any) -> tuple[str, str]:
    """kubectl's pick when -c is not given: the default-container annotation's
    container, else the first; and the note it prints when the pod has more
    than one container ("" when it has just the one)."""
    spec = pod.spec
    names = [c.name for c in spec.containers]
    wanted = pod.metadata.annotations.get(DEFAULT_CONTAINER_ANNOTATION, "")
    chosen = wanted if wanted in names else (names[0] if names else "")
    if len(names) + len(spec.initContainers) + len(spec.ephemeralContainers) <= 1 or \
            wanted in names:
        return chosen, ""
    every = names + [f"{c.name} (ephem)" for c in spec.ephemeralContainers] + \
        [f"{c.name} (init)" for c in spec.initContainers]
    return chosen, f'Defaulted container "{chosen}" out of: {", ".join(every)}'
