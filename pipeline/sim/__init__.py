"""Batched MuJoCo simulation of the motion-tracking task.

- ``config``: ``TrainConfig`` (params.yaml ``train:``), typed, validated, unknown keys rejected.
- ``backend``: ``Backend`` interface and ``CpuBatch`` (``mujoco.batch.Batch``), ``build_model``.
- ``reference``: ``MotionReference`` (clips at the control rate, cyclic looping), ``AdaptiveSampler``.
- ``randomization``: ``Randomizer`` (per-env, per-episode parameters written into per-env model fields).
- ``terms``: rewards, terminations, critic observation.
- ``task``: ``TrackingEnv`` (reset/step over the whole batch; actor obs from pipeline/deploy/observation.py).

Training glue (rsl-rl-lib) lives in pipeline/learn (``vecenv``, ``teacher``, ``evaluate``, ``models``).
"""
