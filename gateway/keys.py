"""Typed application keys (aiohttp AppKey) for what the composition root puts on the app."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from adapters.pg_nodes import NodeLease
from adapters.pg_pool import Pg
from gateway.domain.keys import MasterKeys
from gateway.http.metrics import Metrics
from gateway.pipeline.service import Gateway
from gateway.ports.blacklist import CacheFreshness, DistributionReads, FeedWriter, ReadyListLookup
from gateway.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
GATEWAY = web.AppKey("gateway", Gateway)
METRICS = web.AppKey("metrics", Metrics)
PG_POOL = web.AppKey("pg_pool", Pg)  # request-path deadline (pg_timeout_s)
PG_BULK = web.AppKey("pg_bulk", Pg)  # the same pool, bulk deadline: feeds, imports, snapshots
NODE = web.AppKey("node", NodeLease)
LIST_LOOKUP: web.AppKey[ReadyListLookup] = web.AppKey("list_lookup")
MASTER_KEYS = web.AppKey("master_keys", MasterKeys)
STATUS = web.AppKey("status", dict[str, Any])
LOCAL_BLACKLIST: web.AppKey[CacheFreshness] = web.AppKey("local_blacklist")
FEED_WRITER: web.AppKey[FeedWriter] = web.AppKey("feed_writer")  # feed batches and imports: FEED_BATCH_S deadline
LIST_WRITER: web.AppKey[FeedWriter] = web.AppKey("list_writer")  # single admin changes: the request deadline
DISTRIBUTION: web.AppKey[DistributionReads] = web.AppKey("distribution")  # what terminals download
