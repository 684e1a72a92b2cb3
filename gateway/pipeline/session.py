"""9001 sign-in and 9002 sign-out (SPEC §6.1)."""

from __future__ import annotations

import secrets
from datetime import timedelta

from gateway.domain.codes import ResultCode
from gateway.domain.errors import Declined
from gateway.domain.inputs import SignIn, SignOut
from gateway.pipeline.context import Deps, Txn
from gateway.pipeline.reply import Outcome


async def sign_in(d: Deps, txn: Txn) -> Outcome:
    """9001: open a session binding (fixmedins_code, psam_no)."""
    env, inp = txn.request(SignIn)
    now = txn.received
    # region + time + 10 random digits: unguessable, and unique by the table's key (drawn again on a clash,
    # on this host or any other sharing the database).
    for _ in range(5):
        sign_no = f"{d.settings.gateway_region}{now:%Y%m%d%H%M%S}{secrets.randbelow(10**10):010d}"
        expires = now + timedelta(seconds=d.settings.sign_ttl_s)
        if await d.registry.create_session(sign_no, env.fixmedins_code, env.safe.psam_no, inp.opter_no, now, expires):
            break
    else:
        raise RuntimeError("five random sign_no values in a row were taken")
    return Outcome(output={"signinoutb": {"sign_time": f"{now:%Y-%m-%d %H:%M:%S}", "sign_no": sign_no}})


async def sign_out(d: Deps, txn: Txn) -> Outcome:
    """9002: end the session named in the envelope."""
    env, inp = txn.request(SignOut)
    assert env.sign_no is not None
    if inp.sign_no != env.sign_no:
        raise Declined(ResultCode.MALFORMED, "input.signOut.sign_no: must equal the envelope's sign_no")
    await d.registry.sign_out(env.sign_no, txn.received)
    return Outcome(output={"signoutoutb": {"sign_time": f"{txn.received:%Y-%m-%d %H:%M:%S}", "sign_no": inp.sign_no}})
