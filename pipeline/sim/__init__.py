"""Batched MuJoCo simulation of the tracking task (backend, reference, randomization, terms, task)."""
