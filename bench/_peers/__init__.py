"""Helpers of `bench/bench_memory_peers.py`: Colony's memory next to LanceDB and Chroma.

`data` loads the eval corpora, computes every vector once and pads a corpus to 100K memories;
`engines` wraps each engine behind one small interface (build, then search by question text);
`offline` makes sure nothing in the run reaches the network. Nothing here is imported by the
product or the tests: the peers are installed only through the ``bench-peers`` extra.
"""
