"""retarget stage: data/human/<clip>.npz -> data/robot/<clip>.npz + data/robot/<clip>.quality.json.

usage: python stages/retarget.py HUMAN_NPZ OUTPUT_NPZ
Reads params.yaml `robot` and `retarget` only.
"""

from __future__ import annotations

from pipeline.retarget.run import retarget_file
from pipeline.stage import params, run


def main(argv: list[str]) -> None:
    human, output = argv
    quality = retarget_file(human, output, robot=params("robot"), params=params("retarget"))
    print(f"{output}: " + ", ".join(f"{k}={v}" for k, v in sorted(quality.items()) if not isinstance(v, dict)))


if __name__ == "__main__":
    run(main)
