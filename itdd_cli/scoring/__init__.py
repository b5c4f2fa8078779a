"""Records → framed ids → draws → forward batches → estimates: the runner, per-record draws, block records, the
engine.
"""
