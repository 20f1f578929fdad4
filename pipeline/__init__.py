"""mimic: human motion to a humanoid tracking policy, as one reproducible pipeline."""

__version__ = "0.1.0"
