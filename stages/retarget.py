"""retarget stage: data/human/<clip>.npz -> data/robot/<clip>.npz + data/robot/<clip>.quality.json.

usage: python stages/retarget.py [--scene] HUMAN_NPZ OUTPUT_NPZ
Reads params.yaml `robot`, `retarget` and `retarget_interaction` only. The method is chosen per clip: a clip
with a scene (objects, terrain) is retargeted interaction-aware and also writes OUTPUT.scene.npz / .scene.xml.
--scene (stage retarget_scene, params.yaml `scene_clips`) requires a scene, its absence (stage retarget,
`clips`) requires none, so every file a stage writes is one it declares.
"""

from __future__ import annotations

from pipeline.retarget.interaction_run import retarget_auto
from pipeline.stage import params, run


def main(argv: list[str]) -> None:
    scene = "--scene" in argv
    human, output = [a for a in argv if a != "--scene"]
    quality = retarget_auto(
        human,
        output,
        robot=params("robot"),
        params=params("retarget"),
        interaction=params("retarget_interaction") or None,
        scene_expected=scene,
    )
    print(
        f"{output}: " + ", ".join(f"{k}={v}" for k, v in sorted(quality.items()) if not isinstance(v, dict))
    )


if __name__ == "__main__":
    run(main)
