"""Payments over x402 (P): Colony charges and pays over HTTP 402 with the official SDK."""
