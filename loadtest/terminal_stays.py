"""Request builders of the inpatient stay transactions (SPEC §6.7), mixed into `loadtest.terminal.Terminal`:
2401 admission, 2301 fee upload (refund lines included), 2302, 2402–2405, 2303/2304 and 2305."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from loadtest.terminal_requests import Requests, yuan

if TYPE_CHECKING:
    from loadtest.terminal import Built, SimCard

# A 2301 line: (med_list_codg, cnt, pric) as text, or a refund (feedetl_sn refunded, med_list_codg, cnt, pric)
Line = tuple[str, str, str] | tuple[str, str, str, str]


class StayRequests(Requests):
    """Builders of the inpatient requests."""

    def admit(self, card: SimCard, ipt_no: str, *, med_type: str = "21", insutype: str = "310", **kw: Any) -> Built:
        """2401 with one admission diagnosis."""
        info = {"psn_no": card.psn_no, "insutype": insutype, "begntime": self._stamp(kw), "mdtrt_cert_type": "03",
                "mdtrt_cert_no": card.card_no, "med_type": med_type, "ipt_no": ipt_no, "adm_dept_codg": "A01",
                "adm_dept_name": "内科", "adm_bed": "12", "atddr_no": "D001", "chfpdr_name": "李医生",
                "adm_diag_dscr": "肺炎", "dscg_maindiag_code": "J18.9", "dscg_maindiag_name": "肺炎"}  # fmt: skip
        dise = [{"diag_type": "1", "diag_srt_no": "1", "diag_code": "J18.9", "diag_name": "肺炎"}]
        return self.build("2401", {"mdtrtinfo": info, "diseinfo": dise}, **kw)

    def upload_stay_fees(self, psn_no: str, mdtrt_id: str, items: list[Line], *, first_sn: int = 1, **kw: Any) -> Built:
        """2301: lines numbered from `first_sn`; a 4-tuple is a refund of the line it names (negative cnt)."""
        lines = []
        for i, item in enumerate(items, first_sn):
            init, (code, cnt, pric) = (item[0], item[1:]) if len(item) == 4 else (None, item)
            amt = int((Decimal(cnt) * Decimal(pric) * 100).to_integral_value())
            sign = -1 if init else 1
            line = {"feedetl_sn": f"{i:06d}", "mdtrt_id": mdtrt_id, "psn_no": psn_no, "med_type": "21",
                    "med_list_codg": code, "medins_list_codg": code, "cnt": sign * float(Decimal(cnt)),
                    "pric": float(Decimal(pric)), "det_item_fee_sumamt": sign * yuan(amt),
                    "fee_ocur_time": self._stamp(kw), "hosp_appr_flag": "1"}  # fmt: skip
            if init:
                line["init_feedetl_sn"] = init
            lines.append(line)
        return self.build("2301", {"feedetail": lines}, **kw)

    def cancel_stay_fees(self, psn_no: str, mdtrt_id: str, feedetl_sn: str | list[str] = "0000", **kw: Any) -> Built:
        """2302 ("0000": every unsettled line)."""
        return self.build("2302", {"data": {"feedetl_sn": feedetl_sn, "mdtrt_id": mdtrt_id, "psn_no": psn_no}}, **kw)

    def discharge(self, psn_no: str, mdtrt_id: str, *, insutype: str = "310", **kw: Any) -> Built:
        """2402."""
        info = {"mdtrt_id": mdtrt_id, "psn_no": psn_no, "insutype": insutype, "endtime": self._stamp(kw),
                "dscg_way": "1", "dscg_dept_codg": "A01", "dscg_dept_name": "内科"}  # fmt: skip
        dise = [{"diag_type": "1", "diag_srt_no": "1", "diag_code": "J18.9", "diag_name": "肺炎"}]
        return self.build("2402", {"dscginfo": info, "diseinfo": dise}, **kw)

    def change_admission(self, psn_no: str, mdtrt_id: str, **fields: Any) -> Built:
        """2403 (input.adminfo); keyword fields other than the build's are the changed admission fields."""
        build_kw = {k: fields.pop(k) for k in ("now", "msgid") if k in fields}
        return self.build("2403", {"adminfo": {"mdtrt_id": mdtrt_id, "psn_no": psn_no, **fields}}, **build_kw)

    def cancel_admission(self, psn_no: str, mdtrt_id: str, **kw: Any) -> Built:
        """2404."""
        return self.build("2404", {"data": {"mdtrt_id": mdtrt_id, "psn_no": psn_no}}, **kw)

    def cancel_discharge(self, psn_no: str, mdtrt_id: str, **kw: Any) -> Built:
        """2405."""
        return self.build("2405", {"data": {"mdtrt_id": mdtrt_id, "psn_no": psn_no}}, **kw)

    def settle_stay(
        self,
        infno: str,
        card: SimCard,
        mdtrt_id: str,
        total_fen: int,
        *,
        mid_setl_flag: str = "0",
        pin: str = "VERIFIED",
        insutype: str = "310",
        acct_used_flag: str = "1",
        **kw: Any,
    ) -> Built:
        """2303/2304: medfee_sumamt = the stay's unsettled lines, refunds netted."""
        data = {"psn_no": card.psn_no, "mdtrt_cert_type": "03", "mdtrt_cert_no": card.card_no,
                "card_sn": card.card_sn, "medfee_sumamt": yuan(total_fen), "mdtrt_id": mdtrt_id,
                "insutype": insutype, "acct_used_flag": acct_used_flag, "mid_setl_flag": mid_setl_flag}  # fmt: skip
        return self.build(infno, {"data": data}, card=card, pin=pin, amount_fen=total_fen, **kw)

    def cancel_stay_settlement(self, psn_no: str, mdtrt_id: str, setl_id: str, **kw: Any) -> Built:
        """2305."""
        return self.build("2305", {"data": {"mdtrt_id": mdtrt_id, "setl_id": setl_id, "psn_no": psn_no}}, **kw)
