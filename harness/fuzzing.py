"""What Schemathesis is told about this API, for the in-process fuzz test and the fuzz
drill against a running container alike.

All checks run. Two of them are told about answers the API gives on purpose: a PUT
without If-Match is 428 (the check expects a code from its own 400-class list), and a
schema-valid but stale If-Match is 412 (no schema can say "the current version"). The
same settings make `schemathesis run` against a running server pass; see README.
"""

from __future__ import annotations

from schemathesis.config import SchemathesisConfig

CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {
            "positive_data_acceptance": {
                "expected-statuses": [
                    "2xx",
                    "3xx",
                    "401",
                    "403",
                    "404",
                    "409",
                    "412",
                    "428",
                    "429",
                ]
            },
            "missing_required_header": {
                "expected-statuses": ["400", "401", "403", "406", "415", "422", "428"]
            },
        }
    }
)
