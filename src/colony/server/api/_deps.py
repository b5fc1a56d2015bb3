"""Small accessors for what routes need from the app state."""

from __future__ import annotations

from fastapi import Request

from colony.node import Node
from colony.server.turns import ApprovalBroker, TurnManager

__all__ = ["broker", "node", "turns"]


def node(request: Request) -> Node:
    n: Node = request.app.state.node
    return n


def turns(request: Request) -> TurnManager:
    t: TurnManager = request.app.state.turns
    return t


def broker(request: Request) -> ApprovalBroker:
    b: ApprovalBroker = request.app.state.broker
    return b
