"""Fake Hugging Face Hub server for tests (see server.py) and its pytest fixture helpers."""

from .server import KINDS, Fault, FaultPlan, HubServer, RepoState, RequestRecord

__all__ = ["KINDS", "Fault", "FaultPlan", "HubServer", "RepoState", "RequestRecord"]
