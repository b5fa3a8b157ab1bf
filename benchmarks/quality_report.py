"""Tables of the quality benchmark's results, in Markdown: one row per recipe, per map, with the share of the way
from doing nothing to the paired bound in PSNR and SSIM (the bound of the same file and step count), the
checkerboard score, the alignment of the generator's total update with T(x) - G(x) at the end, the
discriminator's loss and the training time.

    python benchmarks/quality.py --map oil --recipes paired,recommended,... > oil.jsonl
    python benchmarks/quality_report.py oil.jsonl ink.jsonl ...
    python benchmarks/quality_report.py --summary oil.jsonl ink.jsonl ...    # recipes x maps, shares only

Each file is one run of benchmarks/quality.py (its JSON lines); lines of other benchmarks are ignored.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def rows_of(path: Path) -> list[dict]:
    rows = []
    for line in Path(path).read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and row.get("benchmark") == "quality":
            rows.append(row)
    return rows


def share(row: dict, bound: dict | None, key: str) -> str:
    """(row - doing nothing) / (bound - doing nothing), as the benchmark's own share lines give it."""
    if bound is None or bound[key] == row[f"identity_{key}"]:
        return "-"
    return f"{(row[key] - row[f'identity_{key}']) / (bound[key] - row[f'identity_{key}']):.2f}"


def table(rows: list[dict]) -> str:
    """One Markdown table for the rows of one map (the paired bound, when present, sets the shares)."""
    bounds = {r["steps"]: r for r in rows if r["recipe"] == "paired"}
    first = rows[0]
    out = [f"`{first['map']}` ({first['steps']} steps, {first['size']} px crops, ngf {first['ngf']}, "
           f"{first['blocks']} blocks, paintings {first.get('paintings', 'same')}, "
           f"{first.get('painting_images', '?')} of them)", "",
           "| recipe | PSNR | SSIM | share PSNR / SSIM | checkerboard | cos(total) | d_b | training |",
           "|---|---|---|---|---|---|---|---|",
           f"| doing nothing | {first['identity_psnr']:.2f} | {first['identity_ssim']:.3f} | 0 / 0 | | | | |"]
    for r in rows:
        bound = bounds.get(r["steps"]) or next(iter(bounds.values()), None)
        cos = (r.get("alignment") or {}).get("cos_total")
        d_b = (r.get("terms") or {}).get("d_b")
        out.append(f"| {r['recipe']} | {r['psnr']:.2f} | {r['ssim']:.3f} | {share(r, bound, 'psnr')} / "
                   f"{share(r, bound, 'ssim')} | {r['checkerboard']:.2f} | "
                   f"{'' if cos is None else f'{cos:+.3f}'} | {'' if d_b is None else f'{d_b:.3f}'} | "
                   f"{r['train_seconds']:.0f} s |")
    return "\n".join(out)


def summary(files: list[Path]) -> str:
    """One table for several maps: a row per recipe, a column per map with its share of the way to that map's
    paired bound, PSNR / SSIM."""
    maps: dict[str, dict[str, str]] = {}
    recipes: list[str] = []
    for path in files:
        rows = rows_of(path)
        bound = next((r for r in rows if r["recipe"] == "paired"), None)
        for r in rows:
            if r["recipe"] == "paired":
                continue
            if r["recipe"] not in recipes:
                recipes.append(r["recipe"])
            maps.setdefault(r["map"], {})[r["recipe"]] = f"{share(r, bound, 'psnr')} / {share(r, bound, 'ssim')}"
    out = ["| recipe | " + " | ".join(f"`{m}`" for m in maps) + " |", "|---|" + "---|" * len(maps)]
    for name in recipes:
        out.append(f"| {name} | " + " | ".join(maps[m].get(name, "") for m in maps) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="+", type=Path, help="JSON lines of benchmarks/quality.py runs")
    p.add_argument("--summary", action="store_true",
                   help="one table for all the files (maps): each recipe's share of the way, per map")
    args = p.parse_args(argv)
    if args.summary:
        print(summary(args.files))
        return 0
    for path in args.files:
        rows = rows_of(path)
        if rows:
            print(table(rows) + "\n")
        else:
            print(f"{path}: no quality rows", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
