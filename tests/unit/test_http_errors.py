"""The error edge (gateway/http/errors.py): every ResultCode has a wire entry in both shapes."""

from __future__ import annotations

import pytest

from gateway.domain.codes import WIRE, ResultCode, http_status_of, infcode_of
from gateway.http.errors import JSON_CODES, json_status_of


class TestWireTable:
    def test_every_result_code_has_a_wire_entry(self):
        """The FSI table (SPEC §5) names every ResultCode: an infcode and an HTTP status."""
        assert set(WIRE) == set(ResultCode)

    @pytest.mark.parametrize("code", [c for c in ResultCode if c is not ResultCode.OK])
    def test_every_error_code_has_a_json_status(self, code: ResultCode):
        """On JSON routes every error code is an error status: a refusal (-2) a 4xx, a failure (-1) a 5xx
        (429 RATE_LIMITED aside), and the FSI table's own status wherever that is already an error."""
        status = json_status_of(code)
        if http_status_of(code) >= 400:
            assert status == http_status_of(code)
        elif infcode_of(code) == -2:
            assert status == 400
        else:
            assert status == 503

    def test_json_codes_are_result_codes_where_one_fits(self):
        """The JSON err_code of a status reuses the SPEC §5 vocabulary where it has a word for it."""
        for status, name in JSON_CODES.items():
            if name in ResultCode.__members__:
                assert json_status_of(ResultCode(name)) == status
