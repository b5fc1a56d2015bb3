"""`python -m colony.testing --script s.json`: serve a scripted OpenAI-compatible model on loopback."""

from colony.testing.scripted_server import main

raise SystemExit(main())
