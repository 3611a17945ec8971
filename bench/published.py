"""Predicted vs published GPU memory: the estimator against runs others measured, with their settings.

The rows live in ``bench/data/published_memory.json``: each names its source, the settings as ftkit config
changes (plus estimate overrides for settings the config cannot hold), the published figure in GiB and
what it measures (``max_memory_reserved`` for peft's MetaMathQA runs), and the settings ftkit cannot
express. The prediction compared is the same measure: ``Estimate.reserved_gb`` for max_memory_reserved.

    python bench/published.py            # the table, with median and largest error
    python bench/published.py --json out.json

``tests/test_published_memory.py`` checks the done-criteria over the same data: median absolute error
at most 10 %, no row over 25 %, no "does not fit" verdict on a run known to have fit.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data" / "published_memory.json"
MEDIAN_GOAL, ROW_LIMIT = 0.10, 0.25


def load() -> dict:
    return json.loads(DATA.read_text())


def predict(row: dict, models: dict):
    from ftkit import shapes as S
    from ftkit.config import RunConfig
    from ftkit.estimator import estimate

    config = RunConfig().update(row["changes"])
    model = {k: v for k, v in models[row["model"]].items() if not k.startswith("_")}
    shapes = S.shapes_for(model, config.task_spec.model_kind)
    return estimate(config, shapes=shapes, device=row["device"], gpus=row["gpus"], **row.get("overrides", {}))


def results() -> list[dict]:
    data = load()
    out = []
    for row in data["rows"]:
        e = predict(row, data["models"])
        predicted = e.reserved_gb if row["measure"] == "max_memory_reserved" else e.peak_gb
        published = row["published_gib"]
        out.append({
            "row": row["row"], "source": row["source"], "published_gib": published,
            "predicted_gib": round(predicted, 2), "ratio": round(predicted / published, 3) if published else None,
            "verdict": e.fit, "peak_phase": e.peak_phase, "known_to_fit": row["known_to_fit"],
            "not_expressible": row.get("not_expressible", []), "device": row["device"],
        })
    return out


def summary(rows: list[dict]) -> dict:
    errors = [abs(r["ratio"] - 1) for r in rows if r["ratio"] is not None]
    return {"rows": len(errors), "median_abs_error": statistics.median(errors), "max_abs_error": max(errors),
            "wrong_does_not_fit": [r["row"] for r in rows if r["known_to_fit"] and r["verdict"] == "does not fit"]}


def table(rows: list[dict]) -> str:
    """A Markdown table; the settings that could not be expressed are numbered footnotes."""
    notes: list[str] = []
    head = "| run | source | device | published GiB | predicted GiB | ratio | verdict | not expressible |"
    lines = [head, "|" + "---|" * 8]
    for r in rows:
        keys = []
        for n in r["not_expressible"]:
            if n not in notes:
                notes.append(n)
            keys.append(str(notes.index(n) + 1))
        pub = f"{r['published_gib']:.2f}" if r["published_gib"] else "fits (claim)"
        ratio = f"{r['ratio']:.2f}" if r["ratio"] else "-"
        source = r["source"].split(" (")[0].split(";")[0]
        lines.append(f"| {r['row']} | {source} | {r['device']} | {pub} | {r['predicted_gib']:.2f} | {ratio} | "
                     f"{r['verdict']} | {', '.join(keys)} |")
    s = summary(rows)
    lines += [""] + [f"{i + 1}. {n}" for i, n in enumerate(notes)]
    lines += ["", f"median |error| {100 * s['median_abs_error']:.1f} %, largest {100 * s['max_abs_error']:.1f} % "
              f"over {s['rows']} rows with a figure; wrong \"does not fit\": {s['wrong_does_not_fit'] or 'none'}"]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args(argv)
    rows = results()
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
