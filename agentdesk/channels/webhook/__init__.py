"""The webhook spool channel on the wire: spool directories, provider adapters, a receiver, replies out.

A spool is a Maildir-like directory (`tmp/ new/ cur/ rejected/`). Anything may write into it
(`agentdesk webhook serve`, a gateway, a cron job) by writing into `tmp/` and renaming into
`new/`; `spool` is that directory format. `adapters/` turn each provider's payload into records;
`receiver` is the verifying HTTP endpoint; `outbound` is the reply document and its transports.
Storing what arrives and delivering what is queued is `agentdesk.sync`'s work
(`sync.sources.spool`, `sync.senders`).
"""
