"""Request builders of the outpatient visit transactions (SPEC §6.6), mixed into `loadtest.terminal.Terminal`:
2201 registration, 2202, 2203, 2204 fee upload, 2205, and 2206/2207 by reference."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from loadtest.terminal_requests import Requests, yuan

if TYPE_CHECKING:
    from loadtest.terminal import Built, SimCard


class VisitRequests(Requests):
    """Builders of the outpatient visit requests."""

    def register(self, card: SimCard, ipt_otp_no: str, *, insutype: str = "310", **kw: Any) -> Built:
        """2201 (card-less)."""
        data = {"psn_no": card.psn_no, "insutype": insutype, "begntime": self._stamp(kw),
                "mdtrt_cert_type": "03", "mdtrt_cert_no": card.card_no, "ipt_otp_no": ipt_otp_no,
                "dept_code": "A01", "dept_name": "内科", "atddr_no": "D001", "dr_name": "李医生"}  # fmt: skip
        return self.build("2201", {"data": data}, **kw)

    def cancel_registration(self, psn_no: str, mdtrt_id: str, ipt_otp_no: str, **kw: Any) -> Built:
        """2202."""
        return self.build("2202", {"data": {"psn_no": psn_no, "mdtrt_id": mdtrt_id, "ipt_otp_no": ipt_otp_no}}, **kw)

    def visit_info(self, psn_no: str, mdtrt_id: str, med_type: str = "11", **kw: Any) -> Built:
        """2203 with one diagnosis."""
        info = {"mdtrt_id": mdtrt_id, "psn_no": psn_no, "med_type": med_type,
                "begntime": self._stamp(kw), "dise_codg": "J00", "dise_name": "急性鼻咽炎"}  # fmt: skip
        dise = [{"diag_type": "1", "diag_srt_no": "1", "diag_code": "J00", "diag_name": "急性鼻咽炎"}]
        return self.build("2203", {"mdtrtinfo": info, "diseinfo": dise}, **kw)

    def upload_fees(
        self,
        psn_no: str,
        mdtrt_id: str,
        chrg_bchno: str,
        items: list[tuple[str, str, str]],
        *,
        first_sn: int = 1,
        **kw: Any,
    ) -> Built:
        """2204 of one batch (med_list_codg, cnt, pric as text); feedetl_sn numbered from `first_sn`."""
        lines = []
        for i, (code, cnt, pric) in enumerate(items, first_sn):
            amt = int((Decimal(cnt) * Decimal(pric) * 100).to_integral_value())
            lines.append({"feedetl_sn": f"{i:06d}", "mdtrt_id": mdtrt_id, "psn_no": psn_no, "chrg_bchno": chrg_bchno,
                          "med_list_codg": code, "medins_list_codg": code, "cnt": float(Decimal(cnt)),
                          "pric": float(Decimal(pric)), "det_item_fee_sumamt": yuan(amt),
                          "fee_ocur_time": "2026-12-01 10:00:00", "hosp_appr_flag": "1"})  # fmt: skip
        return self.build("2204", {"feedetail": lines}, **kw)

    def cancel_fees(self, psn_no: str, mdtrt_id: str, chrg_bchno: str = "0000", **kw: Any) -> Built:
        """2205 ("0000": every unsettled batch)."""
        return self.build("2205", {"data": {"mdtrt_id": mdtrt_id, "chrg_bchno": chrg_bchno, "psn_no": psn_no}}, **kw)

    def settle_by_reference(
        self,
        infno: str,
        card: SimCard,
        mdtrt_id: str,
        chrg_bchno: str,
        total_fen: int,
        *,
        med_type: str = "11",
        pin: str = "VERIFIED",
        insutype: str = "310",
        acct_used_flag: str = "1",
        **kw: Any,
    ) -> Built:
        """2206/2207 of an uploaded batch: no feedetail, medfee_sumamt = the batch's sum."""
        data = {"psn_no": card.psn_no, "mdtrt_cert_type": "03", "mdtrt_cert_no": card.card_no,
                "card_sn": card.card_sn, "med_type": med_type, "medfee_sumamt": yuan(total_fen), "insutype": insutype,
                "acct_used_flag": acct_used_flag, "mdtrt_id": mdtrt_id, "chrg_bchno": chrg_bchno}  # fmt: skip
        return self.build(infno, {"data": data}, card=card, pin=pin, amount_fen=total_fen, **kw)
