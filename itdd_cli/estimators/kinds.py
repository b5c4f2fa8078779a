"""The estimators by name; importable without torch (the command line lists them before loading)."""

from __future__ import annotations

from enum import StrEnum


class Estimator(StrEnum):
    stratified = "stratified"
    time_free = "time-free"
    time_integral = "time-integral"
    exact = "exact"
