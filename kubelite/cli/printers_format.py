"""Small formatters shared by the get tables and describe.

They work on Kubernetes-shaped dicts (what convert.to_dict returns) and copy
the spelling of apimachinery's helpers: labels.FormatLabels,
LabelSelector's String(), GetAccessModesAsString, ...
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]

NONE = "<none>"


def get(obj: Any, *path: str | int, default: Any = None) -> Any:
    """obj[a][b][c] where every level may be missing."""
    cur = obj
    for key in path:
        if isinstance(key, int):
            if not isinstance(cur, list) or key >= len(cur):
                return default
        elif not isinstance(cur, dict) or key not in cur:
            return default
        cur = cur[key]
    return default if cur is None else cur


def meta(obj: Obj) -> Obj:
    m = obj.get("metadata")
    return m if isinstance(m, dict) else {}


def name_of(obj: Obj) -> str:
    return str(meta(obj).get("name", ""))


def format_labels(labels: dict[str, str] | None) -> str:
    """labels.FormatLabels: "a=1,b=2" sorted by key, "<none>" when empty."""
    if not labels:
        return NONE
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _requirement(key: str, op: str, values: list[str]) -> str:
    if op == "Exists":
        return key
    if op == "DoesNotExist":
        return "!" + key
    vals = values[0] if len(values) == 1 else ",".join(sorted(values))
    if op == "In":
        return f"{key} in ({vals})"
    if op == "NotIn":
        return f"{key} notin ({vals})"
    return f"{key}={vals}"


def selector_string(sel: Obj | None) -> str:
    """A LabelSelector as labels.Selector.String(): requirements sorted by key."""
    if not sel:
        return ""
    reqs: list[tuple[str, str]] = []
    for k, v in (sel.get("matchLabels") or {}).items():
        reqs.append((k, f"{k}={v}"))
    for e in sel.get("matchExpressions") or []:
        key = str(e.get("key", ""))
        reqs.append((key, _requirement(key, str(e.get("operator", "")),
                                       [str(v) for v in e.get("values") or []])))
    reqs.sort(key=lambda r: r[0])
    return ",".join(text for _, text in reqs)


def format_selector(sel: Obj | None) -> str:
    """metav1.FormatLabelSelector: like selector_string but "<none>" when empty."""
    return selector_string(sel) or NONE


def containers_cells(containers: list[Obj] | None) -> tuple[str, str]:
    """The CONTAINERS and IMAGES cells of -o wide: names and images comma-joined."""
    cs = containers or []
    return (",".join(str(c.get("name", "")) for c in cs),
            ",".join(str(c.get("image", "")) for c in cs))


_ACCESS = (("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"),
           ("ReadWriteMany", "RWX"), ("ReadWriteOncePod", "RWOP"))


def access_modes(modes: list[str] | None) -> str:
    """GetAccessModesAsString: abbreviations in a fixed order, duplicates dropped."""
    have = set(modes or [])
    return ",".join(short for long, short in _ACCESS if long in have)


_STORAGE_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"


def storage_class(obj: Obj) -> str:
    """The beta annotation wins over spec.storageClassName, as in Kubernetes."""
    ann = meta(obj).get("annotations") or {}
    if _STORAGE_CLASS_ANNOTATION in ann:
        return str(ann[_STORAGE_CLASS_ANNOTATION])
    return str(get(obj, "spec", "storageClassName", default=""))


def int_or_string(value: Any) -> str:
    return "" if value is None else str(value)


def controller_ref(obj: Obj) -> Obj | None:
    """The owner reference with controller: true (metav1.GetControllerOf)."""
    for ref in meta(obj).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref  # type: ignore[no-any-return]
    return None


def condition(obj: Obj, ctype: str) -> Obj | None:
    for c in get(obj, "status", "conditions", default=[]):
        if c.get("type") == ctype:
            return c  # type: ignore[no-any-return]
    return None


def condition_true(obj: Obj, ctype: str) -> bool:
    c = condition(obj, ctype)
    return c is not None and c.get("status") == "True"


def join_host_port(host: str, port: Any) -> str:
    """net.JoinHostPort: IPv6 hosts in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
