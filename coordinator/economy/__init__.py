"""Credits: pricing, ledger postings, holds and settlement, bounties, top-ups."""
