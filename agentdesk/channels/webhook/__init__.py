"""The webhook spool channel: spool directories, provider adapters, a receiver, outbound replies.

A spool is a Maildir-like directory (`tmp/ new/ cur/ rejected/`). Anything may write into it
(`agentdesk webhook serve`, a gateway, a cron job) by writing into `tmp/` and renaming into
`new/`; `spool.SpoolSource` ingests complete files from `new/` and moves each to `cur/` (stored) or
`rejected/` (with a `.error` sidecar) — nothing is ever deleted. `adapters/` turn each provider's
payload into records; `receiver` is the verifying HTTP endpoint; `outbound` delivers replies.
"""
