"""Accounts, API keys and sign-in."""
