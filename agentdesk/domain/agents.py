"""Agents: a Unix login is an agent; config only gives it a display name and a signature."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from agentdesk.store.models import Agent


def ensure_agent(session: Session, *, login: str, name: str, signature: str, now: datetime) -> Agent:
    """The agent row for `login`, created on first action and kept in step with the config."""
    agent = session.get(Agent, login)
    if agent is None:
        agent = Agent(login=login, name=name, signature=signature, created_at=now)
        session.add(agent)
    elif (agent.name, agent.signature) != (name, signature):
        agent.name, agent.signature = name, signature
        session.add(agent)
    return agent
