"""Lazy JSONL reading with line numbers, and ordered writers. Knows nothing about models."""
