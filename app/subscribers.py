"""Every domain's event handlers, registered on the bus (app/events.py) by importing them. The bus imports this
module on its first publish; the order here is the order handlers of one event run in: derived rows first
(walk lists), then what reads them (progress, webhooks)."""

from app.progress import handlers as progress  # noqa: F401
from app.walklists import handlers as walklists  # noqa: F401
from app.webhooks import handlers as webhooks  # noqa: F401
