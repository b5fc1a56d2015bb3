"""The second, independent corpus generator of the memory eval: Brackenford's city council.

See `evals.memory.civic.generate` for what it writes and why it exists; the command line is
`python -m evals.memory.generate --generator civic` (shared with the other generators).
"""
