"""Pure decisions the actors delegate to: lifecycle transitions, risk, restart limits,
the trader's book-keeping (portfolio) and its log lines (trade_lines).

Nothing here knows about actors, mailboxes or clocks: every function takes the
facts and the current time as arguments and returns a value, so each rule is
tested directly (including with hypothesis) without starting a thread.
"""
