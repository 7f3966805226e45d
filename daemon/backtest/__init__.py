"""Backtests and parameter optimisation on recorded data, through the daemon's own actors.

``tradingd backtest`` builds one symbol group exactly as the daemon does
(:class:`daemon.group.SymbolGroup`: market-feed, strategy, risk, order, stop-monitor,
paper exchange, plus the account's portfolio) and drives it from a replay file in
lockstep on a simulated clock: one market message is pushed into the market-feed inbox,
then every actor's inbox is drained in a fixed order until all are empty, then the next
message.  No tasks, no sleeping, no wall clock: two runs give the same result.

Modules, one job each:

- :mod:`.clock` the simulated (event-time) clock actors read;
- :mod:`.channel` the lockstep inbox (a plain deque behind the ``Channel`` interface);
- :mod:`.data` loading a data file and cutting a time range, with clear errors;
- :mod:`.setup` from arguments to a runnable backtest (config, group, data);
- :mod:`.runner` building the group and running the lockstep loop;
- :mod:`.ledger` round trips and the equity curve from fills and bars;
- :mod:`.metrics` the performance figures;
- :mod:`.report` the terminal table and the JSON document;
- :mod:`.html_report` the self-contained HTML report (inline SVG);
- :mod:`.progress` a progress bar on stderr (TTY only);
- :mod:`.grid` the ``--grid`` syntax; :mod:`.optimize` parallel parameter search;
- :mod:`.cli` the ``backtest`` and ``optimize`` sub-commands.
"""
