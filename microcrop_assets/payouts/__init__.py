"""Payout proofs (IPFS) and the payouts ledger (chain)."""
