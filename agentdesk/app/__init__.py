"""The application layer: one function per user action, called by both front ends.

The CLI parses, calls an action and renders its result; the TUI binds a key, calls the action in a
worker thread and renders the result. Neither opens sessions or assembles store calls itself.

    desk            Desk (the acting agent: settings, clock, database, policies), header, Commits
    queue           views and searches: windows for the TUI, documents for `list`; the prefetch
    conversations   thread, document (show), reply, note, send, save_draft, update, change, claim, merge
    customers       the card beside a thread, document, listing, merge, unmerge
    templates       all_templates, find, suggestions, render, save
    presence        heartbeat, leave, colleagues
    reports         report, sla_explanation, recompute_sla
    records         stats, audit_events, export
    spools          listing, retry
    maintenance     prepare (create or upgrade), copy_database

Submodules are imported where they are used, so a command loads only what it needs.
"""
