"""Typed application keys (aiohttp AppKey) for what the composition root puts on the app, each typed by the
port its readers need, never by an adapter."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.background import Background
from gateway.domain.keys import MasterKeys
from gateway.http.identity import Identities
from gateway.http.load_gate import LoadGate
from gateway.http.metrics import Metrics
from gateway.pipeline.reply import NodeId
from gateway.pipeline.service import Gateway
from gateway.ports.blacklist import CacheFreshness, DistributionReads, FeedWriter, ReadyListLookup
from gateway.ports.health import Pingable
from gateway.ports.operators import AuditTrail
from gateway.ports.reconcile import JournalVerifier, ReconcileReads
from gateway.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
GATEWAY = web.AppKey("gateway", Gateway)
METRICS = web.AppKey("metrics", Metrics)
DATABASE: web.AppKey[Pingable] = web.AppKey("database")  # PostgreSQL for readiness, request-path deadline
NODE: web.AppKey[NodeId] = web.AppKey("node")
BACKGROUND = web.AppKey("background", Background)
LIST_LOOKUP: web.AppKey[ReadyListLookup] = web.AppKey("list_lookup")
MASTER_KEYS = web.AppKey("master_keys", MasterKeys)
STATUS = web.AppKey("status", dict[str, Any])
LOCAL_BLACKLIST: web.AppKey[CacheFreshness] = web.AppKey("local_blacklist")
FEED_WRITER: web.AppKey[FeedWriter] = web.AppKey("feed_writer")  # feed batches and imports: FEED_BATCH_S deadline
LIST_WRITER: web.AppKey[FeedWriter] = web.AppKey("list_writer")  # single admin changes: the request deadline
DISTRIBUTION: web.AppKey[DistributionReads] = web.AppKey("distribution")  # what terminals download
# Issue 11 items 5-6: who sent an admin request (env tokens, then named operators) and the audit trail.
IDENTITIES = web.AppKey("identities", Identities)
AUDIT_TRAIL: web.AppKey[AuditTrail] = web.AppKey("audit_trail")
LOAD_GATE = web.AppKey("load_gate", LoadGate)  # issue 11 item 8: requests in flight, shedding by priority
# Issue 11 item 5, the auditor's reads over HTTP: both on the bulk deadline (pg_bulk_timeout_s).
RECONCILE_READS: web.AppKey[ReconcileReads] = web.AppKey("reconcile_reads")
JOURNAL_VERIFIER: web.AppKey[JournalVerifier] = web.AppKey("journal_verifier")
