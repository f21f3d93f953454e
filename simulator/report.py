"""What a simulation found: the phones' figures set against the server's count, and the report for a terminal."""

import statistics
import time
from collections import Counter
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from simulator.phone import Options, Phone
from simulator.wire import Wire

# A phone clock this far off must come back `clock_suspect`, and a nearer one not: the server flags a day
# (its own setting, which this client can't read). The skews played are within about an hour or decades off,
# so the check holds for any server threshold in between.
WRONG_CLOCK_S = 24 * 3600.0


def summarise(options: Options, run: str, phones: list[Phone], before: dict[int, int], after: dict[int, int],
               wire: Wire, *, setup_s: float, phases: dict[str, dict[str, float]], total_s: float) -> dict[str, Any]:
    reports = [p.report for p in phones]
    totals = {k: sum(getattr(r, k) for r in reports) for k in (
        "knocks", "batches", "sends", "resends", "knocks_resent", "lost_answers", "double_sends", "truncated",
        "reordered", "failed_sends", "refreshes", "accepted", "duplicate", "rejected")}
    distinct = sum(len(p.sent) for p in phones)
    totals["distinct_sent"] = distinct
    turfs = sorted({r.turf_id for r in reports if r.turf_id is not None})
    counted = sum(after.get(t, 0) - before.get(t, 0) for t in turfs)
    accepted_once = Counter(s.count("accepted") for p in phones for s in p.outcomes.values())
    checks = {
        "every knock made was sent": distinct == totals["knocks"],
        "accepted == distinct knocks sent": totals["accepted"] == distinct,
        "server count == distinct knocks sent": counted == distinct,
        "each knock accepted exactly once": set(accepted_once) <= {1},
        "no knock rejected": totals["rejected"] == 0,
        "each phone its own turf": len(turfs) == len(reports),
        "wrong clocks flagged, right ones not": all(
            r.clock_suspect is None or r.clock_suspect == (abs(r.clock_skew_s) >= WRONG_CLOCK_S) for r in reports),
    }
    sync_ms = wire.ms.get("POST sync", [])
    return {
        "run": run, "url": options.url, "campaign": options.campaign, "canvassers": options.canvassers,
        "minutes": options.minutes, "seed": options.seed,
        "phones": [asdict(r) for r in reports],
        "totals": totals,
        "server": {"turfs": turfs, "knocks_before": sum(before.get(t, 0) for t in turfs),
                   "knocks_after": sum(after.get(t, 0) for t in turfs), "counted": counted,
                   "campaign_counted": sum(after.values()) - sum(before.values())},
        "checks": checks,
        "agree": all(checks.values()),
        "throughput": {
            "setup_s": round(setup_s, 3), "start_s": round(phases["start"]["s"], 3),
            "shift_s": round(phases["shift"]["s"], 3), "total_s": round(total_s, 3), "requests": wire.requests,
            "start_requests": phases["start"]["requests"], "shift_requests": phases["shift"]["requests"],
            "errors_retried": wire.errors,
            "knocks_per_s": round(totals["accepted"] / phases["shift"]["s"], 1),
            "requests_per_s": round(phases["shift"]["requests"] / phases["shift"]["s"], 1),
            "start_requests_per_s": round(phases["start"]["requests"] / phases["start"]["s"], 1),
            "sync_requests": len(sync_ms),
            "endpoints": {name: _latency(ms) for name, ms in sorted(wire.ms.items())},
        },
    }


def _latency(ms: list[float]) -> dict[str, Any]:
    """Count and milliseconds (median, 95th percentile, max) of an endpoint's requests."""
    ordered = sorted(ms)
    return {"requests": len(ordered), "p50_ms": round(statistics.median(ordered), 1),
            "p95_ms": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 1),
            "max_ms": round(ordered[-1], 1)}


def _skew(seconds: float) -> str:
    if abs(seconds) >= WRONG_CLOCK_S:
        return f"{datetime.fromtimestamp(time.time() + seconds, UTC):%Y-%m-%d}"
    sign = "-" if seconds < 0 else "+"
    whole = int(abs(seconds))
    return f"{sign}{whole // 3600}:{whole % 3600 // 60:02}:{whole % 60:02}"


def _offset(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return f"{seconds / 86400:+.0f} days" if abs(seconds) >= 86400 else f"{seconds:+.0f} s"


def format_report(report: dict[str, Any]) -> str:
    """The report as lines for a terminal: a row per phone, the totals, the server's count, the verdict."""
    t, s, speed = report["totals"], report["server"], report["throughput"]
    phones = f"{report['canvassers']} phone" + "s" * (report["canvassers"] != 1)
    seed = "random" if report["seed"] is None else report["seed"]
    lines = [f"Simulated {phones} against {report['url']} (campaign {report['campaign']}, run {report['run']}, "
             f"seed {seed}): sign-up, claim and walk list in {speed['start_s']:.1f} s, then shifts of "
             f"{report['minutes']} phone minutes played in {speed['shift_s']:.1f} s."]
    header = ("phone", "turf", "doors", "clock", "knocks", "batches", "sends", "resends", "lost", "double", "cut",
              "accepted", "duplicate", "rejected", "server offset")
    rows = [[str(r["phone"]), f"{r['turf']} ({r['turf_id']})", str(r["doors"]), _skew(r["clock_skew_s"]),
             str(r["knocks"]), str(r["batches"]), str(r["sends"]), str(r["resends"]), str(r["lost_answers"]),
             str(r["double_sends"]), str(r["truncated"]), str(r["accepted"]), str(r["duplicate"]),
             str(r["rejected"]),
             _offset(r["clock_offset_s"]) + (" (suspect)" if r["clock_suspect"] else "")] for r in report["phones"]]
    rows.append(["total", f"{len(s['turfs'])} turfs", str(sum(r["doors"] for r in report["phones"])), "",
                 str(t["knocks"]), str(t["batches"]), str(t["sends"]), str(t["resends"]), str(t["lost_answers"]),
                 str(t["double_sends"]), str(t["truncated"]), str(t["accepted"]), str(t["duplicate"]),
                 str(t["rejected"]), ""])
    widths = [max(len(row[i]) for row in [list(header), *rows]) for i in range(len(header))]
    for row in [list(header), *rows]:
        lines.append("  ".join(cell.ljust(w) if i in (1, 3, 14) else cell.rjust(w)
                               for i, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip())
    for r in report["phones"]:
        lines += [f"  phone {r['phone']} rejected {p}" for p in r["problems"]]
    lines.append(f"Server counted {s['counted']} new knocks on the {len(s['turfs'])} turfs the phones held "
                 f"({s['knocks_before']} before, {s['knocks_after']} after; {s['campaign_counted']} new in the "
                 "whole campaign).")
    lines.append(f"Also: {t['reordered']} uploads out of order, {t['failed_sends']} uploads unanswered (errors), "
                 f"{t['refreshes']} walk-list refreshes.")
    lines.append(f"Throughput: the shifts synced {t['accepted']} knocks in {speed['shift_s']:.2f} s = "
                 f"{speed['knocks_per_s']} knocks/s, {speed['shift_requests']} requests = {speed['requests_per_s']} "
                 f"requests/s; sign-up and claims {speed['start_requests']} requests = "
                 f"{speed['start_requests_per_s']} requests/s; {speed['errors_retried']} errors retried.")
    lines += [f"  {name:<16} {e['requests']:>5} requests  p50 {e['p50_ms']:>7.1f} ms  p95 {e['p95_ms']:>7.1f} ms  "
              f"max {e['max_ms']:>7.1f} ms" for name, e in speed["endpoints"].items()]
    failed = [name for name, ok in report["checks"].items() if not ok]
    verdict = "AGREE" if report["agree"] else "DISAGREE"
    lines.append(f"{verdict}: {t['distinct_sent']} distinct knocks sent, {t['accepted']} accepted, {s['counted']} "
                 "counted by the server" + (f"; failed: {', '.join(failed)}." if failed else "."))
    return "\n".join(lines)
