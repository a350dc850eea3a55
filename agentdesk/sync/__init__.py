"""Sync: the worker that pulls every source into the store and delivers the outbox.

`worker` runs the loop; `sources/` holds one module per kind of source (email over IMAP, webhook
spools); `delivery` is the one outbox with its one retry schedule; `senders` hands each reply to
its channel.
"""
