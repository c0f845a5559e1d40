"""The Koretex coordinator."""
