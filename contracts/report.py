"""Machine-readable reports of a run: JSON (every measurement) and JUnit XML (for CI).

JUnit mapping: one ``<testcase>`` per check, ``classname`` = its category (``image``,
``ping``, ...), ``name`` = its id. An error-severity failure is a ``<failure>``; a warning is
reported in ``<system-out>`` and does not fail the case (it does not fail the run either);
not-applicable and skipped checks are ``<skipped>`` with the reason.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from smlocal.contracts.model import Severity, Status, SuiteReport

__all__ = ["junit_xml", "write_json", "write_junit"]


def write_json(report: SuiteReport, path: Path) -> None:
    path.write_text(json.dumps(report.to_json(), indent=2, default=str) + "\n")


def junit_xml(report: SuiteReport) -> str:
    counts = report.counts()
    suites = ET.Element("testsuites", name="smlocal contract-test")
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=f"contract {report.image}",
        tests=str(len(report.results)),
        failures=str(counts["errors"]),
        errors="0",
        skipped=str(counts[str(Status.SKIPPED)] + counts[str(Status.NOT_APPLICABLE)]),
        time=f"{report.wall_s:.3f}",
    )
    properties = ET.SubElement(suite, "properties")
    for name in ("image", "image_id", "model_digest", "spec_digest", "instance_type"):
        ET.SubElement(properties, "property", name=name, value=str(getattr(report, name)))
    for result in report.results:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=result.check.category,
            name=result.check.id,
            time=f"{result.duration_s:.3f}",
        )
        text = "\n".join([result.outcome.summary, *result.outcome.evidence, result.check.rule])
        if result.is_error:
            failure = ET.SubElement(case, "failure", message=result.outcome.summary)
            failure.text = text
        elif result.status in (Status.SKIPPED, Status.NOT_APPLICABLE):
            ET.SubElement(case, "skipped", message=f"{result.status}: {result.outcome.summary}")
        else:
            out = ET.SubElement(case, "system-out")
            warned = result.status == Status.FAILED and result.severity == Severity.WARNING
            out.text = ("WARNING: " if warned else "") + text
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def write_junit(report: SuiteReport, path: Path) -> None:
    path.write_text(junit_xml(report))
