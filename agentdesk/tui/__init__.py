"""The Textual front end: the app, its screens and widgets — the only package that imports textual.

It binds keys (actions.py, the one table of binding ids) to the actions of `agentdesk.app`, runs
them in worker threads and renders what they return."""
