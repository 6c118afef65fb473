"""kubelite: a small Kubernetes-style container orchestrator."""

__version__ = "0.1.0"
