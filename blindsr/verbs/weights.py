"""``weights``: list or fetch the pretrained files blindsr uses (``blindsr.weights.REGISTRY``).

``action=list`` prints one row per file: where it resolves from now (explicit path, environment
variable, cache, installed package or URL), whether it is present and whether it verified.
``action=fetch`` puts every file into the cache; failures are reported together at the end.
"""
from __future__ import annotations

from omegaconf import DictConfig

from blindsr import weights
from blindsr.errors import BlindSRError, UsageError

ACTIONS = ("list", "fetch")


def run(cfg: DictConfig) -> int:
    if cfg.action not in ACTIONS:
        raise UsageError(f"action={cfg.action}: choose from {', '.join(ACTIONS)}")
    names = list(cfg.names) or list(weights.REGISTRY)
    unknown = [n for n in names if n not in weights.REGISTRY]
    if unknown:
        raise UsageError(f"names: unknown {', '.join(unknown)}; choose from {', '.join(weights.REGISTRY)}")
    paths = {"srmd_pca": cfg.pca} if cfg.pca else {}
    if cfg.action == "list":
        return list_weights(names, paths)
    return fetch_weights(names, paths)


def list_weights(names: list[str], paths: dict[str, str]) -> int:
    rows = [("name", "from", "present", "status", "location", "licence")]
    for name in names:
        spec = weights.get_spec(name)
        where = weights.locate(name, paths.get(name))
        rows.append((name, where.origin, "yes" if where.present else "no", where.status, where.where,
                     spec.licence))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])
    print(f"\ncache: {weights.cache_dir()} (set {weights.CACHE_ENV} to move it); "
          f"per-file override: {weights.ENV_PREFIX}<NAME>=PATH")
    return 0


def fetch_weights(names: list[str], paths: dict[str, str]) -> int:
    failures = []
    for name in names:
        try:
            print(f"{name}: {weights.fetch(name, paths.get(name))}")
        except BlindSRError as exc:
            failures.append(f"{name}: {exc}")
    if failures:
        raise BlindSRError(f"{len(failures)} of {len(names)} not fetched; " + " | ".join(failures))
    return 0
