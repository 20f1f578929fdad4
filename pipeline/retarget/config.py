"""RetargetConfig: every tunable of the retargeter, typed and validated (params.yaml ``retarget:``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.errors import InputError

SOLVERS = ("daqp", "proxsuite")


@dataclass(frozen=True)
class RetargetConfig:
    """Retargeting parameters (units in brackets).

    fps: output rate [Hz] (the policy rate).
    iterations: SQP iterations per frame (linearise, solve the QP, step); ``first_iterations`` for frame 0.
    tolerance: a frame stops iterating (after at least two iterations) once a step moves no coordinate by more
        than this [rad or m].
    extrapolate: start each frame from a constant-velocity prediction instead of the previous pose.
    solver: ``daqp`` (dense active set, direct API: the fast path) or ``proxsuite`` (dense proximal ALM).
    position_weight / orientation_weight: global multipliers of robot.yaml's keypoint weights.
    previous_weight: posture regularisation toward the previous frame's pose [1/rad^2, relative].
    default_weight: posture regularisation toward the robot's default pose.
    damping: Levenberg-Marquardt damping on the step.
    smoothing_sigma: Gaussian smoothing of the scaled keypoint tracks [output frames]; 0 = off.
    velocity_scale: fraction of robot.yaml's joint velocity limits the IK may use.
    max_step: largest change of a joint in one iteration [rad] (a trust region for the linearisation).
    max_root_step: largest change of each root coordinate in one iteration [m, rad].
    floor_margin: clearance kept between collision geoms and the floor [m].
    collision_margin: minimum distance kept between collision geoms of different bodies [m].
    activation_distance: constraints (floor, self-collision) enter the QP below this distance [m].
    plant_tolerance: half-width of the box that holds a planted foot's sole in place horizontally [m].
    plant_height: highest a planted sole point may rise above the floor [m].
    plant_weight: cost weight pulling a held sole point onto its anchor inside the tolerance box.
    plant_roll: a planted foot rolls onto its heel or toe (only that end is held) when the target foot pitches
        so that one end is this much lower than the other [m]; otherwise heel and toe are both held.
    """

    fps: float = 50.0
    iterations: int = 3
    tolerance: float = 1e-3
    extrapolate: bool = False
    first_iterations: int = 30
    solver: str = "daqp"
    position_weight: float = 1.0
    orientation_weight: float = 0.03
    previous_weight: float = 5e-3
    default_weight: float = 2e-4
    damping: float = 1e-5
    smoothing_sigma: float = 1.0
    velocity_scale: float = 1.0
    max_step: float = 0.15
    max_root_step: float = 0.15
    floor_margin: float = 0.001
    collision_margin: float = 0.01
    activation_distance: float = 0.05
    plant_tolerance: float = 0.003
    plant_height: float = 0.005
    plant_roll: float = 0.015
    plant_weight: float = 1000.0

    def __post_init__(self) -> None:
        if self.solver not in SOLVERS:
            raise InputError(
                "retarget.solver", f"unknown solver '{self.solver}' (known: {', '.join(SOLVERS)})"
            )
        if not self.fps > 0:
            raise InputError("retarget.fps", f"must be positive, got {self.fps}")
        if self.iterations < 1 or self.first_iterations < 1:
            raise InputError("retarget.iterations", "need at least one iteration per frame")
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float) and v < 0:
                raise InputError(f"retarget.{f.name}", f"must be >= 0, got {v}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> RetargetConfig:
        """Build from a params dict; unknown keys and wrong types are an :class:`InputError`."""
        d = dict(d or {})
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - set(fields))
        if unknown:
            raise InputError("retarget params", f"unknown keys {unknown} (known: {sorted(fields)})")
        out: dict[str, Any] = {}
        for k, v in d.items():
            default = getattr(cls, k)
            if isinstance(default, bool) or isinstance(default, str):
                if not isinstance(v, type(default)):
                    raise InputError(f"retarget.{k}", f"expected {type(default).__name__}, got {v!r}")
                out[k] = v
            elif isinstance(default, int) and not isinstance(default, bool):
                if not isinstance(v, int) or isinstance(v, bool):
                    raise InputError(f"retarget.{k}", f"expected an integer, got {v!r}")
                out[k] = v
            else:
                if not isinstance(v, (int, float)) or isinstance(v, bool):
                    raise InputError(f"retarget.{k}", f"expected a number, got {v!r}")
                out[k] = float(v)
        return cls(**out)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
