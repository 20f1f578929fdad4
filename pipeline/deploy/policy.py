"""The exported policy under onnxruntime, and the observation history it reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.errors import InputError


class OnnxPolicy:
    """``policy.onnx``: (H*D,) float observation -> (N,) float64 action. One intra-op thread (deterministic)."""

    def __init__(self, path: str | Path, *, obs_size: int, num_actions: int, threads: int = 1) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for bad files
            raise InputError(path, f"onnxruntime cannot load the policy ({e})") from None
        inp, out = self.session.get_inputs()[0], self.session.get_outputs()[0]
        if inp.shape[-1] != obs_size or out.shape[-1] != num_actions:
            raise InputError(
                path,
                f"policy maps {inp.shape[-1]} -> {out.shape[-1]}, the contract says {obs_size} -> {num_actions}",
            )
        self.input_name, self.output_name = inp.name, out.name
        self._x = np.zeros((1, obs_size), np.float32)
        self._feed, self._outputs = {self.input_name: self._x}, [self.output_name]
        # onnxruntime plans and allocates its buffers on the first runs (~0.4 ms): do that here, not in a step
        for _ in range(3):
            self.session.run(self._outputs, self._feed)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """One inference. (An IOBinding over preallocated OrtValues measured slower than ``run`` here.)"""
        self._x[0] = obs
        (y,) = self.session.run(self._outputs, self._feed)
        return y[0].astype(np.float64)


class ObsHistory:
    """The last H observation frames, oldest first, flattened to (H*D,). Starts filled with the first frame.

    ``push`` returns a view of the buffer: valid until the next push."""

    def __init__(self, history: int, size: int, dtype: type = np.float64) -> None:
        self.buf: np.ndarray = np.zeros((history, size), dtype)
        self.empty = True

    def push(self, frame: np.ndarray) -> np.ndarray:
        if self.empty:
            self.buf[:] = frame
            self.empty = False
        else:
            self.buf[:-1] = self.buf[1:]
            self.buf[-1] = frame
        return self.buf.reshape(-1)
