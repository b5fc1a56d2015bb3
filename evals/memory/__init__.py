"""The retrieval eval of the memory capability (issues 3 and 18).

Two independent generators write seeded synthetic corpora (memories plus questions with their
relevant memories): `generate` (Kestrel Labs, a software company) and `civic` (Brackenford's
city council, written after recall was tuned on the first, with other templates and wordings);
`corpora` mixes them and is the function API. `run` loads a corpus into a fresh node database
through `colony.memory.Memory` and scores each recall channel alone and fused, plus knowledge
updates, questions about the past and abstention. This package may import `colony`; nothing in
`colony` imports it.
"""
