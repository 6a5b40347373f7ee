"""``radlake radiomics``: compute IBSI 1 features of one image/mask pair.

    radlake radiomics compute --image PATH --mask PATH [--settings FILE] [--label N]
                              [--device cpu|cuda] --out FEATURES.csv [--format csv|json]
    radlake radiomics run --settings FILE [--where SQL] [--masks FILE...]   (see lake_cli.py)
    radlake radiomics follow --settings FILE                                 (see lake_cli.py)

CSV columns: feature, ibsi_id, value (plus aggregation_id, settings_hash, code_version). JSON:
an object with the settings hash, code version and a list of features. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from radlake.radiomics.errors import RadiomicsError
from radlake.radiomics.features import CODE_VERSION, FeatureValue, compute_features
from radlake.radiomics.inputs import load_image, load_mask
from radlake.radiomics.settings import load_settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radlake radiomics", description="IBSI 1 radiomic features")
    sub = parser.add_subparsers(dest="command", required=True)
    compute = sub.add_parser("compute", help="features of one image/mask pair")
    compute.add_argument("--image", required=True, type=Path, help="NIfTI file or DICOM series folder")
    compute.add_argument("--mask", required=True, type=Path, help="NIfTI label map, DICOM SEG or RTSTRUCT")
    compute.add_argument("--settings", type=Path, default=None, help="YAML settings (default: built-in)")
    compute.add_argument("--label", type=int, default=None, help="label / segment / ROI number (default: all)")
    compute.add_argument("--device", default="cpu", choices=["cpu", "cuda", "torch-cpu"])
    compute.add_argument("--out", required=True, type=Path, help="output file")
    compute.add_argument("--format", choices=["csv", "json"], default=None, help="default: from --out suffix")
    from radlake.radiomics import lake_cli

    lake_cli.add_parsers(sub)  # run, follow: the Spark job over the lake and its event-triggered path
    return parser


def write_csv(path: Path, values: list[FeatureValue]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["feature", "ibsi_id", "value", "aggregation_id", "settings_hash", "code_version"])
        for f in values:
            writer.writerow([f.name, f.ibsi_id, repr(f.value), f.aggregation_id, f.settings_hash, f.code_version])


def write_json(path: Path, values: list[FeatureValue]) -> None:
    document = {
        "settings_hash": values[0].settings_hash if values else None,
        "code_version": CODE_VERSION,
        "features": [
            {"feature": f.name, "ibsi_id": f.ibsi_id, "family": f.family, "aggregation": f.aggregation,
             "aggregation_id": f.aggregation_id, "value": f.value}
            for f in values
        ],
    }
    path.write_text(json.dumps(document, indent=1, allow_nan=True), encoding="utf-8")


def _compute(args: argparse.Namespace) -> int:
    fmt = args.format or ("json" if args.out.suffix.lower() == ".json" else "csv")
    try:
        settings = load_settings(args.settings)
        print(f"reading image {args.image}", file=sys.stderr)
        image = load_image(args.image)
        print(f"reading mask {args.mask}", file=sys.stderr)
        roi = load_mask(args.mask, image, args.label)
        dz, dy, dx = image.geometry.spacing
        print(f"computing features: {int(roi.sum())} voxels, spacing {dz:g}x{dy:g}x{dx:g} mm, "
              f"device {args.device}", file=sys.stderr)
        values = compute_features(image.array, roi, image.geometry.spacing, settings, device=args.device)
    except RadiomicsError as err:
        print(f"radlake radiomics: {err}", file=sys.stderr)
        return 1
    (write_json if fmt == "json" else write_csv)(args.out, values)
    print(f"wrote {len(values)} features to {args.out}", file=sys.stderr)
    print(str(args.out))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "compute":
        return _compute(args)
    if args.command in ("run", "follow"):
        from radlake.radiomics import lake_cli

        return getattr(lake_cli, args.command)(args)
    return 2
