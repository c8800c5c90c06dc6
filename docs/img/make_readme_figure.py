"""Put Figure 4 of the quick reproduction into docs/img/ at README size (a 256-colour PNG of about 60 KB).

    wideflow reproduce exp3 --preset quick --out out/quick
    python docs/img/make_readme_figure.py out/quick/exp3/fig4_dynamics_features.png

Pillow comes with matplotlib. The figure is resized to 1100 pixels wide and its colours reduced to a
256-entry palette (octree quantization keeps the three scalings' colours apart).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

TARGET = Path(__file__).resolve().parent / "fig4_quick.png"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("figure", type=Path, help="fig4_dynamics_features.png written by wideflow reproduce exp3")
    parser.add_argument("--width", type=int, default=1100, help="width in pixels (default 1100)")
    args = parser.parse_args()
    image = Image.open(args.figure).convert("RGB")
    height = round(image.height * args.width / image.width)
    small = image.resize((args.width, height), Image.LANCZOS)
    small.quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(TARGET, optimize=True)
    print(f"wrote {TARGET} ({TARGET.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
