"""The operations console: server-rendered pages over the three services' HTTP APIs.

It owns no data. Every page is a few calls to points, rewards and alerts with the API
key(s) the person signed in with (kept server-side, never in a URL or a log line), so a
merchant-bound key sees and does exactly what the services allow it, no more. Dead letters
are read from and replayed to the broker, as `loyalty dlq replay` does.
"""
