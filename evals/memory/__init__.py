"""The retrieval eval of the memory capability (issue 3).

`generate` writes a seeded synthetic corpus (memories about a small fictional software
organisation, plus questions with their relevant memories); `run` loads it into a fresh node
database through `colony.memory.Memory` and scores each recall channel alone and fused.
This package may import `colony`; nothing in `colony` imports it.
"""
