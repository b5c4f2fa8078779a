"""Torch-free values every layer shares: settings that fix a run's numbers, value rules (checks), windows,
measures, processes.
"""
