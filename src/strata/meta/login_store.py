"""The failed-login budgets every worker of every node shares, in SQL: :class:`SqlLoginBudget`
(a :class:`strata.auth.ratelimit.LoginBudget`).

One row per bucket that is not full (``auth_login_buckets``: tokens and when they were counted,
by the database's wall clock); a missing row is a full bucket, so a server nobody guesses
passwords at keeps the table empty. Bucket names are a keyed hash (HMAC with a subkey of the
server's secret key, the same on every node) of client IP + user name or client IP, so the
table holds no user names typed by strangers.

- the check made before a login's password is verified (:meth:`SqlLoginBudget.retry_after`):
  one primary-key SELECT of at most two rows, compiled once, on the hot-read path;
- a failed login (:meth:`SqlLoginBudget.failed`): one short write transaction (rows locked
  ``FOR UPDATE`` on PostgreSQL, so two nodes counting the same bucket do not lose a count)
  that also deletes the rows of buckets that have filled up since (an indexed range delete).
  Not durable: a budget that falls back after a power loss costs nothing.
"""

from __future__ import annotations

import hashlib
import hmac

import sqlalchemy as sa

from strata.auth.ratelimit import LoginLimits, bucket_level, seconds_until_token
from strata.meta.database import Batch, Database
from strata.meta.errors import Conflict
from strata.meta.schema_auth import auth_login_buckets as buckets

__all__ = ["SqlLoginBudget"]


def _levels_query() -> sa.Select[tuple[str, float, float]]:
    return sa.select(buckets.c.bucket, buckets.c.tokens, buckets.c.updated).where(
        buckets.c.bucket.in_([sa.bindparam("user"), sa.bindparam("ip")]))


class SqlLoginBudget:
    def __init__(self, db: Database, limits: LoginLimits, key: bytes) -> None:
        """*key*: the bucket names' HMAC key (the same on every node)."""
        self._db = db
        self._key = key
        self._user = (limits.per_user_per_minute / 60.0, float(limits.per_user_burst))
        self._ip = (limits.per_ip_per_minute / 60.0, float(limits.per_ip_burst))
        self._horizon = limits.refill_seconds()
        self._levels_sql = db.compiled(_levels_query())

    def _name(self, kind: str, key: str) -> str:
        digest = hmac.new(self._key, key.encode("utf-8", "surrogatepass"), hashlib.sha256)
        return f"{kind}:{digest.hexdigest()[:40]}"

    async def retry_after(self, user_key: str, ip_key: str) -> int:
        names = {self._name("u", user_key): self._user, self._name("i", ip_key): self._ip}
        user, ip = names
        rows = await self._db.fetch_all(self._levels_sql, {"user": user, "ip": ip})
        now = self._db.now()
        wait = 0
        for name, tokens, updated in rows:
            rate, burst = names[str(name)]
            level = bucket_level(float(tokens), float(updated), now, rate, burst)
            wait = max(wait, seconds_until_token(level, rate))
        return wait

    async def failed(self, user_key: str, ip_key: str) -> None:
        spend = [(self._name("u", user_key), *self._user), (self._name("i", ip_key), *self._ip)]

        def job(conn: sa.Connection, _batch: Batch) -> None:
            now = self._db.now()
            conn.execute(sa.delete(buckets).where(buckets.c.updated < now - self._horizon))
            for name, rate, burst in spend:
                row = conn.execute(sa.select(buckets.c.tokens, buckets.c.updated)
                                   .where(buckets.c.bucket == name).with_for_update()).first()
                level = burst if row is None else \
                    bucket_level(float(row.tokens), float(row.updated), now, rate, burst)
                tokens = level - 1.0 if level >= 1.0 else level
                if row is None:
                    conn.execute(sa.insert(buckets).values(bucket=name, tokens=tokens,
                                                           updated=now))
                else:
                    conn.execute(sa.update(buckets).where(buckets.c.bucket == name)
                                 .values(tokens=tokens, updated=max(now, float(row.updated))))

        try:
            await self._db.write(job, durable=False)
        except Conflict:  # another node inserted the same bucket meanwhile: count again
            await self._db.write(job, durable=False)
