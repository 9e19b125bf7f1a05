"""Accounts (CONTRACT.md §13): many shops' provider accounts, and the failover between them.

models.py     the accounts file as pydantic models: Account, Menu, AccountsFile
loading.py    load(settings): the file (or the one `default` account), secrets read, every
              problem named; check(accounts, templates): what a failover account cannot play
registry.py   the live accounts: each one's provider client, budget and failover chain
"""

from __future__ import annotations

from .loading import Accounts, AccountSpec, check, load
from .models import NAME_PATTERN, Account, AccountsFile, Menu

__all__ = [
    "NAME_PATTERN",
    "Account",
    "AccountSpec",
    "Accounts",
    "AccountsFile",
    "Menu",
    "check",
    "load",
]
