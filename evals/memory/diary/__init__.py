"""The third, held-out corpus generator of the memory eval: a personal assistant's diary of one user.

See `evals.memory.diary.generate` for what it writes and why it exists; the command line is
`python -m evals.memory.generate --generator diary` (shared with the other generators).
"""
