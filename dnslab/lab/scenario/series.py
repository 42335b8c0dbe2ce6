"""What a scenario run measured, bucket by bucket of lab time (sans-I/O).

Each lookup a client makes lands in the bucket of its moment: the answer it
got (by label), whether it went out as a query or came from the client's own
cache, and whether the connection that followed worked.  Upstream load (what
each level and each authoritative server received) comes in as counter
deltas from the runner.  The arrival of a new answer is followed client by
client: the moment the share of clients whose latest answer holds the new
value first reaches 50, 95, 99 and 100 % is kept, counted from `since`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from dnslab.lab.scenario.population import Answer, Client, Connection

MILESTONES = (50, 95, 99, 100)


@dataclass
class Bucket:
    start: float
    answers: Counter[str] = field(default_factory=Counter)  # lookups by answer label
    from_client_cache: int = 0
    queries: Counter[str] = field(default_factory=Counter)  # queries sent by clients, by target
    connections: Counter[str] = field(default_factory=Counter)  # working connections, by endpoint
    failed_connections: int = 0
    failed_lookups: int = 0
    upstream: Counter[str] = field(default_factory=Counter)  # queries received, by lab server or level
    seeing_new: float | None = None  # share of clients whose latest answer holds the new value, at the end

    @property
    def lookups(self) -> int:
        return sum(self.answers.values())

    def to_json(self) -> dict[str, Any]:
        return {"start": self.start, "lookups": self.lookups, "answers": dict(self.answers),
                "from_client_cache": self.from_client_cache, "queries": dict(self.queries),
                "connections": dict(self.connections), "failed_connections": self.failed_connections,
                "failed_lookups": self.failed_lookups, "upstream": dict(self.upstream),
                "seeing_new": self.seeing_new}


class Series:
    """The buckets of one run (one variant), filled as the run goes."""

    def __init__(self, duration: float, bucket: float, clients: int, new_answer: str | None = None,
                 since: float = 0.0) -> None:
        self.bucket = bucket
        self.clients = clients
        self.new_answer = new_answer
        self.since = since
        count = max(1, int(-(-duration // bucket)))
        self.buckets = [Bucket(index * bucket) for index in range(count)]
        self.seeing = 0  # clients whose latest answer holds the new value
        self.milestones: dict[int, float | None] = {percent: None for percent in MILESTONES}

    def at(self, now: float) -> Bucket:
        return self.buckets[min(len(self.buckets) - 1, max(0, int(now // self.bucket)))]

    def lookup(self, now: float, client: Client, answer: Answer, queried: bool,
               connection: Connection | None) -> None:
        bucket = self.at(now)
        bucket.answers[answer.label] += 1
        if queried:
            bucket.queries[client.target] += 1
        else:
            bucket.from_client_cache += 1
        if answer.failed:
            bucket.failed_lookups += 1
        if connection is not None:
            if connection.ok:
                bucket.connections[connection.tried[-1]] += 1
            else:
                bucket.failed_connections += 1
        if self.new_answer is not None:
            sees = self.new_answer in answer.values
            if sees != client.sees_new:
                client.sees_new = sees
                self.seeing += 1 if sees else -1
            if now >= self.since:
                self._milestones(now)
        bucket.seeing_new = self.seeing / self.clients if self.new_answer is not None else None

    def _milestones(self, now: float) -> None:
        share = self.seeing / self.clients
        for percent, reached in self.milestones.items():
            if reached is None and share * 100 >= percent:
                self.milestones[percent] = now - self.since

    def upstream(self, now: float, deltas: dict[str, int]) -> None:
        bucket = self.at(now)
        for where, count in deltas.items():
            if count:
                bucket.upstream[where] += count

    def close(self) -> None:
        """A bucket without lookups keeps the previous bucket's share: nobody's answer changed in it."""
        share: float | None = None
        for bucket in self.buckets:
            if bucket.seeing_new is None:
                bucket.seeing_new = share
            share = bucket.seeing_new

    # --- totals ----------------------------------------------------------------------------

    def totals(self) -> dict[str, Any]:
        answers: Counter[str] = Counter()
        upstream: Counter[str] = Counter()
        connections: Counter[str] = Counter()
        queries = failed = failed_lookups = from_cache = 0
        for bucket in self.buckets:
            answers.update(bucket.answers)
            upstream.update(bucket.upstream)
            connections.update(bucket.connections)
            queries += sum(bucket.queries.values())
            failed += bucket.failed_connections
            failed_lookups += bucket.failed_lookups
            from_cache += bucket.from_client_cache
        return {"lookups": sum(answers.values()), "queries": queries, "from_client_cache": from_cache,
                "answers": dict(answers), "connections": dict(connections), "failed_connections": failed,
                "failed_lookups": failed_lookups, "upstream": dict(upstream),
                "milestones": {str(percent): value for percent, value in self.milestones.items()}}

    def to_json(self) -> dict[str, Any]:
        return {"bucket": self.bucket, "clients": self.clients, "new_answer": self.new_answer,
                "since": self.since, "totals": self.totals(),
                "buckets": [bucket.to_json() for bucket in self.buckets]}
