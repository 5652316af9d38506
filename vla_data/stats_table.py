"""Per-dimension statistics as a table (or a selection of dims for JSON): what `vla-data stats` prints."""

from __future__ import annotations

from typing import Any

from vla_data.errors import VlaDataError

PER_DIM = ("mean", "std", "min", "max", "q01", "q10", "q50", "q90", "q99", "quantile_error_bound")


def parse_dims(text: str | None) -> list[int] | None:
    """`"0,3,5"`, `"0:8"` (start:stop, stop excluded) or a mix -> sorted dims; None/empty: all."""
    if not text:
        return None
    dims: set[int] = set()
    for part in text.split(","):
        try:
            if ":" in part:
                start, stop = part.split(":", 1)
                dims.update(range(int(start or 0), int(stop)))
            else:
                dims.add(int(part))
        except ValueError:
            raise VlaDataError(
                f"--dims: {part!r} is not a dim or start:stop range (e.g. 0,3 or 0:8)"
            ) from None
    return sorted(dims)


def select_dims(stats: dict[str, dict[str, Any]], dims: list[int] | None) -> dict[str, dict[str, Any]]:
    """The statistics of `dims` only (each feature keeps the dims it has); None keeps all."""
    if dims is None:
        return stats
    widest = max(len(s["mean"]) for s in stats.values())
    if dims and dims[-1] >= widest:
        raise VlaDataError(
            f"--dims: no feature has dim {dims[-1]} (the widest has {widest}: 0..{widest - 1})"
        )
    out = {}
    for name, s in stats.items():
        mine = [d for d in dims if d < len(s["mean"])]
        if mine:
            out[name] = {k: ([v[d] for d in mine] if k in PER_DIM else v) for k, v in s.items()}
            out[name]["dims"], out[name]["num_dims"] = mine, len(s["mean"])
    return out


def format_stats_table(stats: dict[str, dict[str, Any]]) -> str:
    """One block per feature, one row per dim, one column per statistic (q_err: quantile error bound)."""
    lines = []
    columns = [k for k in PER_DIM if k != "quantile_error_bound"] + ["q_err"]
    for name, s in stats.items():
        dims = s.get("dims", list(range(len(s["mean"]))))
        shown = f"; dims {','.join(map(str, dims))}" if "dims" in s else ""
        lines.append(f"{name} ({s.get('num_dims', len(dims))} dims, {s['count']} frames{shown})")
        lines.append("  " + f"{'dim':>4}" + "".join(f"{c:>11}" for c in columns))
        for i, dim in enumerate(dims):
            values = [s[k][i] for k in PER_DIM if k in s]
            lines.append("  " + f"{dim:>4}" + "".join(f"{v:>+11.4g}" for v in values))
    return "\n".join(lines)
