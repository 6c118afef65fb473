"""The controller manager: every API-driven controller, run together while
this master holds the `kube-system/kube-controller-manager` Lease.

(The namespace controller works on the registry directly and runs in every
master; it is idempotent.)
"""

from __future__ import annotations

import asyncio
import logging

from kubelite.client import AsyncClient
from kubelite.objects.netconf import NetConf
from master.controllers.base import Controller
from master.controllers.cronjob import CronJobController
from master.controllers.daemonset import DaemonSetController
from master.controllers.deployment import DeploymentController
from master.controllers.dnsendpoints import DNSEndpointsController
from master.controllers.endpoints import EndpointsController
from master.controllers.gc import GarbageCollector
from master.controllers.hpa import HorizontalPodAutoscalerController
from master.controllers.hpa import Options as HPAOptions
from master.controllers.job import JobController
from master.controllers.nodeipam import NodeIPAMController
from master.controllers.nodelifecycle import NodeLifecycleController
from master.controllers.nodelifecycle import Options as NodeLifecycleOptions
from master.controllers.replicaset import REPLICATIONCONTROLLER, ReplicaSetController
from master.controllers.statefulset import StatefulSetController
from master.controllers.volume import LOCAL_PATH_ROOT, PersistentVolumeController

log = logging.getLogger(__name__)


def controllers(client: AsyncClient, *, job_backoff: float = 10.0,
                local_path_root: str = LOCAL_PATH_ROOT, network: NetConf | None = None,
                node_cidr_mask_size: int = 24, hpa: HPAOptions | None = None,
                nodes: NodeLifecycleOptions | None = None) -> list[Controller]:
    ipam = [NodeIPAMController(client, network, mask_size=node_cidr_mask_size)] \
        if network is not None else []
    return [*ipam,
        ReplicaSetController(client),
        ReplicaSetController(client, REPLICATIONCONTROLLER),
        DeploymentController(client),
        GarbageCollector(client),
        JobController(client, initial_backoff=job_backoff),
        CronJobController(client),
        StatefulSetController(client),
        PersistentVolumeController(client, local_path_root=local_path_root),
        DaemonSetController(client),
        HorizontalPodAutoscalerController(client, hpa or HPAOptions()),
        EndpointsController(client),
        DNSEndpointsController(client),
        NodeLifecycleController(client, nodes),
    ]


async def run(client: AsyncClient, *, job_backoff: float = 10.0,
              local_path_root: str = LOCAL_PATH_ROOT, network: NetConf | None = None,
              node_cidr_mask_size: int = 24, hpa: HPAOptions | None = None,
              nodes: NodeLifecycleOptions | None = None) -> None:
    """Run every controller; if one fails, stop the others (leadership is then lost)."""
    tasks = [asyncio.create_task(c.run(), name=f"controller-{c.name}")
             for c in controllers(client, job_backoff=job_backoff,
                                  local_path_root=local_path_root, network=network,
                                  node_cidr_mask_size=node_cidr_mask_size, hpa=hpa,
                                  nodes=nodes)]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for t in done:
            if t.exception():
                log.error("controller %s failed: %r", t.get_name(), t.exception())
                raise t.exception()  # type: ignore[misc]
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
