"""Evaluation statistics: Bayesian intervals, ROC/AUC, background attention."""
