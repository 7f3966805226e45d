"""``tradingd notify``: the reference downstream consumer of the daemon's Redis streams.

A separate process that needs only Redis (and, for Telegram commands, the daemon's admin API):
``consumer`` reads the streams with a consumer group and files each alert into a per-target
outbox in the same transaction as its XACK; ``deliver`` sends each outbox through apprise or
the Telegram bot (rate limits, quiet hours, retries); ``daily`` adds the daily summary;
``telegram`` answers operator commands; ``main`` runs it all under systemd.
"""
