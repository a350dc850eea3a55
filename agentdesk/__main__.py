from agentdesk.cli import run

run()
