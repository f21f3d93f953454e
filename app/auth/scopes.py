"""What an API key may do, without the tables: the command line offers it as a choice before anything of the
database is imported."""

from enum import StrEnum


class Scope(StrEnum):
    progress_read = "progress:read"
    turfs_read = "turfs:read"
    results_read = "results:read"
    people_read = "people:read"
    webhooks_write = "webhooks:write"
