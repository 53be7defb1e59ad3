"""Satellite order book: which plots need imagery, placing orders once, and following their status.

Table `satellite_orders` holds one row per order request (`request_id` = plot and requesting day).
Statuses: `placing` (reserved, the Spexi call under way), `placement_failed` (Spexi refused the order
unprocessed or was not reached: the next run retries), `placement_unknown` (the call failed after
Spexi may have placed the order: never retried, a person settles it with `record_order` or
`release_placement`), then Spexi's `pending`, `processing`, `completed`, `failed`, `cancelled`, and
our `expired` (still open 7 days after the order). An exclusion constraint keeps at most one row per
plot holding its de-duplication window (WINDOW_HOLDING), so two concurrent runs can never both order
for the same plot; a Redis lock per plot makes the loser skip without waiting on the database.
"""

import datetime as dt
import hashlib
import json
import time
from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa
from psycopg import errors as pg_errors

from microcrop_assets.resources.http import VendorError, VendorNotFound
from microcrop_assets.resources.redis import RedisResource
from microcrop_assets.resources.spexi import Order, SpexiResource
from microcrop_assets.resources.timescaledb import TimescaleDBResource

OPEN_STATUSES = ("pending", "processing")
# as the exclusion constraint of migration 0007: an order that may exist holds the window like a live one
WINDOW_HOLDING = ("placing", "placement_unknown", "pending", "processing", "completed")
MAX_OPEN_DAYS = 7
MAX_DOWNLOAD_ATTEMPTS = 3
RASTER_RUN_GRACE = dt.timedelta(hours=6)  # a requested raster run that processed nothing by then is asked again
STATUS_CHUNK = 4  # per-order status GETs in flight; also the granularity of the tick's time budget
# a sensor tick must end within 60 s: stop asking after this, even if a rate limit makes calls wait
STATUS_TIME_BUDGET_S = 20.0
REASON_PRIORITY = {"stress": "high", "routine": "normal"}

_HISTORY = (
    "status_history || jsonb_build_array(jsonb_build_object('status', CAST(:status AS text), 'at', "
    "CAST(:at AS timestamptz), 'detail', CAST(:detail AS text)))"
)


def plan_orders(
    plots: pd.DataFrame,
    stress: pd.DataFrame,
    history: pd.DataFrame,
    day: dt.date,
    routine_every_days: int,
    retry_days: int,
) -> pd.DataFrame:
    """The plots to order imagery for on `day`, with the reason (stress before retry before routine).

    `plots`: active plots (plot_id, sowing_date, season_end, stress_trigger); `stress`: plot_id,
    weather_stress of the day; `history`: earlier requests (plot_id, requested_day, status, reason).
    - stress: in season and weather_stress at or above the policy's stress_trigger;
    - routine: in season and no live or completed order in the last `routine_every_days` days;
    - retry: a placement that failed in the last `retry_days` days and was not placed since, with
      the reason it was first requested for."""
    in_season = plots[(plots["sowing_date"] <= day) & (plots["season_end"] >= day)]
    merged = in_season.merge(stress, on="plot_id", how="left")
    trigger = merged["stress_trigger"].astype(float)
    stressed = set(merged.loc[merged["weather_stress"].astype(float) >= trigger, "plot_id"])

    live = history[history["status"].isin(WINDOW_HOLDING)]
    last_live = live.groupby("plot_id")["requested_day"].max()
    failed = history[
        (history["status"] == "placement_failed")
        & (pd.to_datetime(history["requested_day"]).dt.date >= day - dt.timedelta(days=retry_days))
        & history["plot_id"].isin(set(in_season["plot_id"]) - stressed)
    ]
    retry = {}
    for row in failed.sort_values("requested_day").itertuples():
        if not (row.plot_id in last_live.index and last_live[row.plot_id] >= row.requested_day):
            retry[row.plot_id] = row.reason
    recent = live[pd.to_datetime(live["requested_day"]).dt.date > day - dt.timedelta(days=routine_every_days)]
    routine = set(in_season["plot_id"]) - set(recent["plot_id"]) - stressed - set(retry)
    rows = [(p, "stress") for p in sorted(stressed)] + sorted(retry.items())
    rows += [(p, "routine") for p in sorted(routine)]
    frame = pd.DataFrame(rows, columns=["plot_id", "reason"])
    frame["priority"] = frame["reason"].map(REASON_PRIORITY)
    return frame


@dataclass(frozen=True)
class OrderRequest:
    plot_id: str
    reason: str
    priority: str
    latitude: float
    longitude: float
    area_hectares: float


@dataclass(frozen=True)
class Placement:
    plot_id: str
    outcome: str  # placed | placement_failed | placement_unknown | window_held | already_requested | locked
    order_id: str | None = None
    detail: str | None = None


def place_order(
    db: TimescaleDBResource,
    redis: RedisResource,
    spexi: SpexiResource,
    request: OrderRequest,
    day: dt.date,
    capture_date: dt.date,
    dedup_days: int,
    resolution_meters: float,
    now: dt.datetime,
) -> Placement:
    """Reserve the plot's window in the database, then order from Spexi, then record the answer.

    The reservation commits before the vendor call: a concurrent run meets the constraint (or the
    Redis lock) and skips. A call Spexi provably did not act on (refused unprocessed, or never sent)
    leaves `placement_failed` (window released, the next run retries it); any other failure leaves
    `placement_unknown` (the order may exist: window held, never retried; Spexi has no idempotency
    key or order listing to find out)."""
    request_id = f"{request.plot_id}:{day.isoformat()}"
    with redis.lock(f"satellite-order:{request.plot_id}", ttl_seconds=300) as held:
        if not held:
            return Placement(request.plot_id, "locked", detail="another run is ordering for this plot")
        try:
            with db.begin() as conn:
                reserved = conn.execute(
                    sa.text(
                        "INSERT INTO satellite_orders (request_id, plot_id, reason, priority, requested_day,"
                        " window_end, requested_at, capture_date, status, status_history, placement_attempts)"
                        " VALUES (:rid, :plot, :reason, :priority, :day, :window_end, :at, :capture, 'placing',"
                        " jsonb_build_array(jsonb_build_object('status', 'placing', 'at', CAST(:at AS timestamptz),"
                        " 'detail', CAST(:reason AS text))), 1)"
                        " ON CONFLICT (request_id) DO UPDATE SET status = 'placing', error = NULL,"
                        " placement_attempts = satellite_orders.placement_attempts + 1,"
                        " updated_at = EXCLUDED.requested_at,"
                        " status_history = satellite_orders.status_history || jsonb_build_array(jsonb_build_object("
                        "'status', 'placing', 'at', CAST(:at AS timestamptz), 'detail', 'retry'))"
                        " WHERE satellite_orders.status = 'placement_failed' RETURNING request_id"
                    ),
                    {
                        "rid": request_id,
                        "plot": request.plot_id,
                        "reason": request.reason,
                        "priority": request.priority,
                        "day": day,
                        "window_end": day + dt.timedelta(days=dedup_days),
                        "at": now,
                        "capture": capture_date,
                    },
                ).first()
        except sa.exc.IntegrityError as error:
            if isinstance(error.orig, pg_errors.ExclusionViolation):
                return Placement(request.plot_id, "window_held", detail="an order inside the window exists")
            raise
        if reserved is None:
            return Placement(request.plot_id, "already_requested", detail=f"{request_id} exists")
        try:
            order = spexi.create_order(
                request.plot_id,
                request.latitude,
                request.longitude,
                request.area_hectares,
                resolution_meters,
                priority=request.priority,
                capture_date=capture_date,
            )
        except VendorError as error:
            outcome = "placement_unknown" if error.may_have_acted else "placement_failed"
            set_status(db, request_id, outcome, now, str(error), error=str(error))
            return Placement(request.plot_id, outcome, detail=str(error))
        except Exception as error:  # not the client's own error (a bug, an answer it could not read):
            # whether Spexi acted is unknown, so the window stays held and an operator is told, rather
            # than a row left `placing` that nothing reports
            detail = f"unexpected {type(error).__name__} placing the order: {error}"
            set_status(db, request_id, "placement_unknown", now, detail, error=detail)
            return Placement(request.plot_id, "placement_unknown", detail=detail)
        with db.begin() as conn:
            conn.execute(
                sa.text(
                    f"UPDATE satellite_orders SET order_id = :oid, status = :status, updated_at = :at,"
                    f" status_history = {_HISTORY} WHERE request_id = :rid"
                ),
                {"oid": order.order_id, "status": order.status, "at": now, "detail": order.order_id, "rid": request_id},
            )
        return Placement(request.plot_id, "placed", order_id=order.order_id)


def set_status(
    db: TimescaleDBResource,
    request_id: str,
    status: str,
    now: dt.datetime,
    detail: str | None,
    only_from: str | None = None,
    **columns,
) -> bool:
    """Move a request to `status` (noted in its history, `columns` set too); with `only_from`, only
    while it has that status. Whether the row changed."""
    sets = "".join(f", {name} = :{name}" for name in columns)
    guard = " AND status = :only_from" if only_from else ""
    with db.begin() as conn:
        changed = conn.execute(
            sa.text(
                f"UPDATE satellite_orders SET status = :status, updated_at = :at, status_history = {_HISTORY}{sets}"
                f" WHERE request_id = :rid{guard}"
            ),
            {"status": status, "at": now, "detail": detail, "rid": request_id, "only_from": only_from, **columns},
        ).rowcount
    return changed == 1


# -- placements of unknown outcome (settled by a person) ------------------------------------------


class OrderBookError(ValueError):
    """A request to settle a placement names a row that does not exist or is not `placement_unknown`."""


def unknown_placements(db: TimescaleDBResource) -> pd.DataFrame:
    """Every `placement_unknown` row (request_id, plot_id, requested_day, error), oldest first."""
    return db.read_frame(
        "SELECT request_id, plot_id, requested_day, error FROM satellite_orders"
        " WHERE status = 'placement_unknown' ORDER BY requested_day, plot_id"
    )


def record_order(db: TimescaleDBResource, request_id: str, order_id: str, now: dt.datetime) -> None:
    """Spexi holds order `order_id` for this unknown placement: record it as `pending`, so the
    satellite order sensor follows it from its next tick (and fails it if Spexi does not know it)."""
    order_id = order_id.strip()
    if not order_id:
        raise OrderBookError(f"the order id for {request_id} is empty")
    try:
        _settle(db, request_id, "pending", f"order {order_id} recorded by an operator", now, order_id=order_id)
    except sa.exc.IntegrityError as error:
        if not isinstance(error.orig, pg_errors.UniqueViolation):
            raise
        holder = db.read_frame("SELECT request_id FROM satellite_orders WHERE order_id = :oid", {"oid": order_id})
        raise OrderBookError(
            f"order {order_id} is already recorded for {', '.join(holder['request_id'])}, not for {request_id}"
        ) from None


def release_placement(db: TimescaleDBResource, request_id: str, now: dt.datetime) -> None:
    """Spexi holds no order for this unknown placement: make it `placement_failed`, which releases the
    plot's window (the next run retries it within `retry_days`, or orders it as usual)."""
    _settle(db, request_id, "placement_failed", "released by an operator: Spexi holds no such order", now)


def _settle(db: TimescaleDBResource, request_id: str, status: str, detail: str, now: dt.datetime, **columns) -> None:
    if not set_status(db, request_id, status, now, detail, only_from="placement_unknown", **columns):
        found = db.read_frame("SELECT status FROM satellite_orders WHERE request_id = :rid", {"rid": request_id})
        state = f"is {found['status'].iloc[0]!r}" if len(found) else "does not exist"
        raise OrderBookError(f"satellite order request {request_id!r} {state}, not 'placement_unknown'")


# -- following open orders (the sensor) -----------------------------------------------------------


@dataclass(frozen=True)
class StatusCheck:
    checked: int
    changed: dict[str, int]  # new status -> orders
    errors: int  # vendor errors (orders left open, asked again next tick)
    expired: int
    next_cursor: str  # "" once the last page was read


def expire_stale(db: TimescaleDBResource, now: dt.datetime, max_open_days: int = MAX_OPEN_DAYS) -> int:
    """Orders still open `max_open_days` after they were placed become `expired`, with the reason."""
    reason = f"not completed within {max_open_days} days of the order"
    with db.begin() as conn:
        return conn.execute(
            sa.text(
                f"UPDATE satellite_orders SET status = :status, error = :detail, updated_at = :at,"
                f" status_history = {_HISTORY}"
                " WHERE status IN ('pending', 'processing') AND requested_at < :cutoff"
            ),
            {"status": "expired", "detail": reason, "at": now, "cutoff": now - dt.timedelta(days=max_open_days)},
        ).rowcount


def check_open_orders(
    db: TimescaleDBResource,
    spexi: SpexiResource,
    cursor: str,
    page_size: int,
    now: dt.datetime,
    time_budget_s: float = STATUS_TIME_BUDGET_S,
) -> StatusCheck:
    """Ask Spexi about one page of open orders (after `cursor`, by request id) and record the answers.

    Paging keeps a tick bounded however many orders are open; the cursor wraps to the start after
    the last page. Within a page, status calls go in chunks (one bulk call, or STATUS_CHUNK GETs)
    and stop once `time_budget_s` has passed (a per-order rate limit can make every GET wait): the
    cursor then resumes after the last order asked. Vendor errors leave the order open with the
    error noted (asked again later); an order Spexi does not know fails with that reason."""
    expired = expire_stale(db, now)
    page = db.read_frame(
        "SELECT request_id, order_id, status FROM satellite_orders WHERE status IN ('pending', 'processing')"
        " AND request_id > :cursor ORDER BY request_id LIMIT :limit",
        {"cursor": cursor, "limit": page_size},
    )
    if page.empty:
        return StatusCheck(0, {}, 0, expired, "")
    full_page = len(page) == page_size
    step = spexi.order_statuses_batch if spexi.order_statuses_path else STATUS_CHUNK
    answers: dict = {}
    started = time.monotonic()
    for start in range(0, len(page), step):
        answers.update(spexi.order_statuses(page["order_id"].iloc[start : start + step].tolist(), STATUS_CHUNK))
        if time.monotonic() - started > time_budget_s and start + step < len(page):
            page, full_page = page.iloc[: start + step], True
            break
    rows, errors = [], 0
    for order_id in page["order_id"]:
        answer = answers[order_id]
        if isinstance(answer, Order):
            detail = answer.details.get("failure_reason") if answer.status == "failed" else None
            rows.append((order_id, answer.status, detail))
        elif isinstance(answer, VendorNotFound):
            rows.append((order_id, "failed", f"Spexi does not know this order: {answer}"))
        else:
            errors += 1
            rows.append((order_id, None, f"status check failed: {answer}"))
    updates = pd.DataFrame(rows, columns=["order_id", "status", "detail"])
    with db.begin() as conn:
        conn.execute(
            sa.text("CREATE TEMP TABLE order_answers (order_id text, status text, detail text) ON COMMIT DROP")
        )
        db.copy_frame(conn, "order_answers", updates)
        conn.execute(
            sa.text(
                "UPDATE satellite_orders o SET checked_at = :at, updated_at = :at,"
                " status = coalesce(a.status, o.status),"
                " error = CASE WHEN a.status IS NULL OR a.status IN ('failed', 'cancelled') THEN a.detail"
                " ELSE NULL END,"
                " completed_at = CASE WHEN a.status = 'completed' THEN :at ELSE o.completed_at END,"
                " status_history = CASE WHEN a.status IS NOT NULL AND a.status <> o.status THEN o.status_history"
                " || jsonb_build_array(jsonb_build_object('status', a.status, 'at', CAST(:at AS timestamptz),"
                " 'detail', a.detail)) ELSE o.status_history END"
                " FROM order_answers a WHERE o.order_id = a.order_id AND o.status IN ('pending', 'processing')"
            ),
            {"at": now},
        )
    moved = updates["status"].notna() & (updates["status"].to_numpy() != page["status"].to_numpy())
    changed = updates.loc[moved, "status"].value_counts().to_dict()
    last = page["request_id"].iloc[-1] if full_page else ""
    return StatusCheck(len(page), {str(k): int(v) for k, v in changed.items()}, errors, expired, last)


def raster_run_requests(db: TimescaleDBResource, now: dt.datetime) -> dict[str, str]:
    """Run keys of the ndvi_rasters runs owed, by capture date: completed orders not processed and
    either never requested or requested more than RASTER_RUN_GRACE ago (that run failed or was lost).

    The key hashes the orders, their download attempts and how often they were requested, so a
    repeated tick asks for the same run (Dagster drops it) while an order whose download failed or
    whose run never processed it is asked for again."""
    owed = db.read_frame(
        "SELECT request_id, capture_date, order_id, download_attempts, raster_requests FROM satellite_orders"
        " WHERE status = 'completed' AND processed_at IS NULL"
        " AND (raster_run_key IS NULL OR raster_requested_at < :stale) ORDER BY capture_date, order_id",
        {"stale": now - RASTER_RUN_GRACE},
    )
    keys = {}
    for capture_date, orders in owed.groupby("capture_date"):
        counts = orders[["download_attempts", "raster_requests"]].astype(int).values.tolist()
        inputs = [[order_id, *numbers] for order_id, numbers in zip(orders["order_id"], counts, strict=True)]
        digest = hashlib.sha256(json.dumps(inputs).encode()).hexdigest()[:16]
        keys[capture_date.isoformat()] = f"ndvi_rasters:{capture_date.isoformat()}:{digest}"
    if keys:
        with db.begin() as conn:
            for capture_date, orders in owed.groupby("capture_date"):
                conn.execute(
                    sa.text(
                        "UPDATE satellite_orders SET raster_run_key = :key, raster_requested_at = :at,"
                        " raster_requests = raster_requests + 1 WHERE request_id = ANY(:ids)"
                    ),
                    {"key": keys[capture_date.isoformat()], "at": now, "ids": orders["request_id"].tolist()},
                )
    return keys


# -- imagery of completed orders (ndvi_rasters) ---------------------------------------------------


def record_download_failure(db: TimescaleDBResource, request_id: str, attempts: int, error: str, now) -> str:
    """A failed download keeps the order completed and owed a run (the sensor asks again) until
    MAX_DOWNLOAD_ATTEMPTS, then fails it with the reason. Returns the status left."""
    if attempts >= MAX_DOWNLOAD_ATTEMPTS:
        detail = f"download failed {attempts} times: {error}"
        set_status(db, request_id, "failed", now, detail, error=detail, download_attempts=attempts)
        return "failed"
    with db.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE satellite_orders SET download_attempts = :n, error = :error, raster_run_key = NULL,"
                " updated_at = :at WHERE request_id = :rid"
            ),
            {"n": attempts, "error": f"download failed: {error}", "at": now, "rid": request_id},
        )
    return "completed"
