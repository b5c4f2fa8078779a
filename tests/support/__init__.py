"""What the tests share and test nothing themselves: tiny checkpoints of each family, the family
fixture table, independent reference forwards, fakes, and the helpers that run the CLI in-process."""
