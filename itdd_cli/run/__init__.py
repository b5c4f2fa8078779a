"""One run of a command over an input: session (input → rows → sink, resume, summary, gates), several
checkpoints, data parallel.
"""
