"""Phones played against a running Doorstep server: the end-to-end check of sync, and its load test.

Each simulated phone joins the campaign with a join code, claims a turf, downloads its walk list and knocks its
doors offline by its own clock (most drift a little, some are an hour off, and with five phones or more one was
reset to 1970, which the server must flag). It uploads in batches the way phones on bad signal do: answers lost
and the batch sent again, a batch sent twice at once, batches held offline and sent out of order, batches cut
short and finished later. At the end what the phones sent is set against what the server counted: they agree,
or the run failed.

A shift of M minutes of phone time is played in seconds. The server takes only knocks made while the phone held
its turf (by its corrected clock), so a knock's time is a real instant between the claim and the upload of its
batch, by the phone's clock, spaced in proportion to the shift's phone minutes.

It is a client of the HTTP API and nothing else: it imports nothing of `app`, and runs against any server that speaks
the same API.
"""

from simulator.phone import Options
from simulator.report import format_report
from simulator.run import simulate
from simulator.wire import BadInput, SimulationFailed

__all__ = ["BadInput", "Options", "SimulationFailed", "format_report", "simulate"]
