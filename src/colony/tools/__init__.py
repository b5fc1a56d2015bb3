"""Tools, their governance middleware and the built-in tool set (A4)."""
