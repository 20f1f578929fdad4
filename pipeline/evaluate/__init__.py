"""Evaluation of teacher and student: conditions (nominal, randomized, sim2sim), rollouts, report."""
