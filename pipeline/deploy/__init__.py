"""Deployment: the bundle contract, the runtime loop with its safety layer, and the robot interfaces.

Runs from a bundle (``policy.onnx`` + ``deploy.json`` + ``motion.npz``) with numpy, onnxruntime, mujoco (for
forward kinematics and the simulated robot) and the Unitree SDK; it never imports torch nor the training code.
See pipeline/deploy/README.md for the bundle format and the run log format.
"""
