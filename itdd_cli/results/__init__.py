"""What a run writes and reads back: each command's output row, the result-file reader, resume, compare, summary,
output files.
"""
