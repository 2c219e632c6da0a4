"""Stages threshold and evaluate: the operating point on val, metrics with slide-bootstrap intervals, plots."""
