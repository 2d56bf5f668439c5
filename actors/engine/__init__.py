"""The run engine: plain Python that turns a thread's messages into the next ones.

Nothing in this package imports Dapr; the Thread actor loads state, hands it here,
and saves what comes back.
"""
